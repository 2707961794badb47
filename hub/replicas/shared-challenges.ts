// The challenge store of hub replicas on PostgreSQL: the same contract as the in-memory store
// (hub/mykey/challenges.ts: bound to an operation, its parameters and a device, used once, a quota
// of outstanding challenges per client), kept in the shared database so that a challenge issued by
// one replica is accepted, once, by whichever replica the proof reaches.
//
// Used once across replicas: the consume is one UPDATE ... WHERE used_at IS NULL, so of two replicas
// consuming the same challenge at once, PostgreSQL lets exactly one change the row (the second
// re-checks the condition on the committed row and changes nothing).
import { fail, ok, type Result } from '../../shared/errors.ts';
import { canonical, type ChallengeBinding, type ChallengeCode, type ChallengeStore, type IssueCode } from '../mykey/challenges.ts';
import type { Sql } from '../store/sql.ts';

export interface SharedChallengeOptions {
  ttlMs?: number;
  maxPerClient?: number;
  /** Upper bound of challenges kept (the table is swept of old rows as in memory). */
  maxOutstanding?: number;
  random: (n: number) => Uint8Array;
  now: () => number;
}

type Row = { operation: string; params: string; device: string | null; expires_at: number; used_at: number | null };

const Q = {
  outstanding: 'SELECT COUNT(*) AS n FROM replica_challenges WHERE client = ? AND used_at IS NULL AND expires_at >= ?',
  total: 'SELECT COUNT(*) AS n FROM replica_challenges',
  insert: 'INSERT INTO replica_challenges (challenge, operation, params, device, client, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
  consume: 'UPDATE replica_challenges SET used_at = ? WHERE challenge = ? AND used_at IS NULL RETURNING operation, params, device, expires_at, used_at',
  get: 'SELECT operation, params, device, expires_at, used_at FROM replica_challenges WHERE challenge = ?',
  // Kept another TTL after expiry, as in memory, so that a late replay gets its precise error.
  sweep: 'DELETE FROM replica_challenges WHERE expires_at < ?',
};

export function createSharedChallengeStore(sql: Sql, { ttlMs = 120_000, maxPerClient = 256, maxOutstanding = 2_000_000, random, now }: SharedChallengeOptions): ChallengeStore {
  let lastSweep = 0;
  /** Rows in the table, counted every 10 s at most (a global cap, as in memory). */
  let total = 0;
  let lastTotal = 0;
  async function sweep(t: number): Promise<void> {
    // One sweep a second per replica at most: a DELETE on an index range.
    if (t - lastSweep < 1000) return;
    lastSweep = t;
    await sql.run(Q.sweep, [t - ttlMs]);
  }
  return {
    ttlMs,
    maxPerClient,
    async issue(binding: ChallengeBinding, client: string): Promise<Result<{ challenge: string; expiresAt: number }, IssueCode>> {
      const t = now();
      await sweep(t);
      // Counted then inserted: replicas issuing to one client at the same instant can overshoot the
      // quota by the number of requests in flight, never more (the rate limits come first).
      const n = (await sql.get<{ n: number }>(Q.outstanding, [client, t]))?.n ?? 0;
      if (n >= maxPerClient) return fail('challenge_quota_exceeded', `at most ${maxPerClient} challenges may be outstanding per client; use or let some expire first`);
      if (t - lastTotal > 10_000) {
        lastTotal = t;
        total = (await sql.get<{ n: number }>(Q.total))?.n ?? 0;
      }
      if (total >= maxOutstanding) return fail('unavailable', 'too many outstanding challenges; try again shortly');
      const challenge = Buffer.from(random(32)).toString('base64url');
      const expiresAt = t + ttlMs;
      await sql.run(Q.insert, [challenge, binding.operation, canonical(binding.params), binding.device ?? null, client, expiresAt]);
      return ok({ challenge, expiresAt });
    },
    async consume(challenge: string, expected: ChallengeBinding): Promise<Result<Uint8Array, ChallengeCode>> {
      const t = now();
      const e = await sql.get<Row>(Q.consume, [t, challenge]);
      if (!e) {
        const seen = await sql.get<Row>(Q.get, [challenge]);
        if (!seen) return fail('challenge_unknown', 'this challenge was not issued by this hub, or it is too old');
        // Presented first after it expired: expired; used before: replayed (as in memory).
        return fail(seen.used_at !== null && seen.used_at > seen.expires_at ? 'challenge_expired' : 'challenge_replayed', 'this challenge has already been used or has expired');
      }
      if (e.operation !== expected.operation) return fail('challenge_operation_mismatch', `this challenge was issued for ${e.operation}, not ${expected.operation}`);
      if (e.params !== canonical(expected.params)) return fail('challenge_parameters_mismatch', `this challenge was issued for ${e.operation} with other parameters`);
      if ((e.device ?? undefined) !== expected.device) return fail('challenge_device_mismatch', 'this challenge was issued to another device');
      if (e.expires_at < t) return fail('challenge_expired', 'this challenge has expired; ask for a new one');
      return ok(new Uint8Array(Buffer.from(challenge, 'base64url')));
    },
  };
}
