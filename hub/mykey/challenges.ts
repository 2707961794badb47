// One-time challenges for JPKI proofs. A challenge is 32 random bytes, valid for a short time, for one
// purpose, and usable once. Kept in memory: a hub restart only makes clients ask again.
import { fail, ok, type Result } from '../../shared/errors.ts';

/** What a challenge may be used for. */
export type ChallengePurpose = 'register' | 'holder';

interface Entry {
  purpose: ChallengePurpose;
  expiresAt: number;
  usedAt?: number;
}

export interface ChallengeStoreOptions {
  ttlMs?: number;
  /** Upper bound of outstanding challenges, so a flood cannot exhaust memory (rate limits come first). */
  maxOutstanding?: number;
  random: (n: number) => Uint8Array;
  now: () => number;
}

export type ChallengeCode = 'challenge_unknown' | 'challenge_expired' | 'challenge_replayed';

export function createChallengeStore({ ttlMs = 120_000, maxOutstanding = 200_000, random, now }: ChallengeStoreOptions) {
  const entries = new Map<string, Entry>();
  let lastSweep = now();

  // Used and expired entries are kept for another TTL so that a replay or a late use gets its precise
  // error (challenge_replayed, challenge_expired) rather than challenge_unknown.
  function sweep(t: number) {
    if (t - lastSweep < 1000 && entries.size < maxOutstanding) return;
    lastSweep = t;
    for (const [k, e] of entries) if (e.expiresAt + ttlMs < t) entries.delete(k);
  }

  return {
    ttlMs,
    get size() {
      return entries.size;
    },
    /** Issues a challenge; returns it base64url-encoded with its expiry, or undefined when full. */
    issue(purpose: ChallengePurpose): { challenge: string; expiresAt: number } | undefined {
      const t = now();
      sweep(t);
      if (entries.size >= maxOutstanding) return undefined;
      const challenge = Buffer.from(random(32)).toString('base64url');
      const expiresAt = t + ttlMs;
      entries.set(challenge, { purpose, expiresAt });
      return { challenge, expiresAt };
    },
    /** Consumes a challenge: valid once, for its purpose, before it expires. */
    consume(challenge: string, purpose: ChallengePurpose): Result<Uint8Array, ChallengeCode> {
      const t = now();
      const e = entries.get(challenge);
      if (!e) return fail('challenge_unknown', 'this challenge was not issued by this hub, or it is too old');
      if (e.usedAt !== undefined) return fail('challenge_replayed', 'this challenge has already been used');
      if (e.purpose !== purpose) return fail('challenge_unknown', `this challenge was issued for ${e.purpose}, not ${purpose}`);
      e.usedAt = t;
      if (e.expiresAt < t) return fail('challenge_expired', 'this challenge has expired; ask for a new one');
      return ok(new Uint8Array(Buffer.from(challenge, 'base64url')));
    },
  };
}

export type ChallengeStore = ReturnType<typeof createChallengeStore>;
