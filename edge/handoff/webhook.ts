// Hand-off to the business system's HTTP endpoint: one JSON POST per touch, a time limit per attempt,
// retries with exponential backoff and jitter, in a bounded in-memory queue. Nothing waits for it:
// deliver() queues and returns, so a slow or dead business system never holds up the next touch.
// The queue is memory only on purpose: a touch result must not outlive the moment (no usage history),
// and a lending desk that was down for minutes wants the holder to touch again, not a late replay.
import type { Logger } from '../../shared/log.ts';
import { newWebhookId, signWebhook } from '../../shared/webhook-signature.ts';
import { silentLogger } from '../../shared/log.ts';
import { withDefaults } from '../../shared/options.ts';
import { payloadOf, type HandoffTarget, type TouchResult } from './types.ts';

export interface WebhookTargetOptions {
  url: string;
  timeoutMs?: number;
  /** Attempts after the first. */
  retries?: number;
  /** First retry delay; doubles per retry, with up to 50% random jitter added. */
  backoffMs?: number;
  /** Longest retry delay. */
  maxBackoffMs?: number;
  /** Jobs held (queued, in flight or waiting to retry); beyond it the oldest queued job is dropped. */
  maxQueue?: number;
  /** Deliveries at the same time. */
  concurrency?: number;
  /**
   * Signing secret (shared/webhook-signature.ts: webhook-id, webhook-timestamp, webhook-signature, the
   * scheme the hub's notices use too); empty or absent: unsigned.
   */
  secret?: string;
  includeMyKeyId?: boolean;
  name?: string;
  log?: Logger;
  /** fetch (tests may pass their own). */
  fetch?: typeof fetch;
  random?: () => number;
}

/** What each option is when not given. */
const WEBHOOK_DEFAULTS: Required<Omit<WebhookTargetOptions, 'url' | 'name' | 'log' | 'fetch' | 'random'>> = {
  timeoutMs: 3000,
  retries: 3,
  backoffMs: 200,
  maxBackoffMs: 30_000,
  maxQueue: 100,
  concurrency: 4,
  includeMyKeyId: false,
  secret: '',
};

interface Job {
  body: string;
  delivery: string;
  /** The webhook-id: the same on every retry of this touch, so a receiver can drop a repeat. */
  id: string;
  attempt: number;
}

/** Status codes worth another attempt (RFC 9110 15.5.9 408, RFC 6585 4 429, and server errors). */
function retryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

export class WebhookTarget implements HandoffTarget {
  readonly name: string;
  readonly #o: typeof WEBHOOK_DEFAULTS & { url: string };
  readonly #log: Logger;
  readonly #fetch: typeof fetch;
  readonly #random: () => number;
  readonly #queue: Job[] = [];
  readonly #retryTimers = new Map<NodeJS.Timeout, Job>();
  readonly #inFlight = new Map<Promise<void>, AbortController>();
  #stopped = false;
  readonly #stats = { queued: 0, delivered: 0, retried: 0, failed: 0, dropped: 0 };

  constructor(opts: WebhookTargetOptions) {
    this.name = opts.name ?? 'webhook';
    this.#o = { url: opts.url, ...withDefaults(opts, WEBHOOK_DEFAULTS) };
    this.#log = opts.log ?? silentLogger;
    this.#fetch = opts.fetch ?? fetch;
    this.#random = opts.random ?? Math.random;
  }

  /** Jobs held now (queued, in flight, waiting to retry). */
  get pending(): number {
    return this.#queue.length + this.#inFlight.size + this.#retryTimers.size;
  }

  deliver(result: TouchResult): void {
    if (this.#stopped) return;
    const body = JSON.stringify(payloadOf(result, { includeMyKeyId: this.#o.includeMyKeyId }));
    this.#stats.queued++;
    const id = /^[A-Za-z0-9_.:-]{1,128}$/.test(result.transaction) ? result.transaction : newWebhookId();
    this.#queue.push({ body, delivery: result.transaction, id, attempt: 0 });
    while (this.pending > this.#o.maxQueue && this.#queue.length > 0) {
      this.#queue.shift();
      this.#stats.dropped++;
    }
    this.#pump();
  }

  stats(): Record<string, number> {
    return { ...this.#stats, pending: this.pending };
  }

  /** Stops: waits up to `drainMs` for deliveries in flight, then aborts them; queued jobs are dropped. */
  async stop(drainMs = 1000): Promise<void> {
    this.#stopped = true;
    for (const t of this.#retryTimers.keys()) clearTimeout(t);
    this.#stats.dropped += this.#queue.length + this.#retryTimers.size;
    this.#retryTimers.clear();
    this.#queue.length = 0;
    if (this.#inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((r) => (timer = setTimeout(r, drainMs)));
    await Promise.race([Promise.allSettled([...this.#inFlight.keys()]), limit]);
    clearTimeout(timer);
    for (const c of this.#inFlight.values()) c.abort();
    await Promise.allSettled([...this.#inFlight.keys()]);
  }

  #pump(): void {
    while (!this.#stopped && this.#inFlight.size < this.#o.concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      const ctl = new AbortController();
      const p = this.#attempt(job, ctl).finally(() => {
        this.#inFlight.delete(p);
        this.#pump();
      });
      this.#inFlight.set(p, ctl);
    }
  }

  async #attempt(job: Job, ctl: AbortController): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-mykey-delivery': job.delivery };
    // Signed per attempt: the timestamp is the attempt's, so a receiver's 5-minute window holds for retries.
    if (this.#o.secret) Object.assign(headers, signWebhook(this.#o.secret, job.body, { id: job.id }));
    const timer = setTimeout(() => ctl.abort(), this.#o.timeoutMs);
    let retry: boolean;
    let why: string;
    try {
      const res = await this.#fetch(this.#o.url, { method: 'POST', headers, body: job.body, signal: ctl.signal });
      await res.arrayBuffer().catch(() => undefined); // release the connection for keep-alive
      if (res.ok) {
        this.#stats.delivered++;
        return;
      }
      retry = retryable(res.status);
      why = `HTTP ${res.status}`;
    } catch (err) {
      retry = true;
      why = ctl.signal.aborted ? `no answer within ${this.#o.timeoutMs} ms` : (err as Error).message;
    } finally {
      clearTimeout(timer);
    }
    if (this.#stopped) return;
    if (!retry || job.attempt >= this.#o.retries) {
      this.#stats.failed++;
      this.#log.warn('hand-off failed', { target: this.name, why, attempts: job.attempt + 1 });
      return;
    }
    job.attempt++;
    this.#stats.retried++;
    const base = Math.min(this.#o.maxBackoffMs, this.#o.backoffMs * 2 ** (job.attempt - 1));
    const delay = Math.round(base * (1 + 0.5 * this.#random()));
    const t = setTimeout(() => {
      this.#retryTimers.delete(t);
      if (this.#stopped) return;
      this.#queue.unshift(job); // a retry goes before newer touches: it has waited longest
      this.#pump();
    }, delay);
    this.#retryTimers.set(t, job);
  }
}
