// How long the edge has been out of touch with the hub, and whether its wall clock can be trusted
// to say so. A Raspberry Pi has no real-time clock: after a power cut it may boot in 1970 or at the
// last saved time until NTP answers, and NTP may then move the clock in either direction.
//
// Contact is tracked on the monotonic clock (immune to clock steps) within this process, and on the
// wall clock across restarts. The wall clock is "unsure" when it reads before the build date, when
// it stepped backwards against the monotonic clock, when it reads before the last recorded contact,
// or when it is far from the hub's HTTP Date header. While unsure and without contact since start,
// staleness cannot be judged, and the agent says `clock_unsure` rather than guess. Pure: the clocks
// are passed in.

export interface ClockReading {
  /** Monotonic milliseconds (performance.now()). */
  mono: number;
  /** Wall-clock milliseconds (Date.now()). */
  wall: number;
}

export interface ContactClockOptions {
  /** Longest time without contact before the edge is stale. */
  maxStalenessMs: number;
  /** A wall time known to be in the past (the build date): a clock reading earlier is wrong. */
  notBeforeMs: number;
  /** Largest tolerated distance from the hub's Date header. Default 5 minutes. */
  maxSkewMs?: number;
  /** Largest backwards step of the wall clock that is not called a jump. Default 5 s. */
  jumpToleranceMs?: number;
  /** Wall time of the last contact recorded before this process started. */
  lastContactWall?: number;
  now: () => ClockReading;
}

export type ClockReason = 'before_build_date' | 'jumped_back' | 'before_last_contact' | 'hub_skew';

export interface ContactAssessment {
  /** `stale` when out of touch longer than allowed; `clock_unsure` when that cannot be judged. */
  verdict: 'fresh' | 'stale' | 'clock_unsure';
  /** Milliseconds since the last contact, when known. */
  ageMs?: number;
  /** Why the wall clock is not trusted, if it is not. */
  clockReason?: ClockReason;
}

export class ContactClock {
  readonly #o: Required<Omit<ContactClockOptions, 'lastContactWall'>>;
  readonly #startMono: number;
  #lastContactWall: number | undefined;
  #lastContactMono: number | undefined;
  #last: ClockReading;
  #jumped = false;
  #skewed = false;

  constructor(opts: ContactClockOptions) {
    this.#o = { ...opts, maxSkewMs: opts.maxSkewMs ?? 5 * 60_000, jumpToleranceMs: opts.jumpToleranceMs ?? 5000 };
    this.#lastContactWall = opts.lastContactWall;
    this.#last = opts.now();
    this.#startMono = this.#last.mono;
  }

  /** Records a successful contact; `hubDateMs` is the hub's HTTP Date header when there was one. */
  recordContact(hubDateMs?: number): void {
    const r = this.#read();
    this.#lastContactMono = r.mono;
    if (hubDateMs !== undefined && Number.isFinite(hubDateMs)) {
      // HTTP dates have 1 s resolution (RFC 9110 5.6.7).
      this.#skewed = Math.abs(r.wall - hubDateMs) > this.#o.maxSkewMs + 1000;
      if (!this.#skewed) this.#jumped = false; // the hub vouches for the clock as it is now
    }
    // A new contact supersedes the recorded one, even one recorded under a clock that ran ahead.
    if (!this.#unsureReason(r, true)) this.#lastContactWall = r.wall;
  }

  /** Wall time of the last contact that the clock could vouch for. */
  get lastContactWall(): number | undefined {
    return this.#lastContactWall;
  }

  /** Judges staleness now; `connected` counts as contact this instant. */
  assess(connected: boolean): ContactAssessment {
    const r = this.#read();
    const clockReason = this.#unsureReason(r);
    if (connected) return { verdict: 'fresh', ageMs: 0, ...(clockReason ? { clockReason } : {}) };
    let ageMs: number | undefined;
    if (this.#lastContactMono !== undefined) ageMs = r.mono - this.#lastContactMono;
    else if (!clockReason && this.#lastContactWall !== undefined) ageMs = Math.max(0, r.wall - this.#lastContactWall);
    else if (clockReason) return { verdict: 'clock_unsure', clockReason };
    // Never in contact and nothing recorded: as old as this process, and not fresh.
    if (ageMs === undefined) return { verdict: 'stale', ...(clockReason ? { clockReason } : {}) };
    const verdict = ageMs > this.#o.maxStalenessMs ? 'stale' : 'fresh';
    return { verdict, ageMs, ...(clockReason ? { clockReason } : {}) };
  }

  /** Milliseconds since this clock was created (monotonic). */
  uptimeMs(): number {
    return this.#o.now().mono - this.#startMono;
  }

  #read(): ClockReading {
    const r = this.#o.now();
    const expected = this.#last.wall + (r.mono - this.#last.mono);
    if (r.wall < expected - this.#o.jumpToleranceMs) this.#jumped = true;
    this.#last = r;
    return r;
  }

  #unsureReason(r: ClockReading, ignoreLastContact = false): ClockReason | undefined {
    if (r.wall < this.#o.notBeforeMs) return 'before_build_date';
    if (this.#jumped) return 'jumped_back';
    if (this.#skewed) return 'hub_skew';
    if (!ignoreLastContact && this.#lastContactWall !== undefined && r.wall < this.#lastContactWall - this.#o.jumpToleranceMs) return 'before_last_contact';
    return undefined;
  }
}
