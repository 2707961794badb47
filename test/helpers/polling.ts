// Waiting in tests for something another process, socket or timer does: poll a check until it holds,
// with a generous deadline and a failure message that says what never happened. CI runs test files
// in parallel on two shared cores, where a step that takes 50 ms alone can take seconds: a deadline is
// only a guard against a hang, never a measure (performance is shown by bench/, not by tests).

export interface UntilOptions {
  /** What is awaited, for the failure message ("the edge to reconnect"); the check's source when absent. */
  what?: string;
  /** The guard against a hang (default 30 s). */
  timeoutMs?: number;
  /** Pause between checks (default 20 ms); shorter where a test must see a passing state. */
  intervalMs?: number;
  /** More context for the failure message: the last state seen, a log tail. */
  detail?: () => string | Promise<string>;
}

/** Not yet: what a check returns while the awaited thing has not happened. */
type NotYet = undefined | null | false;

export const DEFAULT_UNTIL_MS = 30_000;

/**
 * Calls `check` until it returns something other than undefined, null or false, and returns that
 * (so a check can hand back what it found). Throws, naming `what`, when `timeoutMs` passes first.
 */
export async function until<T>(check: () => T | Promise<T>, opts: UntilOptions = {}): Promise<Exclude<T, NotYet>> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_UNTIL_MS;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== null && v !== false) return v as Exclude<T, NotYet>;
    if (Date.now() > deadline) {
      const what = opts.what ?? check.toString();
      const detail = await opts.detail?.();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `\n${detail}` : ''}`);
    }
    await sleep(opts.intervalMs ?? 20);
  }
}

/** A pause, for the poll loops that act between checks (most tests want `until`). */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * `promise`, or a failure naming `what` once `timeoutMs` pass first: the guard for a single await on
 * a socket, a broker or a child process that could otherwise wait forever (an MQTT connect that is
 * closed before its CONNACK, say), so a hang fails with the step that never finished.
 */
export async function within<T>(promise: Promise<T>, what: string, timeoutMs = DEFAULT_UNTIL_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
