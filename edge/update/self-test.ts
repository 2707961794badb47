// The self-test a new version must pass before it is kept: every check true within the time given.
// The checks are the agent's own (online at the hub, the reader layer up, a lookup through the cache);
// a check that throws counts as failing, with its message kept for the report.

export interface SelfTestCheck {
  name: string;
  run: () => boolean | Promise<boolean>;
}

export type SelfTestResult = { ok: true } | { ok: false; failing: string[]; reason: string };

/** Polls the checks until all pass or `timeoutMs` has passed. */
export async function runSelfTest(checks: readonly SelfTestCheck[], timeoutMs: number, intervalMs = 250): Promise<SelfTestResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failing: string[] = [];
    const notes: string[] = [];
    for (const c of checks) {
      try {
        if (!(await c.run())) failing.push(c.name);
      } catch (e) {
        failing.push(c.name);
        notes.push(`${c.name}: ${(e as Error).message}`.slice(0, 100));
      }
    }
    if (failing.length === 0) return { ok: true };
    if (Date.now() + intervalMs > deadline) return { ok: false, failing, reason: `self-test failed: ${failing.join(', ')}${notes.length ? ` (${notes.join('; ')})` : ''}` };
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
