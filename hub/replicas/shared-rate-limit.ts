// Token buckets of hub replicas on PostgreSQL: one bucket per (limit, client) in the shared database,
// so a client spreading its requests over the replicas behind a load balancer is counted once.
//
// One statement per request: the upsert refills the bucket for the time since its last request,
// takes a token when there is one, and says whether it did; PostgreSQL's row lock makes concurrent
// requests of one client (on any replica) take their turns on the row.
import type { Sql } from '../store/sql.ts';

/** The shared side of hub/http/rate-limit.ts. */
export interface RateBuckets {
  /** Takes one token of `client`'s bucket in `scope` at `t`; `ok` false when there was none (`tokens` is what is left). */
  take(scope: string, client: string, perSecond: number, burst: number, t: number): Promise<{ ok: boolean; tokens: number }>;
}

// refill = LEAST(burst, tokens + elapsed * perSecond); a token is taken when refill >= 1.
const TAKE = `
  INSERT INTO replica_rate_buckets (scope, client, tokens, at, ok) VALUES (?, ?, ?, ?, TRUE)
  ON CONFLICT (scope, client) DO UPDATE SET
    tokens = LEAST(EXCLUDED.tokens + 1, replica_rate_buckets.tokens + GREATEST(0, EXCLUDED.at - replica_rate_buckets.at) / 1000.0 * ?)
             - CASE WHEN LEAST(EXCLUDED.tokens + 1, replica_rate_buckets.tokens + GREATEST(0, EXCLUDED.at - replica_rate_buckets.at) / 1000.0 * ?) >= 1 THEN 1 ELSE 0 END,
    ok = LEAST(EXCLUDED.tokens + 1, replica_rate_buckets.tokens + GREATEST(0, EXCLUDED.at - replica_rate_buckets.at) / 1000.0 * ?) >= 1,
    at = GREATEST(replica_rate_buckets.at, EXCLUDED.at)
  RETURNING tokens, ok`;

const PURGE = 'DELETE FROM replica_rate_buckets WHERE at < ?';

export function createSharedRateBuckets(sql: Sql, opts: { now?: () => number; idleMs?: number } = {}): RateBuckets {
  const now = opts.now ?? Date.now;
  // A bucket idle this long is full again whatever its limit (burst / perSecond is far below it).
  const idleMs = opts.idleMs ?? 3600_000;
  let lastPurge = now();
  return {
    async take(scope, client, perSecond, burst, t) {
      if (t - lastPurge > 60_000) {
        lastPurge = t;
        await sql.run(PURGE, [t - idleMs]);
      }
      const r = await sql.get<{ tokens: number; ok: boolean }>(TAKE, [scope, client, burst - 1, t, perSecond, perSecond, perSecond]);
      return { ok: r?.ok === true, tokens: r?.tokens ?? 0 };
    },
  };
}
