// Group commit: writes that arrive in the same turn of the event loop share one SQLite transaction.
// Each write runs in its own savepoint (better-sqlite3 nests transaction functions that way), so one
// failing write rolls back alone; every caller is answered only after the shared COMMIT, so an
// acknowledged write is as durable as one committed alone. Under load this turns a commit per
// registration into a commit per batch, the largest cost of a registration.
import type { Db } from './db.ts';

interface Pending {
  run: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export function createWriteBatcher(db: Db, { maxBatch = 256, afterCommit }: { maxBatch?: number; afterCommit?: () => void } = {}) {
  let queue: Pending[] = [];
  let scheduled = false;

  const flush = () => {
    scheduled = false;
    const batch = queue;
    queue = [];
    const results: { ok: boolean; value: unknown }[] = [];
    try {
      db.transaction(() => {
        for (const p of batch) {
          try {
            results.push({ ok: true, value: db.transaction(p.run)() });
          } catch (e) {
            results.push({ ok: false, value: e });
          }
        }
      })();
    } catch (e) {
      // The COMMIT itself failed: nothing of this batch is durable.
      for (const p of batch) p.reject(e);
      return;
    }
    batch.forEach((p, i) => (results[i].ok ? p.resolve(results[i].value) : p.reject(results[i].value)));
    afterCommit?.();
  };

  return {
    /** Runs `fn` inside the next group transaction; resolves after that transaction committed. */
    write<T>(fn: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ run: fn, resolve: resolve as (v: unknown) => void, reject });
        if (queue.length >= maxBatch) flush();
        else if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
  };
}

export type WriteBatcher = ReturnType<typeof createWriteBatcher>;
