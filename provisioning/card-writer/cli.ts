// The municipal counter's MyKey writer: writes a holder's MyKey ID into the MyKey area of their card,
// only at their request, through the edge's reader layer in the writer role.
//
//   tsx provisioning/card-writer/cli.ts write-mykey --reader NAME --mykey-id ID [--write-key - | --write-key-file F] [--replace] [--wait S]
//   tsx provisioning/card-writer/cli.ts list-readers
//
// The write key is a secret: it comes from MYKEY_WRITE_KEY, a file, or standard input (`--write-key -`,
// asked for with the echo off on a terminal), never from the command line, where `ps` shows it to
// every user of the machine. Exit codes: 0 written (or already there), 1 failed (the message says
// why), 2 usage.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MyKeyError } from '../../shared/errors.ts';
import { formatMyKeyId } from '../../shared/ids.ts';
import { ReaderManager, silentReaderLog, type ReaderManagerOptions } from '../../edge/reader/index.ts';
import { parseMyKeyId, parseWriteKey, writeMyKey } from './write-mykey.ts';
import { readSecretLine, type SecretInput } from '../secret-input.ts';

const USAGE = `usage:
  write-mykey --reader NAME --mykey-id ID [--write-key - | --write-key-file FILE] [--replace] [--wait SECONDS]
  list-readers
The write key (32 bytes, hex) comes from MYKEY_WRITE_KEY, --write-key-file, or standard input with
--write-key - (asked for on a terminal); never on the command line.`;

/** What to tell the clerk for each failure code. */
export function advice(e: unknown): string {
  if (!(e instanceof MyKeyError)) return `unexpected error: ${e instanceof Error ? e.message : String(e)}`;
  switch (e.code) {
    case 'card_removed':
      return `${e.message}. Put the card back on the reader and run again (writing again is safe).`;
    case 'unauthorized':
      return `${e.message}. Nothing was written.`;
    case 'mykey_id_malformed':
      return e.message;
    case 'reader_unavailable':
      return `${e.message}. Check the reader name (list-readers) and that pcscd runs.`;
    case 'timeout':
      return `${e.message}. Place the card flat on the reader and run again.`;
    case 'apdu_refused':
      return `${e.message} (the reader guard refused a command; nothing outside the MyKey application is ever sent)`;
    default:
      return `${e.message} (${e.code})`;
  }
}

export interface CardWriterIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  readers?: ReaderManagerOptions;
  /** Standard input, for `--write-key -` (process.stdin by default). */
  stdin?: SecretInput['input'];
}

function parse(argv: string[]): Map<string, string | true> {
  const m = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--replace') m.set(a, true);
    else if (['--reader', '--mykey-id', '--write-key', '--write-key-file', '--wait'].includes(a)) {
      const v = argv[++i];
      if (v === undefined) throw new MyKeyError('bad_request', `${a} needs a value`);
      m.set(a, v);
    } else throw new MyKeyError('bad_request', `unknown argument ${a}`);
  }
  return m;
}

