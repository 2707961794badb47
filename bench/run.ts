// Runs every benchmark (bench/*.bench.ts), each in its own process, prints a table and writes
// bench/results.json as { date, machine, metrics: { name: { value, unit } } }.
//
//   npm run bench              every benchmark
//   npm run bench -- crl       only benchmarks whose file name contains "crl"
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, totalmem, platform, arch, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESULT_MARKER, type Metrics } from './lib.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));

function machine(): string {
  const c = cpus();
  return `${c.length} x ${c[0]?.model.trim() ?? 'unknown cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${platform()} ${release()} ${arch()}, Node.js ${process.version}`;
}

function runOne(file: string): Promise<{ metrics: Metrics; ok: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', join(here, file)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, BENCH_CHILD: '1' },
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith(RESULT_MARKER));
      const metrics = line ? (JSON.parse(line.slice(RESULT_MARKER.length)) as Metrics) : {};
      const other = out
        .split('\n')
        .filter((l) => !l.startsWith(RESULT_MARKER))
        .join('\n')
        .trim();
      if (other) process.stderr.write(other + '\n');
      resolve({ metrics, ok: code === 0 && line !== undefined });
    });
  });
}

async function main() {
  let files = readdirSync(here)
    .filter((f) => f.endsWith('.bench.ts'))
    .sort();
  if (filters.length) files = files.filter((f) => filters.some((x) => f.includes(x)));
  const resultsPath = join(here, 'results.json');
  // A filtered run keeps the other benchmarks' last figures.
  const previous = filters.length && existsSync(resultsPath) ? (JSON.parse(readFileSync(resultsPath, 'utf8')).metrics ?? {}) : {};
  const metrics: Metrics = { ...previous };
  let failed = 0;
  for (const f of files) {
    process.stderr.write(`\n== ${f}\n`);
    const r = await runOne(f);
    if (!r.ok) {
      failed++;
      process.stderr.write(`!! ${f} failed\n`);
    }
    Object.assign(metrics, r.metrics);
  }
  const report = { date: new Date().toISOString(), machine: machine(), metrics };
  writeFileSync(resultsPath, JSON.stringify(report, null, 2) + '\n');
  const width = Math.max(...Object.keys(metrics).map((k) => k.length), 6);
  console.log(`\n${report.date}  ${report.machine}\n`);
  console.log(`${'metric'.padEnd(width)}  ${'value'.padStart(12)}  unit`);
  for (const [k, m] of Object.entries(metrics).sort(([a], [b]) => a.localeCompare(b))) {
    console.log(`${k.padEnd(width)}  ${String(m.value).padStart(12)}  ${m.unit}`);
  }
  console.log(`\nwritten to bench/results.json`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
