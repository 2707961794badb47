// Shared helpers for benchmarks. Each benchmark is a file `bench/<name>.bench.ts` that calls
// `benchMain(async () => metrics)`; bench/run.ts runs each in its own process (so RSS figures are the
// benchmark's own) and merges the metrics into bench/results.json.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** One measured figure. */
export interface Metric {
  value: number;
  unit: string;
}
/** A benchmark's figures by metric name. */
export type Metrics = Record<string, Metric>;

/** Marker of the line through which a benchmark process reports its metrics to the runner. */
export const RESULT_MARKER = 'BENCH_RESULT ';

/** Runs a benchmark body and reports its metrics on stdout for bench/run.ts. */
export function benchMain(body: () => Promise<Metrics>): void {
  body().then(
    (metrics) => {
      process.stdout.write(`\n${RESULT_MARKER}${JSON.stringify(metrics)}\n`);
      process.exit(0);
    },
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/** Percentile (0..100) of an unsorted sample, nearest-rank. */
export function percentile(sample: number[], p: number): number {
  if (sample.length === 0) return NaN;
  const s = [...sample].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank];
}

/** Wall-clock milliseconds of an async function. */
export async function timeMs(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Rounds to a sensible number of digits for a report. */
export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  const m = 10 ** digits;
  return Math.round(x * m) / m;
}

/** Logs progress to stderr (stdout carries the result line). */
export function progress(msg: string): void {
  process.stderr.write(`  ${msg}\n`);
}

/** A memory figure of a process from /proc/<pid>/status (VmRSS, RssAnon, RssFile, ...), in MB; NaN when absent. */
export function procMemoryMb(pid: number | 'self', field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}
