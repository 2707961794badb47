// Where a revocation run's time went (crl-manager.ts logs it with "CRL applied"): wall and CPU time per
// phase, and how long the event loop waited at most while the run went on (what a request may have
// waited; a run's pieces are meant to stay within a few slices). CPU time is the process's: on a
// shared machine wall time counts others' load too.
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Milliseconds of CPU time between two process.cpuUsage() readings. */
const cpuMs = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => Math.round((b.user - a.user + b.system - a.system) / 1000);

/**
 * The most CPU time the process spent between two turns of the event loop (a 5 ms timer's ticks), in
 * milliseconds: the longest block in CPU terms, which a loaded machine does not inflate as it does
 * wall-clock delay (other threads' CPU, the libuv pool's included, counts too: an upper bound).
 */
function watchBlocks(): { max(): number; stop(): void } {
  let last = process.cpuUsage();
  let max = 0;
  const t = setInterval(() => {
    const c = process.cpuUsage();
    max = Math.max(max, cpuMs(last, c));
    last = c;
  }, 5);
  t.unref();
  return { max: () => max, stop: () => clearInterval(t) };
}

export interface RunFigures {
  phasesMs: Record<string, number>;
  phasesCpuMs: Record<string, number>;
  eventLoopDelayMs: { p99: number; max: number; maxCpu: number };
}

/** Starts measuring a run: `end(name)` closes a phase (which began where the last one ended). */
export function startRunMeter() {
  let t = performance.now();
  let c = process.cpuUsage();
  const phasesMs: Record<string, number> = {};
  const phasesCpuMs: Record<string, number> = {};
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const block = watchBlocks();
  const end = (phase: string): void => {
    const t1 = performance.now();
    const c1 = process.cpuUsage();
    phasesMs[phase] = Math.round(t1 - t);
    phasesCpuMs[phase] = cpuMs(c, c1);
    t = t1;
    c = c1;
  };
  return {
    end,
    /** Ends the last phase and returns the figures. */
    report(lastPhase: string): RunFigures {
      end(lastPhase);
      return { phasesMs, phasesCpuMs, eventLoopDelayMs: { p99: Math.round(loop.percentile(99) / 1e5) / 10, max: Math.round(loop.max / 1e5) / 10, maxCpu: block.max() } };
    },
    stop(): void {
      loop.disable();
      block.stop();
    },
  };
}
