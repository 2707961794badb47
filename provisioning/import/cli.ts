// Bulk import of a service's existing service IDs from a CSV file (header mykey_id,service_user_id).
//
//   tsx provisioning/import/cli.ts import-links --hub URL --service ID --token T --csv FILE
//                                               [--report FILE] [--concurrency N] [--dry-run]
//
// The token (a service API credential) may also come from MYKEY_SERVICE_TOKEN. Progress goes to
// stderr; the rejected rows go to the report file (default: FILE.rejected.csv) as
// line,mykey_id,service_user_id,code,message. Exit codes: 0 every row linked or unchanged, 1 rows
// rejected or the import stopped, 2 usage or an unreadable file.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MyKeyError } from '../../shared/errors.ts';
import { writeFileAtomic } from '../enroll/state-dir.ts';
import { importLinks, readLinkRows, rejectionReport, type ImportProgress, type Rejection } from './import-links.ts';

const USAGE = `usage:
  import-links --hub URL --service ID --token T --csv FILE [--report FILE] [--concurrency N] [--dry-run]
The CSV starts with the header mykey_id,service_user_id. The token may be given in MYKEY_SERVICE_TOKEN.
--dry-run checks the file without calling the hub.`;

export interface ImportIo {
  err: (line: string) => void;
  /** True when stderr is a terminal: progress rewrites one line. */
  tty?: boolean;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  now?: () => number;
}

function parse(argv: string[]): Map<string, string | true> {
  const m = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--dry-run') m.set(a, true);
    else if (['--hub', '--service', '--token', '--csv', '--report', '--concurrency'].includes(a)) {
      const v = argv[++i];
      if (v === undefined) throw new MyKeyError('bad_request', `${a} needs a value`);
      m.set(a, v);
    } else throw new MyKeyError('bad_request', `unknown argument ${a}`);
  }
  return m;
}

const progressLine = (p: ImportProgress) => `${p.done}/${p.total} rows: ${p.linked} linked, ${p.replaced} replaced, ${p.unchanged} unchanged, ${p.rejected} rejected`;

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[], io: ImportIo = { err: (l) => process.stderr.write(l + '\n'), tty: process.stderr.isTTY }): Promise<number> {
  const env = io.env ?? process.env;
  const [cmd, ...rest] = argv;
  if (cmd !== 'import-links') {
    io.err(cmd && cmd !== '--help' && cmd !== '-h' ? `unknown command ${cmd}\n${USAGE}` : USAGE);
    return cmd === '--help' || cmd === '-h' ? 0 : 2;
  }
  let opts: Map<string, string | true>;
  let text: string;
  try {
    opts = parse(rest);
    for (const k of ['--csv', ...(opts.has('--dry-run') ? [] : ['--hub', '--service'])]) if (typeof opts.get(k) !== 'string') throw new MyKeyError('bad_request', `import-links needs ${k}`);
    text = readFileSync(opts.get('--csv') as string, 'utf8');
  } catch (e) {
    io.err(`${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
    return 2;
  }
  const get = (k: string) => (typeof opts.get(k) === 'string' ? (opts.get(k) as string) : undefined);
  const csvPath = get('--csv')!;
  const reportPath = get('--report') ?? `${csvPath.replace(/\.csv$/i, '')}.rejected.csv`;
  const concurrency = Number(get('--concurrency') ?? 4);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 32) {
    io.err(`--concurrency is 1 to 32\n${USAGE}`);
    return 2;
  }

  let checked: ReturnType<typeof readLinkRows>;
  try {
    checked = readLinkRows(text);
  } catch (e) {
    io.err(`${csvPath}: ${(e as Error).message}`);
    return 2;
  }
  io.err(`${csvPath}: ${checked.rows.length} row(s) to link, ${checked.rejected.length} rejected while reading`);

  let rejections: Rejection[] = checked.rejected;
  let summary = `${checked.rows.length} row(s) would be sent`;
  let aborted: string | undefined;
  let notAttempted = 0;
  if (!opts.has('--dry-run')) {
    const token = get('--token') ?? env.MYKEY_SERVICE_TOKEN;
    if (!token) {
      io.err(`import-links needs --token or MYKEY_SERVICE_TOKEN (a service API credential)\n${USAGE}`);
      return 2;
    }
    const now = io.now ?? Date.now;
    let lastShown = 0;
    const started = now();
    const r = await importLinks({
      hubUrl: get('--hub')!,
      serviceId: get('--service')!,
      token,
      rows: checked.rows,
      concurrency,
      fetch: io.fetch,
      onProgress: (p) => {
        const t = now();
        if (p.done === p.total || t - lastShown >= (io.tty ? 200 : 2000)) {
          lastShown = t;
          if (io.tty) process.stderr.write(`\r${progressLine(p)}   `);
          else io.err(progressLine(p));
        }
      },
    });
    if (io.tty) process.stderr.write('\n');
    rejections = [...checked.rejected, ...r.rejections].sort((a, b) => a.line - b.line);
    aborted = r.aborted;
    notAttempted = r.notAttempted;
    const secs = Math.max(0.001, (now() - started) / 1000);
    summary = `${progressLine(r)} in ${secs.toFixed(1)} s (${Math.round(r.done / secs)} rows/s)`;
  }

  if (rejections.length) {
    writeFileAtomic(reportPath, rejectionReport(rejections), 0o600);
    const byCode = new Map<string, number>();
    for (const r of rejections) byCode.set(r.code, (byCode.get(r.code) ?? 0) + 1);
    io.err(`rejected ${rejections.length} row(s): ${[...byCode].map(([c, n]) => `${c} ${n}`).join(', ')}; report: ${reportPath}`);
  }
  io.err(summary);
  if (aborted) io.err(`stopped: ${aborted}; ${notAttempted} row(s) not linked. Check --service and the token, then run again (rows already linked come back unchanged).`);
  return rejections.length || aborted ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
