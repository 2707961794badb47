// The touch-and-go decision (マイキーID照会): what a touch answers, from the identity read off the
// card, the local cache, the sync health and the clock. Pure: no PIN, no network, no I/O; the same
// inputs give the same decision. A MyKey ID whose suspension or unlink has been applied is simply
// absent from the cache (the change purged its keys), so it can only ever come out as not linked.
import { keyedId, type KeyScheme } from '../../shared/sync.ts';
import { certIdentityOf } from './cert-key.ts';

/** What a touch yields, as far as the lookup cares (edge/reader's CardIdentity fits). */
export type TouchIdentity = { kind: 'mykey'; mykeyId: string } | { kind: 'cert'; certDer: Uint8Array };

/** The cache as the lookup sees it: keyed identity -> service user id. */
export interface MappingCache {
  get(key: string): string | undefined;
  /** False until the cache holds a service's mappings (snapshot or checkpoint): a miss then means nothing. */
  readonly synced: boolean;
  /** The derivation of every key held, when known (edge/cache EdgeCache.scheme); absent: any. */
  readonly scheme?: KeyScheme | undefined;
}

/** The sync layer's view of its own health. */
export type SyncState = 'ok' | 'degraded' | 'stale' | 'clock_unsure';

/** Health as a snapshot of values, taken at the touch. */
export interface HealthView {
  state: SyncState;
  /** Wall-clock ms of the last contact with the hub (a message, a successful fetch), if any is known. */
  lastContactMs: number | undefined;
}

/** How stale the edge may be, and what it does beyond that. */
export interface StalenessPolicy {
  maxStalenessMs: number;
  whenStale: 'refuse' | 'answer-with-warning';
}

/** The cache's answer. */
export type Answer = { outcome: 'linked'; serviceUserId: string } | { outcome: 'not_linked' };

/** Why a touch was not answered. */
export type RefusalReason = 'stale' | 'clock_unsure' | 'not_synced' | 'unreadable_identity';

/** The decision for one touch. */
export type LookupDecision =
  | { outcome: 'linked'; serviceUserId: string }
  | { outcome: 'not_linked' }
  | { outcome: 'refused'; reason: RefusalReason }
  | { outcome: 'degraded'; reason: 'stale' | 'clock_unsure'; answer: Answer; lastContactMs: number | undefined };

export interface LookupInput {
  identity: TouchIdentity;
  cache: MappingCache;
  /** The service's sync secret (key of the keyed identities); undefined until the hub gave it. */
  secret: Uint8Array | undefined;
  /**
   * The touched card's keyed identity under the memory-hard derivation, derived before the decision
   * (edge/lookup/touch-keys.ts; scrypt is too slow for this pure function to run). The legacy HMAC key
   * from `secret` is looked up too, so a cache of either derivation answers during a change.
   */
  keys?: readonly string[];
  health: HealthView;
  /** Wall-clock ms now. */
  now: number;
  policy: StalenessPolicy;
}

/**
 * A clock more than this far behind the last contact has been set back (or was never set, as on a
 * board without a real-time clock after a power cut): staleness cannot be judged from it.
 */
export const CLOCK_BACKWARDS_TOLERANCE_MS = 60_000;

/** Whether the cache can be trusted as up to date at `now`. */
export function freshness(health: HealthView, now: number, maxStalenessMs: number): 'fresh' | 'stale' | 'clock_unsure' {
  if (health.state === 'clock_unsure') return 'clock_unsure';
  const last = health.lastContactMs;
  if (last === undefined) return 'stale'; // never heard from the hub: nothing proves the cache current
  if (now < last - CLOCK_BACKWARDS_TOLERANCE_MS) return 'clock_unsure';
  if (health.state === 'stale' || now - last > maxStalenessMs) return 'stale';
  return 'fresh';
}

/** The legacy (HMAC) keyed identity of a touched card under the service secret, or undefined when unreadable. */
export function identityKey(secret: Uint8Array, identity: TouchIdentity): string | undefined {
  if (identity.kind === 'mykey') return keyedId(secret, 'mykey', identity.mykeyId);
  const id = certIdentityOf(identity.certDer, 'hmac-sha256');
  return id.ok ? keyedId(secret, 'cert', id.value) : undefined;
}

/** Decides what one touch answers. */
export function decide(input: LookupInput): LookupDecision {
  const { cache, secret } = input;
  if (!cache.synced || !secret) return { outcome: 'refused', reason: 'not_synced' };
  const fresh = freshness(input.health, input.now, input.policy.maxStalenessMs);
  if (fresh !== 'fresh' && input.policy.whenStale === 'refuse') return { outcome: 'refused', reason: fresh };
  const key = identityKey(secret, input.identity);
  if (key === undefined) return { outcome: 'refused', reason: 'unreadable_identity' };
  let serviceUserId: string | undefined;
  for (const k of input.keys ?? []) {
    serviceUserId = cache.get(k);
    if (serviceUserId !== undefined) break;
  }
  // The legacy key only where the cache may hold legacy keys: under a memory-hard derivation it is
  // never looked up (its certificate identity has no issuing key).
  if (cache.scheme === undefined || cache.scheme === 'hmac-sha256') serviceUserId ??= cache.get(key);
  const answer: Answer = serviceUserId === undefined ? { outcome: 'not_linked' } : { outcome: 'linked', serviceUserId };
  if (fresh === 'fresh') return answer;
  return { outcome: 'degraded', reason: fresh, answer, lastContactMs: input.health.lastContactMs };
}
