// Console operator accounts, from the hub machine's shell. There is no default account or password:
// the first operator is created here.
//
//   tsx hub/console/cli.ts add-operator <name> --role operator|service-admin [--service <id>] [--config hub.json]
//   tsx hub/console/cli.ts set-password <name> [--config hub.json]
//   tsx hub/console/cli.ts disable-operator <name> | enable-operator <name> [--config hub.json]
//   tsx hub/console/cli.ts list-operators [--config hub.json]
//
// The password is asked for twice on a terminal (not echoed), or read as the first line of standard
// input when that is not a terminal (`printf '%s\n' "$PW" | tsx hub/console/cli.ts add-operator ...`).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MyKeyError } from '../../shared/errors.ts';
import { isServiceId } from '../../shared/ids.ts';
import { loadHubConfig } from '../config.ts';
import { migrateConsole, type OperatorRole } from '../store/console-repo.ts';
import type { Db } from '../store/db.ts';
import { openStore, sqliteStore, type Store } from '../store/store.ts';
import { hashPassword, passwordProblem } from './password.ts';

export const OPERATOR_NAME = /^[a-z][a-z0-9._-]{1,63}$/;

const USAGE = `usage:
  tsx hub/console/cli.ts add-operator <name> --role operator|service-admin [--service <id>] [--config hub.json]
  tsx hub/console/cli.ts set-password <name> [--config hub.json]
  tsx hub/console/cli.ts disable-operator <name> [--config hub.json]
  tsx hub/console/cli.ts enable-operator <name> [--config hub.json]
  tsx hub/console/cli.ts list-operators [--config hub.json]
The password is prompted for on a terminal, or read from the first line of standard input.`;

export interface CliIo {
  out: (line: string) => void;
  /** Reads the new password (prompting on a terminal). */
  readPassword: () => Promise<string>;
  now?: () => number;
}

/** Runs one command against an open store (or a SQLite database); returns the process exit code. */
export async function runConsoleCli(argv: string[], target: Store | Db, io: CliIo): Promise<number> {
  // A bare SQLite database (tests) may predate the console's tables.
  if (!('sql' in target)) migrateConsole(target);
  const store = 'sql' in target ? target : sqliteStore(target);
  const repo = store.console;
  const now = io.now ?? Date.now;
  const [cmd, name, ...rest] = argv;
  const opt = (k: string) => {
    const i = rest.indexOf(k);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  const fail = (msg: string) => {
    io.out(`error: ${msg}`);
    return 2;
  };

  if (!['add-operator', 'set-password', 'disable-operator', 'enable-operator', 'list-operators'].includes(cmd ?? '')) {
    io.out(USAGE);
    return cmd === '--help' || cmd === '-h' ? 0 : 2;
  }
  if (cmd === 'list-operators') {
    for (const o of await repo.operators()) io.out(`${o.name}\t${o.role}${o.service_id ? `\t${o.service_id}` : ''}${o.disabled ? '\tdisabled' : ''}`);
    return 0;
  }
  if (!name || !OPERATOR_NAME.test(name)) return fail('an operator name is 2-64 lower-case letters, digits, dots, hyphens or underscores, starting with a letter');

  switch (cmd) {
    case 'add-operator': {
      const roleArg = opt('--role');
      const role: OperatorRole | undefined = roleArg === 'operator' ? 'operator' : roleArg === 'service-admin' ? 'service_admin' : undefined;
      if (!role) return fail('--role must be operator or service-admin');
      const serviceId = opt('--service');
      if (role === 'service_admin') {
        if (!serviceId || !isServiceId(serviceId)) return fail('a service administrator needs --service <service id>');
        const exists = await store.links.service(serviceId);
        if (!exists) return fail(`no service ${serviceId}; create it in the console first`);
      } else if (serviceId) return fail('--service is only for --role service-admin');
      if (await repo.operator(name)) return fail(`operator ${name} exists (use set-password)`);
      const password = await io.readPassword();
      const problem = passwordProblem(password);
      if (problem) return fail(problem);
      await repo.insertOperator({ name, role, serviceId: role === 'service_admin' ? serviceId! : null, passwordHash: await hashPassword(password), at: now() });
      await repo.audit({ at: now(), actor: 'cli', action: 'operator.add', target: name, service_id: serviceId ?? null, detail: { role } });
      io.out(`operator ${name} added (${role === 'operator' ? 'platform operator' : `service administrator of ${serviceId}`})`);
      return 0;
    }
    case 'set-password': {
      if (!(await repo.operator(name))) return fail(`no operator ${name}`);
      const password = await io.readPassword();
      const problem = passwordProblem(password);
      if (problem) return fail(problem);
      await repo.setPassword(name, await hashPassword(password));
      // A changed password ends every session of the account.
      await repo.deleteSessionsOf(name);
      await repo.audit({ at: now(), actor: 'cli', action: 'operator.set_password', target: name });
      io.out(`password of ${name} changed; its sessions ended`);
      return 0;
    }
    case 'disable-operator':
    case 'enable-operator': {
      const disable = cmd === 'disable-operator';
      if (!(await repo.setDisabled(name, disable))) return fail(`no operator ${name}`);
      if (disable) await repo.deleteSessionsOf(name);
      await repo.audit({ at: now(), actor: 'cli', action: disable ? 'operator.disable' : 'operator.enable', target: name });
      io.out(`operator ${name} ${disable ? 'disabled' : 'enabled'}`);
      return 0;
    }
    default:
      io.out(USAGE);
      return 2;
  }
}

/** Reads a line from a terminal without echoing it. */
function promptHidden(question: string): Promise<string> {
  return new Promise((res, rej) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    let buf = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const onData = (ch: string) => {
      for (const c of ch) {
        if (c === '\r' || c === '\n') {
          done();
          return res(buf);
        }
        if (c === '\u0003') {
          done();
          return rej(new Error('cancelled'));
        }
        if (c === '\u007f' || c === '\b') buf = buf.slice(0, -1);
        else buf += c;
      }
    };
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

async function readPasswordFromProcess(): Promise<string> {
  if (process.stdin.isTTY) {
    const a = await promptHidden('New password: ');
    const b = await promptHidden('Again: ');
    if (a !== b) throw new MyKeyError('validation_failed', 'the two passwords differ');
    return a;
  }
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return text.split(/\r?\n/)[0];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  let code = 2;
  try {
    const i = argv.indexOf('--config');
    const config = loadHubConfig({ file: i >= 0 ? argv[i + 1] : undefined });
    if (i >= 0) argv.splice(i, 2);
    const store = await openStore(config.store, config.dataDir);
    try {
      code = await runConsoleCli(argv, store, { out: (l) => console.log(l), readPassword: readPasswordFromProcess });
    } finally {
      await store.close();
    }
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
  }
  process.exit(code);
}
