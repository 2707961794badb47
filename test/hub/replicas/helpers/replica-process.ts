// A hub replica as a child process (`tsx hub/main.ts --config <file>`), for tests that kill one with
// kill -9 (an in-process hub cannot be killed apart from the test). Its stderr (pretty log lines) is
// kept: the test waits for "hub listening", sees when the replica takes the outbox publisher lock
// ("this replica publishes the outbox", hub/replicas/coordinator.ts), and shows the tail on failure.
// Every wait here is bounded; `stop` ends the process with SIGTERM, then SIGKILL if it lingers.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));

/** What the coordinator logs when this replica becomes the outbox publisher. */
export const PUBLISHES_OUTBOX = 'this replica publishes the outbox';

export interface ReplicaProcess {
  name: string;
  proc: ChildProcess;
  /** When the replica logged that it took the outbox lock (first time), if it did. */
  publishingAt?: number;
  /** When it was killed with kill -9 by `kill()`. */
  killedAt?: number;
  /** Resolves once the hub logged "hub listening"; rejects if it exits first or `ms` pass. */
  listening(ms?: number): Promise<void>;
  /** Everything the replica wrote to stderr so far (the last `chars`). */
  log(chars?: number): string;
  readonly running: boolean;
  /** kill -9. */
  kill(): void;
  /** SIGTERM, then SIGKILL after `ms`; resolves when it has exited. */
  stop(ms?: number): Promise<void>;
}

/**
 * Writes `config` (a hub config object, hub/config.ts) to `<dir>/<name>.json` and starts a hub on it.
 * `env` is added to the child's environment (the log format is pretty: the lines are matched).
 */
export function startReplicaProcess(o: { name: string; dir: string; config: Record<string, unknown>; env?: Record<string, string> }): ReplicaProcess {
  const configPath = join(o.dir, `${o.name}.json`);
  writeFileSync(configPath, JSON.stringify(o.config, null, 2), { mode: 0o600 });
  const proc = spawn(process.execPath, ['--import', 'tsx', 'hub/main.ts', '--config', configPath], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, MYKEY_LOG_FORMAT: 'pretty', ...o.env },
  });
  let err = '';
  let listened = false;
  const waiters = new Set<() => void>();
  const exited = () => proc.exitCode !== null || proc.signalCode !== null;
  const r: ReplicaProcess = {
    name: o.name,
    proc,
    listening(ms = 120_000) {
      return new Promise<void>((resolve, reject) => {
        if (listened) return resolve();
        if (exited()) return reject(new Error(`replica ${o.name} exited (${proc.exitCode ?? proc.signalCode}): ${err.slice(-3000)}`));
        const done = (e?: Error) => {
          clearTimeout(t);
          waiters.delete(check);
          proc.off('exit', onExit);
          if (e) reject(e);
          else resolve();
        };
        const check = () => listened && done();
        const onExit = () => done(new Error(`replica ${o.name} exited (${proc.exitCode ?? proc.signalCode}) before listening: ${err.slice(-3000)}`));
        const t = setTimeout(() => done(new Error(`replica ${o.name} not listening after ${ms} ms: ${err.slice(-3000)}`)), ms);
        waiters.add(check);
        proc.once('exit', onExit);
      });
    },
    log: (chars = 4000) => err.slice(-chars),
    get running() {
      return !exited();
    },
    kill() {
      if (exited()) return;
      proc.kill('SIGKILL');
      r.killedAt = Date.now();
    },
    stop(ms = 10_000) {
      if (exited()) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const t = setTimeout(() => proc.kill('SIGKILL'), ms);
        proc.once('exit', () => (clearTimeout(t), resolve()));
        proc.kill('SIGTERM');
      });
    },
  };
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => {
    // A line may come in two chunks: the new text is searched with the end of the old.
    const from = Math.max(0, err.length - 100);
    err += d;
    const fresh = err.slice(from);
    if (r.publishingAt === undefined && fresh.includes(PUBLISHES_OUTBOX)) r.publishingAt = Date.now();
    // Keep what a failure report needs, not an unbounded log of a long run.
    if (err.length > 200_000) err = err.slice(-100_000);
    if (!listened && fresh.includes('hub listening')) {
      listened = true;
      for (const w of [...waiters]) w();
    }
  });
  return r;
}