/** Waits until a card is on `reader` (or rejects after `ms`). */
function waitForCard(manager: ReaderManager, reader: string, ms: number, say: (l: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let told = false;
    const done = (err?: Error) => {
      clearTimeout(timer);
      clearTimeout(prompt);
      offCard();
      offReader();
      if (err) reject(err);
      else resolve();
    };
    const check = () => {
      if (manager.isCardPresent(reader)) done();
    };
    const timer = setTimeout(() => {
      if (!manager.readers().includes(reader)) done(new MyKeyError('reader_unavailable', `no reader named "${reader}" (seen: ${manager.readers().join(', ') || 'none'})`));
      else done(new MyKeyError('timeout', `no card was placed on ${reader} within ${Math.round(ms / 1000)} s`));
    }, ms);
    // Readers are reported a moment after PC/SC opens: only prompt once the reader is there and empty.
    const prompt = setTimeout(() => {
      if (!manager.isCardPresent(reader) && manager.readers().includes(reader) && !told) {
        told = true;
        say(`place the card on ${reader} ...`);
      }
    }, 700);
    const offCard = manager.on('card-present', (e) => e.reader === reader && check());
    const offReader = manager.on('reader-added', (e) => e.reader === reader && check());
    check();
  });
}

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[], io: CardWriterIo = { out: (l) => process.stdout.write(l + '\n'), err: (l) => process.stderr.write(l + '\n') }): Promise<number> {
  const env = io.env ?? process.env;
  const [cmd, ...rest] = argv;
  if (cmd !== 'write-mykey' && cmd !== 'list-readers') {
    io.err(cmd && cmd !== '--help' && cmd !== '-h' ? `unknown command ${cmd}\n${USAGE}` : USAGE);
    return cmd === '--help' || cmd === '-h' ? 0 : 2;
  }
  let opts: Map<string, string | true>;
  let mykeyId: string | undefined;
  let writeKey: Uint8Array | undefined;
  let reader = '';
  let waitMs = 30_000;
  try {
    opts = parse(rest);
    if (cmd === 'write-mykey') {
      const get = (k: string) => (typeof opts.get(k) === 'string' ? (opts.get(k) as string) : undefined);
      reader = get('--reader') ?? '';
      if (!reader) throw new MyKeyError('bad_request', 'write-mykey needs --reader (see list-readers)');
      const idText = get('--mykey-id');
      if (!idText) throw new MyKeyError('bad_request', 'write-mykey needs --mykey-id');
      mykeyId = parseMyKeyId(idText);
      const keyFile = get('--write-key-file');
      const keyArg = get('--write-key');
      if (keyArg !== undefined && keyArg !== '-') {
        throw new MyKeyError('bad_request', '--write-key takes no key on the command line (ps shows it to every user): use --write-key - (standard input), --write-key-file or MYKEY_WRITE_KEY');
      }
      const keyText = keyArg === '-' ? await readSecretLine('write key (64 hex digits): ', { input: io.stdin }) : keyFile ? readFileSync(keyFile, 'utf8') : env.MYKEY_WRITE_KEY;
      if (!keyText) throw new MyKeyError('bad_request', 'write-mykey needs MYKEY_WRITE_KEY, --write-key-file or --write-key - (standard input)');
      writeKey = parseWriteKey(keyText);
      const w = get('--wait');
      if (w !== undefined) {
        waitMs = Number(w) * 1000;
        if (!(waitMs >= 0 && waitMs <= 600_000)) throw new MyKeyError('bad_request', '--wait is 0 to 600 seconds');
      }
    }
  } catch (e) {
    io.err(`${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
    return 2;
  }

  const manager = new ReaderManager({ log: silentReaderLog, ...io.readers });
  manager.on('error', () => undefined); // failures surface through connect and the wait
  manager.start();
  try {
    if (cmd === 'list-readers') {
      await new Promise((r) => setTimeout(r, 800));
      for (const r of manager.readers()) io.out(`${r}${manager.isCardPresent(r) ? '\t(card present)' : ''}`);
      return manager.readers().length ? 0 : 1;
    }
    await waitForCard(manager, reader, waitMs, io.err);
    const session = await manager.connect(reader, { writer: true });
    try {
      const r = await writeMyKey(session, { mykeyId: mykeyId!, writeKey: writeKey!, replace: opts.has('--replace') });
      const shown = formatMyKeyId(r.mykeyId);
      if (r.outcome === 'unchanged') io.out(`the card already holds MyKey ID ${shown}; nothing written`);
      else io.out(`wrote MyKey ID ${shown}${r.reserved ? ' (area reserved)' : ''}${r.previous ? ' over the previous one' : ''}; read back and verified`);
      return 0;
    } finally {
      await session.close();
    }
  } catch (e) {
    io.err(`error: ${advice(e)}`);
    return 1;
  } finally {
    await manager.stop();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const code = await main(process.argv.slice(2));
  // A PC/SC handle stopped right after it opened can keep a native thread alive; the tool is done.
  process.stdout.write('', () => process.exit(code));
}
