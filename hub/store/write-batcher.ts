// Group commit: writes that arrive in the same turn of the event loop share one transaction (SQLite or
// PostgreSQL, hub/store/sql.ts). Each write runs in its own savepoint (a tx inside a tx), so one
// failing write rolls back alone; every caller is answered only after the shared COMMIT, so an
// acknowledged write is as durable as one committed alone. Under load this turns a commit per
// registration into a commit per batch, the largest cost of a registration.
//
// The transaction is taken with BEGIN IMMEDIATE: another process (the CRL import command) may be
// writing, and a deferred transaction that read first and then tries to write fails at once with
// SQLITE_BUSY when the other committed in between (its snapshot is stale; the busy timeout does not
// apply). Taking the write lock first makes it wait its turn instead. A store still busy after the
// busy timeout is retried a few times, then answered `unavailable` (503 with Retry-After), never 500.
import { MyKeyError } from '../../shared/errors.ts';
import type { Db } from './db.ts';
import { sqlOf, type Sql } from './sql.ts';

interface Pending {
  run: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * True for "the store is busy, try again" errors: SQLite's lock errors (SQLITE_BUSY and its extended
 * codes, SQLITE_LOCKED); PostgreSQL's serialization failure, deadlock, and a server that cannot take
 * a connection now (SQLSTATE 40001, 40P01, 57P03, 53300).
 */
export function isBusyError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') || code === '40001' || code === '40P01' || code === '57P03' || code === '53300';
}

/** The error a caller gets when the store stayed busy: `unavailable`, with the store's error as cause. */
export function busyUnavailable(e: unknown): MyKeyError {
  return new MyKeyError('unavailable', 'the store is busy; retry shortly', { cause: e });
}

export interface WriteBatcherOptions {
  maxBatch?: number;
  /**
   * Called after each batch committed, with what `beforeBatch` returned when that batch began (a
   * counter, say, so that the hook can tell whether this batch moved it).
   */
  afterCommit?: (before: number) => void;
  beforeBatch?: () => number;
  busyRetries?: number;
  busyRetryMs?: number;
}

export function createWriteBatcher(target: Sql | Db, { maxBatch = 256, afterCommit, beforeBatch, busyRetries = 3, busyRetryMs = 50 }: WriteBatcherOptions = {}) {
  const sql = sqlOf(target);
  let queue: Pending[] = [];
  let scheduled = false;

  const flush = async (batch: Pending[], attempt: number): Promise<void> => {
    const results: { ok: boolean; value: unknown }[] = [];
    const before = beforeBatch?.() ?? 0;
    try {
      await sql.tx(
        async () => {
          for (const p of batch) {
            try {
              results.push({ ok: true, value: await sql.tx(p.run) });
            } catch (e) {
              results.push({ ok: false, value: e });
            }
          }
        },
        { immediate: true },
      );
    } catch (e) {
      // BEGIN or COMMIT failed: nothing of this batch is durable.
      if (isBusyError(e) && attempt < busyRetries) {
        setTimeout(() => void flush(batch, attempt + 1), busyRetryMs * (attempt + 1));
        return;
      }
      const err = isBusyError(e) ? busyUnavailable(e) : e;
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => void (results[i].ok ? p.resolve(results[i].value) : p.reject(isBusyError(results[i].value) ? busyUnavailable(results[i].value) : results[i].value)));
    afterCommit?.(before);
  };

  const flushQueue = () => {
    scheduled = false;
    const batch = queue;
    queue = [];
    if (batch.length > 0) void flush(batch, 0);
  };

  return {
    /** Runs `fn` inside the next group transaction; resolves after that transaction committed. */
    write<T>(fn: () => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ run: fn, resolve: resolve as (v: unknown) => void, reject });
        if (queue.length >= maxBatch) flushQueue();
        else if (!scheduled) {
          scheduled = true;
          setImmediate(flushQueue);
        }
      });
    },
  };
}

export type WriteBatcher = ReturnType<typeof createWriteBatcher>;
