// A hub in its own process for the benches that load it over HTTP: `tsx hub/main.ts --config`, with the
// production log form (JSON lines, access log at info) as a deployed hub writes it. Resolves with the
// port once the hub says it listens; a hub that does not listen in time fails the bench. Lines are
// handed to `onLine` as they come (a bench that watches the hub's own log lines); nothing is kept but
// the last few KB for the error message.
import { spawn, type ChildProcess } from 'node:child_process';
import { listeningUrl } from '../test/helpers/hub-log.ts';

export interface HubProcess {
  proc: ChildProcess;
  port: number;
}

export interface HubProcessOptions {
  /** Extra node flags, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`. */
  nodeArgs?: readonly string[];
  /** Every stderr line of the hub, start-up and after. */
  onLine?: (line: string) => void;
  /** How long the hub may take to listen (default 120 s). */
  timeoutMs?: number;
}

/** Node flags from an environment variable holding them space-separated (BENCH_HUB_NODE_ARGS and the like). */
export function nodeArgsFrom(value: string | undefined): string[] {
  return (value ?? '').split(' ').filter(Boolean);
}

export function startHubProcess(configPath: string, { nodeArgs = [], onLine, timeoutMs = 120_000 }: HubProcessOptions = {}): Promise<HubProcess> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'hub/main.ts', '--config', configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, MYKEY_LOG_LEVEL: 'info', MYKEY_LOG_FORMAT: 'json' },
    });
    let partial = '';
    let tail = '';
    let up = false;
    const timer = setTimeout(() => {
      if (!up) reject(new Error(`the hub did not listen within ${timeoutMs / 1000} s: ${tail}`));
    }, timeoutMs);
    proc.stderr!.on('data', (d) => {
      tail = (tail + d).slice(-4000);
      // Once up, a hub without a line reader is only drained (its access log is not accumulated).
      if (up && !onLine) return;
      partial += d;
      let nl: number;
      // biome-ignore lint/suspicious/noAssignInExpressions: the usual split-into-lines loop; the assignment is its condition
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        onLine?.(line);
        const url = up ? undefined : listeningUrl(line);
        if (url) {
          up = true;
          clearTimeout(timer);
          resolve({ proc, port: Number(new URL(url).port) });
        }
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`hub exited ${code}: ${tail}`));
    });
  });
}

/** Stops a hub process: SIGINT lets a profiled hub write its profile; SIGKILL if it does not go. */
export async function stopHubProcess(hub: HubProcess): Promise<void> {
  hub.proc.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 1500));
  hub.proc.kill('SIGKILL');
}

/** The fields of a log line, in either form the hub writes (JSON lines, or `... msg {fields}`), if it is `msg`'s. */
export function logFields(line: string, msg: string): Record<string, unknown> | undefined {
  if (!line.includes(msg)) return undefined;
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    return o.msg === msg ? o : undefined;
  } catch {
    const m = line.match(new RegExp(`${msg} (\\{.*\\})$`));
    return m ? (JSON.parse(m[1]) as Record<string, unknown>) : undefined;
  }
}
