// The touch-and-go path as a whole: an identity read off a card becomes a decision (decide.ts) and a
// touch result handed to the targets, and the aggregate counters move. No PIN, no network: the one
// wait is the keyed identity's derivation (scrypt on the libuv pool, edge/lookup/touch-keys.ts).
// Touches are decided one after another, in the order they came. Nothing about the touch is kept
// once it is handed over.
import { randomUUID } from 'node:crypto';
import type { EdgeCounters } from '../../shared/sync.ts';
import type { TouchResult } from '../handoff/types.ts';
import { touchKeys } from './touch-keys.ts';
import { decide, type HealthView, type LookupDecision, type LookupInput, type MappingCache, type StalenessPolicy, type TouchIdentity } from './decide.ts';

export interface TouchLookupDeps {
  cache: MappingCache;
  /** The service's sync secret, once known. */
  secret: () => Uint8Array | undefined;
  /** The sync layer's health at this moment. */
  health: () => HealthView;
  policy: StalenessPolicy;
  handoff: { dispatch(result: TouchResult): void };
  context: { serviceId: string; edgeId: string; storeId?: string };
  /** Wall clock in ms (Date.now by default). */
  now?: () => number;
  /** Random touch id (randomUUID by default). */
  randomId?: () => string;
  /** Also told of every counter step (the persistent aggregate counters in the state directory). */
  onCount?: (name: keyof EdgeCounters) => void;
}

/** Aggregate counters of the touch path: the shared EdgeCounters plus the degraded answers. */
export type TouchCounters = EdgeCounters & { degraded: number };

export class TouchLookup {
  readonly #d: TouchLookupDeps;
  readonly #now: () => number;
  readonly #randomId: () => string;
  readonly #counters: TouchCounters = { touches: 0, handoffs: 0, notLinked: 0, refused: 0, errors: 0, degraded: 0 };
  #queue: Promise<unknown> = Promise.resolve();

  constructor(deps: TouchLookupDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.#randomId = deps.randomId ?? randomUUID;
  }

  /** Decides one touch and hands the result over; resolves to both (the caller must not keep them). */
  touch(reader: string, identity: TouchIdentity): Promise<{ decision: LookupDecision; result: TouchResult }> {
    const now = this.#now();
    const run = this.#queue.then(() => this.#touch(reader, identity, now));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #touch(reader: string, identity: TouchIdentity, now: number): Promise<{ decision: LookupDecision; result: TouchResult }> {
    const secret = this.#d.secret();
    const keys = secret && this.#d.cache.synced ? await touchKeys(secret, identity, this.#d.cache.scheme) : undefined;
    const decision = decide({ identity, cache: this.#d.cache, secret, keys, health: this.#d.health(), now, policy: this.#d.policy });
    const result = this.#result(reader, now, decision);
    if (identity.kind === 'mykey') result.mykeyId = identity.mykeyId;
    this.#count(decision);
    this.#d.handoff.dispatch(result);
    return { decision, result };
  }

  /**
   * The memory-hard keys of an identity under the cache's derivation (touchKeys), or undefined while
   * the edge has no secret or no synced cache: for a decision made outside touch() (edge/pintouch).
   */
  async keysFor(identity: TouchIdentity): Promise<string[] | undefined> {
    const secret = this.#d.secret();
    return secret && this.#d.cache.synced ? touchKeys(secret, identity, this.#d.cache.scheme) : undefined;
  }

  /** What decide() needs besides the identity and its keys, as it stands now. */
  lookupInput(): Omit<LookupInput, 'identity' | 'keys'> {
    return { cache: this.#d.cache, secret: this.#d.secret(), health: this.#d.health(), now: this.#now(), policy: this.#d.policy };
  }

  /**
   * Hands over a decision made outside touch() (the PIN-checked touch, edge/pintouch): the same
   * result, counters and targets as a touch. `reason` of a refusal may then be any error code.
   */
  settle(reader: string, decision: LookupDecision | { outcome: 'refused'; reason: string }, identity?: TouchIdentity): TouchResult {
    const now = this.#now();
    const result = this.#result(reader, now, decision);
    if (identity?.kind === 'mykey') result.mykeyId = identity.mykeyId;
    this.#count(decision);
    this.#d.handoff.dispatch(result);
    return result;
  }

  /** Resolves once every touch given so far is decided and handed over. */
  idle(): Promise<void> {
    return this.#queue.then(() => undefined);
  }

  /** A touch whose card could not be read: counted and shown, with the error code only. */
  touchFailed(reader: string, code: string): TouchResult {
    this.#step('touches');
    this.#step('errors');
    const result: TouchResult = { ...this.#base(reader, this.#now()), outcome: 'refused', reason: code };
    this.#d.handoff.dispatch(result);
    return result;
  }

  /** Aggregate counters since start. */
  counters(): TouchCounters {
    return { ...this.#counters };
  }

  #base(reader: string, now: number): Omit<TouchResult, 'outcome'> {
    const { serviceId, edgeId, storeId } = this.#d.context;
    return { transaction: this.#randomId(), serviceId, edgeId, ...(storeId ? { storeId } : {}), reader, at: new Date(now).toISOString() };
  }

  #result(reader: string, now: number, d: LookupDecision | { outcome: 'refused'; reason: string }): TouchResult {
    const base = this.#base(reader, now);
    switch (d.outcome) {
      case 'linked':
        return { ...base, outcome: 'linked', serviceUserId: d.serviceUserId };
      case 'not_linked':
        return { ...base, outcome: 'not_linked' };
      case 'refused':
        return { ...base, outcome: 'refused', reason: d.reason };
      case 'degraded':
        return {
          ...base,
          outcome: 'degraded',
          reason: d.reason,
          answer: d.answer.outcome,
          ...(d.answer.outcome === 'linked' ? { serviceUserId: d.answer.serviceUserId } : {}),
        };
    }
  }

  #count(d: LookupDecision | { outcome: 'refused'; reason: string }): void {
    this.#step('touches');
    if (d.outcome === 'linked') this.#step('handoffs');
    else if (d.outcome === 'not_linked') this.#step('notLinked');
    else if (d.outcome === 'refused') this.#step('refused');
    else {
      this.#counters.degraded++;
      this.#step(d.answer.outcome === 'linked' ? 'handoffs' : 'notLinked');
    }
  }

  #step(name: keyof EdgeCounters): void {
    this.#counters[name]++;
    this.#d.onCount?.(name);
  }
}
