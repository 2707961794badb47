// Exponential backoff with jitter for reconnects and retries: the n-th delay is drawn uniformly from
// [d/2, d] where d = min(max, min * 2^n), so a shop full of readers that lost the same Wi-Fi does
// not knock on the hub in lockstep when it comes back.

export interface BackoffOptions {
  minMs?: number;
  maxMs?: number;
  random?: () => number;
}

export class Backoff {
  readonly #min: number;
  readonly #max: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(opts: BackoffOptions = {}) {
    this.#min = opts.minMs ?? 1000;
    this.#max = opts.maxMs ?? 60_000;
    this.#random = opts.random ?? Math.random;
  }

  /** The next delay. */
  next(): number {
    const d = Math.min(this.#max, this.#min * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(d / 2 + (this.#random() * d) / 2);
  }

  /** Back to the shortest delay (after a success). */
  reset(): void {
    this.#attempt = 0;
  }
}
