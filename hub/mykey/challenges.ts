// One-time challenges for JPKI proofs. A challenge is 32 random bytes, valid for a short time, usable
// once, and bound to what it was asked for: one operation, that operation's parameters (the MyKey ID
// wanted in a change of id, the service of an unlink, the card's role in a carry-over, the service and
// service ID of a counter link) and, for a counter link, the device that asked. A proof made over it is
// accepted for exactly that, so a PIN proof collected for one thing (by a compromised edge, say) can
// never be spent on another.
//
// Kept in memory: a hub restart only makes clients ask again. Memory is bounded twice over: a global
// cap, and a quota of outstanding challenges per client (an IPv6 /64, an IPv4 address, an edge), so one
// client flooding fills only its own quota and never the store everyone else draws from. We chose a
// quota over stateless signed challenges because a stateless design still needs a used-set that grows
// with consumption, and the bound, per-operation parameters would then travel (and have to be
// re-validated) in every challenge; the stateful store keeps challenges short and opaque.
import { fail, ok, type Result } from '../../shared/errors.ts';

/** The operations a proof can be for. */
export type ChallengeOperation = 'register' | 'status' | 'change_id' | 'invalidate' | 'carry_over' | 'unlink' | 'counter_link';

/** What a challenge is bound to. */
export interface ChallengeBinding {
  operation: ChallengeOperation;
  /** The operation's parameters, compared exactly (callers normalise them first). */
  params?: Readonly<Record<string, string>>;
  /** The edge id of the device that asked (counter links). */
  device?: string;
}

interface Entry {
  operation: ChallengeOperation;
  params: string;
  device: string | undefined;
  client: string;
  expiresAt: number;
  usedAt?: number;
}

export interface ChallengeStoreOptions {
  ttlMs?: number;
  /** Upper bound of challenges kept, so a flood cannot exhaust memory (rate limits come first). */
  maxOutstanding?: number;
  /** Upper bound of outstanding (unused, unexpired) challenges of one client. */
  maxPerClient?: number;
  random: (n: number) => Uint8Array;
  now: () => number;
}

export type ChallengeCode = 'challenge_unknown' | 'challenge_expired' | 'challenge_replayed' | 'challenge_operation_mismatch' | 'challenge_parameters_mismatch' | 'challenge_device_mismatch';

export type IssueCode = 'challenge_quota_exceeded' | 'unavailable';

/** Parameters in one canonical string (sorted keys), so that comparison is exact and order-free. */
export function canonical(params: Readonly<Record<string, string>> | undefined): string {
  if (!params) return '{}';
  return JSON.stringify(
    Object.fromEntries(
      Object.keys(params)
        .sort()
        .map((k) => [k, params[k]]),
    ),
  );
}

export function createChallengeStore({ ttlMs = 120_000, maxOutstanding = 200_000, maxPerClient = 256, random, now }: ChallengeStoreOptions) {
  const entries = new Map<string, Entry>();
  /** Outstanding challenges per client: issued, not yet used, not yet swept. */
  const perClient = new Map<string, number>();
  let lastSweep = now();

  function release(e: Entry) {
    const n = (perClient.get(e.client) ?? 1) - 1;
    if (n <= 0) perClient.delete(e.client);
    else perClient.set(e.client, n);
  }

  // Used and expired entries are kept for another TTL so that a replay or a late use gets its precise
  // error (challenge_replayed, challenge_expired) rather than challenge_unknown. An expired, unused
  // entry no longer counts against its client's quota.
  function sweep(t: number, force = false) {
    if (!force && t - lastSweep < 1000 && entries.size < maxOutstanding) return;
    lastSweep = t;
    for (const [k, e] of entries) {
      if (e.usedAt === undefined && e.expiresAt < t) {
        e.usedAt = e.expiresAt;
        release(e);
      }
      if (e.expiresAt + ttlMs < t) entries.delete(k);
    }
  }

  /** Drops the kept (used or expired) entries, oldest first, to make room for new ones. */
  function dropKept() {
    for (const [k, e] of entries) {
      if (entries.size < maxOutstanding) return;
      if (e.usedAt !== undefined) entries.delete(k);
    }
  }

  return {
    ttlMs,
    maxPerClient,
    get size() {
      return entries.size;
    },
    /** Outstanding challenges of one client (for tests and health). */
    outstanding: (client: string) => perClient.get(client) ?? 0,
    /**
     * Issues a challenge bound to `binding` for `client` (the rate-limit key of the asker); returns it
     * base64url-encoded with its expiry, or why not.
     */
    issue(binding: ChallengeBinding, client: string): Result<{ challenge: string; expiresAt: number }, IssueCode> {
      const t = now();
      sweep(t);
      if ((perClient.get(client) ?? 0) >= maxPerClient) {
        sweep(t, true);
        if ((perClient.get(client) ?? 0) >= maxPerClient) {
          return fail('challenge_quota_exceeded', `at most ${maxPerClient} challenges may be outstanding per client; use or let some expire first`);
        }
      }
      if (entries.size >= maxOutstanding) dropKept();
      if (entries.size >= maxOutstanding) return fail('unavailable', 'too many outstanding challenges; try again shortly');
      const challenge = Buffer.from(random(32)).toString('base64url');
      const expiresAt = t + ttlMs;
      entries.set(challenge, { operation: binding.operation, params: canonical(binding.params), device: binding.device, client, expiresAt });
      perClient.set(client, (perClient.get(client) ?? 0) + 1);
      return ok({ challenge, expiresAt });
    },
    /**
     * Consumes a challenge: valid once, for the operation, parameters and device it was issued for,
     * before it expires. A challenge presented for anything else is spent all the same: whoever holds
     * a proof made for one thing and tries it on another does not get to try again.
     */
    consume(challenge: string, expected: ChallengeBinding): Result<Uint8Array, ChallengeCode> {
      const t = now();
      const e = entries.get(challenge);
      if (!e) return fail('challenge_unknown', 'this challenge was not issued by this hub, or it is too old');
      if (e.usedAt !== undefined) return fail(e.expiresAt < t && e.usedAt === e.expiresAt ? 'challenge_expired' : 'challenge_replayed', 'this challenge has already been used or has expired');
      e.usedAt = t;
      release(e);
      if (e.operation !== expected.operation) {
        return fail('challenge_operation_mismatch', `this challenge was issued for ${e.operation}, not ${expected.operation}`);
      }
      if (e.params !== canonical(expected.params)) return fail('challenge_parameters_mismatch', `this challenge was issued for ${e.operation} with other parameters`);
      if (e.device !== expected.device) return fail('challenge_device_mismatch', 'this challenge was issued to another device');
      if (e.expiresAt < t) return fail('challenge_expired', 'this challenge has expired; ask for a new one');
      return ok(new Uint8Array(Buffer.from(challenge, 'base64url')));
    },
  };
}

/**
 * What the routes and the service use: this in-memory store (one hub), or the shared one of hub
 * replicas on PostgreSQL (hub/replicas/shared-challenges.ts), whose answers are promises.
 */
export interface ChallengeStore {
  readonly ttlMs: number;
  readonly maxPerClient: number;
  issue(binding: ChallengeBinding, client: string): Result<{ challenge: string; expiresAt: number }, IssueCode> | Promise<Result<{ challenge: string; expiresAt: number }, IssueCode>>;
  consume(challenge: string, expected: ChallengeBinding): Result<Uint8Array, ChallengeCode> | Promise<Result<Uint8Array, ChallengeCode>>;
}
