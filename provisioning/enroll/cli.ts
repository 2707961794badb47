// The technician's enrollment tool, one command per machine:
//
//   tsx provisioning/enroll/cli.ts enroll --hub https://HUB:8443 --ca-fingerprint FP --token T --edge-id ID --state-dir DIR
//                                         [--readers 'ACS*,Sony*'] [--device-api URL] [--broker URL] [--dry-run] [--force]
//   tsx provisioning/enroll/cli.ts rotate --state-dir DIR [--token T] [--hub URL] [--dry-run]
//   tsx provisioning/enroll/cli.ts decommission --state-dir DIR [--already-revoked] [--dry-run]
//   tsx provisioning/enroll/cli.ts status --state-dir DIR [--warn-days N]
//
// The token may also come from MYKEY_ENROLL_TOKEN (keeps it out of the shell history and `ps`).
// Progress goes to stderr. Exit codes: 0 done, 1 a step failed (it says what to fix), 2 usage.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { enroll, ROTATE_WARN_DAYS, status, type EnrollDeps } from './enroll.ts';
import { decommission, rotate } from './lifecycle.ts';
import { StepFailed } from './progress.ts';

const USAGE = `usage:
  enroll       --hub https://HUB:8443 --ca-fingerprint FP --token T --edge-id ID --state-dir DIR [--readers P1,P2] [--device-api URL] [--broker URL] [--release-key KEY] [--dry-run] [--force]
  rotate       --state-dir DIR [--token T] [--hub URL] [--readers P1,P2] [--dry-run]
  decommission --state-dir DIR [--already-revoked] [--reason TEXT] [--dry-run]
  status       --state-dir DIR [--warn-days N]
--dry-run prints the systemd unit and systemctl commands instead of running them.
--fix-nfc-modules (enroll) blacklists and unloads the kernel NFC modules (pn533_usb, port100) that hold the reader.
--hub is the hub device API; the token goes only over TLS to the device CA whose SHA-256 fingerprint
--ca-fingerprint gives (shown in the console beside the token; colons and case do not matter).
rotate needs a token only when the certificate has expired or was revoked.
The token may be given in MYKEY_ENROLL_TOKEN instead of --token.`;

const FLAGS = new Set(['--dry-run', '--force', '--fix-nfc-modules', '--already-revoked', '--help', '-h']);
const VALUES = new Set(['--hub', '--ca-fingerprint', '--token', '--edge-id', '--state-dir', '--readers', '--device-api', '--broker', '--reason', '--warn-days', '--release-key']);

class UsageError extends Error {}

export function parseArgs(argv: string[]): { cmd: string; opts: Map<string, string | true> } {
  const [cmd, ...rest] = argv;
  const opts = new Map<string, string | true>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (FLAGS.has(name)) opts.set(name, true);
    else if (VALUES.has(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : rest[++i];
      if (v === undefined || v === '') throw new UsageError(`${name} needs a value`);
      opts.set(name, v);
    } else throw new UsageError(`unknown argument ${a}`);
  }
  return { cmd: cmd ?? '', opts };
}

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[], deps: Partial<EnrollDeps> = {}, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const write = deps.write ?? ((l: string) => process.stderr.write(l + '\n'));
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    write(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { cmd, opts } = parsed;
  const str = (k: string) => (typeof opts.get(k) === 'string' ? (opts.get(k) as string) : undefined);
  const need = (k: string) => {
    const v = str(k);
    if (!v) throw new UsageError(`${cmd} needs ${k}`);
    return v;
  };
  const list = (k: string) =>
    str(k)
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const d: EnrollDeps = { ...deps, write };
  try {
    switch (cmd) {
      case 'enroll':
        await enroll(
          {
            hubUrl: need('--hub'),
            caFingerprint: str('--ca-fingerprint'),
            token: str('--token') ?? env.MYKEY_ENROLL_TOKEN,
            edgeId: need('--edge-id'),
            stateDir: need('--state-dir'),
            readers: list('--readers'),
            deviceApiUrl: str('--device-api'),
            brokerUrl: str('--broker'),
            releaseKey: str('--release-key'),
            dryRun: opts.has('--dry-run'),
            force: opts.has('--force'),
            fixNfcModules: opts.has('--fix-nfc-modules'),
          },
          d,
        );
        return 0;
      case 'rotate':
        await rotate({ stateDir: need('--state-dir'), token: str('--token') ?? env.MYKEY_ENROLL_TOKEN, hubUrl: str('--hub'), readers: list('--readers'), dryRun: opts.has('--dry-run') }, d);
        return 0;
      case 'decommission':
        await decommission({ stateDir: need('--state-dir'), alreadyRevoked: opts.has('--already-revoked'), reason: str('--reason'), dryRun: opts.has('--dry-run') }, d);
        return 0;
      case 'status': {
        const s = status(need('--state-dir'), deps.now?.());
        for (const l of s.lines) process.stdout.write(l + '\n');
        const warn = Number(str('--warn-days') ?? ROTATE_WARN_DAYS);
        if (s.ok && s.daysLeft !== undefined && s.daysLeft < warn) {
          write(`the certificate expires in ${s.daysLeft} days: run rotate (no token is needed while it is valid)`);
          return 1;
        }
        return s.ok ? 0 : 1;
      }
      case '':
      case '--help':
      case '-h':
        write(USAGE);
        return cmd ? 0 : 2;
      default:
        throw new UsageError(`unknown command ${cmd}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      write(`${e.message}\n${USAGE}`);
      return 2;
    }
    if (e instanceof StepFailed) return 1; // already printed with its fix
    write(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const code = await main(process.argv.slice(2));
  // A PC/SC handle stopped right after it opened can keep a native thread alive; the tool is done.
  process.stdout.write('', () => process.exit(code));
}
