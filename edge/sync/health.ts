// The agent's health and status: contact with the hub on the monotonic clock (contact-clock.ts), the
// verdict (`stale` when out of touch longer than the bound, `clock_unsure` when that cannot be
// judged, `degraded` when the cache is not synced or the last catch-up failed, else `ok`), and the
// retained status document built from it.
import type { Logger } from '../../shared/log.ts';
import type { EdgeStatus } from '../../shared/sync.ts';
import type { EdgeCache } from '../cache/edge-cache.ts';
import type { DeviceIdentity, EdgeState } from '../state/edge-state.ts';
import type { ContactClock, ContactAssessment } from './contact-clock.ts';

export type Health = EdgeStatus['health'];

export interface HealthDeps {
  clock: ContactClock;
  state: EdgeState;
  cache: EdgeCache;
  log: Logger;
  version: string;
  now: () => number;
  identity: () => DeviceIdentity | undefined;
  connected: () => boolean;
  /** True while the last catch-up failed. */
  catchUpFailed: () => boolean;
  /** Health of other parts (the reader) folded in when the sync itself is ok. */
  extraHealth?: () => Health | undefined;
  /** Told of every change of verdict. */
  changed: (h: Health, previous: Health, ageMs: number | undefined) => void;
}

export class HealthJudge {
  readonly #d: HealthDeps;
  #health: Health = 'degraded';

  constructor(deps: HealthDeps) {
    this.#d = deps;
  }

  /** The last verdict (not re-judged). */
  get current(): Health {
    return this.#health;
  }

  /** Records contact with the hub now (with its Date header when there is one), also on disk. */
  contact(hubDate?: number): void {
    this.#d.clock.recordContact(hubDate);
    const wall = this.#d.clock.lastContactWall;
    if (wall !== undefined) this.#d.state.recordContact(wall);
  }

  /** Staleness as the lookup policy needs it. */
  assess(): ContactAssessment {
    return this.#d.clock.assess(this.#d.connected());
  }

  /** Judges again; tells `changed` when the verdict moved. */
  judge(): Health {
    const a = this.assess();
    const cache = this.#d.cache;
    let h: Health;
    // Never in contact and nothing cached: there is nothing to be stale about yet, only missing.
    if (a.verdict === 'stale' && a.ageMs === undefined && !cache.synced) h = 'degraded';
    else if (a.verdict === 'stale') h = 'stale';
    else if (a.verdict === 'clock_unsure' || a.clockReason) h = 'clock_unsure';
    else if (!cache.synced || this.#d.catchUpFailed()) h = 'degraded';
    else h = this.#d.extraHealth?.() ?? 'ok';
    if (h === this.#health) return h;
    const previous = this.#health;
    this.#health = h;
    this.#d.log.info('health changed', { health: h, previous, ageMs: a.ageMs, clock: a.clockReason });
    this.#d.changed(h, previous, a.ageMs);
    return h;
  }

  /** The status document as it would be published now. */
  status(online: boolean): EdgeStatus {
    const id = this.#d.identity();
    return {
      edgeId: id?.edgeId ?? 'unknown',
      serviceId: id?.serviceId ?? 'unknown',
      online,
      appliedSeq: this.#d.cache.appliedSeq,
      version: this.#d.version.slice(0, 64),
      health: this.#health,
      at: new Date(this.#d.now()).toISOString(),
      counters: this.#d.state.counters(),
    };
  }
}
