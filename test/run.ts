// Runs every test file under test/ in its own Node.js process (uvu inside), so that a test which
// leaves a socket, a native handle or a child process behind cannot hang or poison the others.
//
//   npm test                      every file
//   npm test -- hub/mykey         only files whose path contains "hub/mykey"
//
// Files whose name contains `.serial.` share one resource (the vpcd reader slots, fixed ports) and
// never run at the same time as each other. Each file has a time limit (TEST_FILE_TIMEOUT_S, 300 s by
// default; a file that must start a broker cluster and hub processes may ask for more with a line
// `// test-file-timeout-s: N`); a file that overruns is killed and counted as failed, with its output shown.
// The last line is the plain summary `N passed, N failed, N skipped` (a test whose tool is missing is
// skipped, never passed: test/helpers/requires.ts).
//
// PostgreSQL pass: the hub test files that go through a test hub (startTestHub, startHubWithEdge) and never open its
// SQLite file themselves run a second time with the hub on PostgreSQL (MYKEY_TEST_STORE=pg), on one
// throwaway cluster started here (test/helpers/pg.ts) whose URL they get in MYKEY_TEST_PG_URL; each
// file makes its own databases on it. MYKEY_TEST_PG=0 skips the pass, MYKEY_TEST_PG=only runs only it.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { havePostgres, startPgCluster } from './helpers/pg.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const testDir = join(root, 'test');
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const timeoutMs = Number(process.env.TEST_FILE_TIMEOUT_S ?? 300) * 1000;
const workers = Math.max(1, Number(process.env.TEST_WORKERS ?? Math.min(2, cpus().length)));

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name === 'fixtures' || name === 'helpers') continue;
      out.push(...walk(p));
    } else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

interface Result {
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  ms: number;
  output: string;
  ok: boolean;
}

// Serial files also take a machine-wide lock (flock), so two runs on one machine (two checkouts, a
// developer's run beside CI's) never share the vpcd reader slots or fixed ports at once.
const SERIAL_LOCK = process.env.MYKEY_SERIAL_LOCK ?? '/tmp/mykey-serial-tests.lock';

function runFile(file: string, extraEnv: Record<string, string> = {}): Promise<Result> {
  const started = Date.now();
  const serial = file.includes('.serial.');
  const [cmd, args] = serial ? ['flock', [SERIAL_LOCK, process.execPath, '--import', 'tsx', file]] : [process.execPath, ['--import', 'tsx', file]];
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1', ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    // A file whose tests all reported but whose process does not exit (a native handle left open,
    // e.g. pcsclite) is ended 15 s after uvu's summary; its reported results stand, with a notice.
    let lingered = false;
    let lingerTimer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d) => {
      output += d;
      if (!lingerTimer && /Duration:/.test(output)) {
        lingerTimer = setTimeout(() => {
          lingered = true;
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }, 15_000);
      }
    });
    child.stderr.on('data', (d) => (output += d));
    let timedOut = false;
    const own = /^\/\/ test-file-timeout-s: (\d+)$/m.exec(readFileSync(file, 'utf8'));
    const fileTimeoutMs = Math.max(timeoutMs, own ? Number(own[1]) * 1000 : 0);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, fileTimeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      clearTimeout(lingerTimer);
      // Anything the file started in its own process group goes with it.
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
      const num = (label: string) => {
        const m = output.match(new RegExp(`${label}:\\s+(\\d+)`));
        return m ? Number(m[1]) : 0;
      };
      const total = num('Total');
      const passed = num('Passed');
      const skipped = num('Skipped');
      let failed = Math.max(0, total - passed - skipped);
      // A file whose only tests were skipped (a tool missing: test/helpers/requires.ts) ran, and is not a failure.
      const ok = (code === 0 || lingered) && !timedOut && (total > 0 || skipped > 0) && failed === 0;
      if (lingered) output += '\n[run] the process did not exit 15 s after its tests finished; ended it (a handle was left open)\n';
      if (!ok && failed === 0) failed = 1;
      if (timedOut) output += `\n[run] killed after ${fileTimeoutMs / 1000}s: the file did not finish in time\n`;
      if (total === 0 && skipped === 0 && code === 0) output += '\n[run] the file ran no test\n';
      resolve({ file, passed, failed, skipped, ms: Date.now() - started, output, ok });
    });
  });
}

async function main() {
  let files = walk(testDir);
  if (filters.length) files = files.filter((f) => filters.some((x) => relative(testDir, f).includes(x)));
  if (files.length === 0) {
    console.error('no test files matched');
    process.exit(1);
  }
  const results: Result[] = [];
  const pgMode = process.env.MYKEY_TEST_PG ?? '1';
  if (pgMode !== 'only') await runAll(files, {}, '', results);
  const pgFiles = files.filter(onPostgres);
  if (pgMode !== '0' && pgFiles.length > 0) {
    if (!havePostgres) console.log(`skipped the PostgreSQL pass (${pgFiles.length} files): PostgreSQL 15 is not installed`);
    else {
      const cluster = await startPgCluster();
      console.log(`[run] PostgreSQL pass: ${pgFiles.length} hub test files on a throwaway cluster (port ${cluster.port})`);
      try {
        await runAll(pgFiles, { MYKEY_TEST_STORE: 'pg', MYKEY_TEST_PG_URL: cluster.url }, '[pg] ', results);
      } finally {
        await cluster.stop();
      }
    }
  }
  const passed = results.reduce((a, r) => a + r.passed, 0);
  const failed = results.reduce((a, r) => a + r.failed, 0);
  const skipped = results.reduce((a, r) => a + r.skipped, 0);
  console.log('');
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed > 0 ? 1 : 0);
}

/**
 * A hub test file that runs on PostgreSQL too: it starts a test hub and never reaches past the
 * repositories into the SQLite file (hub.db, openDatabase, better-sqlite3), so the store behind it
 * is all it changes.
 */
function onPostgres(file: string): boolean {
  if (!relative(testDir, file).startsWith('hub/') || file.includes('.serial.')) return false;
  const text = readFileSync(file, 'utf8');
  return /startTestHub|startHubWithEdge|startConsoleHub/.test(text) && !/\.db\b|\bdb\s*[},]|openDatabase|better-sqlite3|sqliteStore/.test(text);
}

async function runAll(files: string[], env: Record<string, string>, label: string, results: Result[]) {
  const queue = [...files];
  let serialBusy = false;
  const isSerial = (f: string) => f.includes('.serial.');

  async function lane() {
    for (;;) {
      const i = queue.findIndex((f) => !(isSerial(f) && serialBusy));
      if (i < 0) {
        if (queue.length === 0) return;
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const [file] = queue.splice(i, 1);
      const serial = isSerial(file);
      if (serial) serialBusy = true;
      const r = await runFile(file, env);
      if (serial) serialBusy = false;
      results.push(r);
      const name = relative(root, file);
      const mark = r.ok ? 'ok  ' : 'FAIL';
      console.log(`${mark} ${label}${name}  (${r.passed} passed${r.failed ? `, ${r.failed} failed` : ''}${r.skipped ? `, ${r.skipped} skipped` : ''}, ${(r.ms / 1000).toFixed(1)}s)`);
      if (!r.ok || process.env.TEST_VERBOSE) console.log(r.output.replace(/^/gm, '     | '));
    }
  }
  await Promise.all(Array.from({ length: workers }, lane));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
