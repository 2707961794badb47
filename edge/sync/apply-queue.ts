// Every change to the cache runs on one queue, in order. Live entries (one, or a batch from one
// message) are applied at appliedSeq + 1 and journalled by group commit (one fdatasync per burst);
// duplicates and replays are ignored; a gap, inside a batch or between messages, starts a catch-up
// through /changes, and a snapshot when the hub no longer has the missing entries or when the cache
// has nothing to build on (first start, corrupt state, new secret). Errors of a catch-up are logged
// and retried with backoff, never thrown.
import { performance } from 'node:perf_hooks';
import { MyKeyError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { LEGACY_KEY_SCHEME, type ChangeEntry } from '../../shared/sync.ts';
import type { TypedEvents } from '../../shared/typed-events.ts';
import type { EdgeCache } from '../cache/edge-cache.ts';
import { KeyIndex } from '../cache/key-index.ts';
import type { DeviceIdentity, EdgeState } from '../state/edge-state.ts';
import { Backoff } from './backoff.ts';
import { codeOf, type SyncEvents, type SyncStats } from './events.ts';
import type { HealthJudge } from './health.ts';
import type { HubClient } from './hub-client.ts';

/** Live entries waiting to be applied, at most; beyond, the catch-up brings them. */
export const MAX_INBOX = 10_000;

export interface ApplyQueueDeps {
  cache: EdgeCache;
  state: EdgeState;
  hub: HubClient;
  log: Logger;
  events: TypedEvents<SyncEvents>;
  stats: SyncStats;
  health: HealthJudge;
  identity: () => DeviceIdentity | undefined;
  running: () => boolean;
  /** The status should be published soon (something changed). */
  statusSoon: () => void;
  pageSize?: number;
  backoff?: { minMs?: number; maxMs?: number };
}

type Applied = { e: ChangeEntry; purged: number; set: number };

export class ApplyQueue {
  readonly #d: ApplyQueueDeps;
  readonly #retryBackoff: Backoff;
  #work: Promise<unknown> = Promise.resolve();
  #catchUpQueued = false;
  #catchUpFailed = false;
  #pending: Applied[] = [];
  #flushScheduled = false;
  #inbox = 0;
  #flushing: Promise<void> = Promise.resolve();
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(deps: ApplyQueueDeps) {
    this.#d = deps;
    this.#retryBackoff = new Backoff(deps.backoff);
  }

  /** True while the last catch-up failed (health says `degraded`). */
  get catchUpFailed(): boolean {
    return this.#catchUpFailed;
  }

  /** Runs `fn` after everything queued before it. */
  enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#work.then(fn, fn);
    this.#work = run.catch(() => undefined);
    return run;
  }

  /**
   * Queues the entries of one live message (validated, in seq order). Returns at once: the PUBACK must
   * not wait. A flood faster than the cache takes it is left to the catch-up.
   */
  offer(entries: ChangeEntry[]): void {
    if (this.#inbox >= MAX_INBOX) {
      this.requestCatchUp('inbox full');
      return;
    }
    if (entries.length > 1) this.#d.stats.batches++;
    this.#inbox += entries.length;
    void this.enqueue(() => {
      this.#inbox -= entries.length;
      return this.#applyLive(entries);
    });
  }

  /** Asks for one catch-up on the queue (several asks before it runs make one). */
  requestCatchUp(reason: string): void {
    if (this.#catchUpQueued || !this.#d.running()) return;
    this.#catchUpQueued = true;
    void this.enqueue(async () => {
      this.#catchUpQueued = false;
      if (!this.#d.running() || !this.#d.identity()) return;
      await this.catchUpNow(reason);
    });
  }

  /** Catches up now; call on the queue only. */
  async catchUpNow(reason: string): Promise<void> {
    const { cache, hub, log, stats } = this.#d;
    stats.catchUps++;
    void this.flushPending();
    try {
      const limit = this.#d.pageSize ?? 1000;
      for (let guard = 0; guard < 100_000; guard++) {
        if (!cache.synced) await this.snapshotNow();
        const after = cache.appliedSeq;
        const { value: page, hubDate } = await hub.changes(after, limit);
        this.#d.health.contact(hubDate);
        if (page.entries.length === 0) {
          if (page.headSeq > after) {
            log.info('the hub no longer has the missing entries: snapshot', { appliedSeq: after, headSeq: page.headSeq });
            await this.snapshotNow();
            continue;
          }
          if (page.headSeq < after) {
            log.warn('the hub log is behind this edge (hub restored?): snapshot', { appliedSeq: after, headSeq: page.headSeq });
            await this.snapshotNow();
            if (cache.appliedSeq <= page.headSeq) break;
            continue;
          }
          break;
        }
        if (page.entries[0].seq > after + 1) {
          log.info('the hub no longer has the missing entries: snapshot', { appliedSeq: after, first: page.entries[0].seq });
          await this.snapshotNow();
          continue;
        }
        const applied: Applied[] = [];
        let gap = false;
        for (const e of page.entries) {
          const r = cache.apply(e);
          if (r.result === 'applied') applied.push({ e, purged: r.purged, set: r.set });
          else if (r.result === 'gap') {
            gap = true; // a hole inside a page: the hub misbehaved; start over from the snapshot
            break;
          }
        }
        if (applied.length) await this.#persist(applied.map((a) => a.e));
        for (const a of applied) this.#announce(a, 'catch-up');
        if (gap) {
          log.warn('hole inside a /changes page: snapshot', { code: 'validation_failed' });
          await this.snapshotNow();
          continue;
        }
        if (cache.appliedSeq >= page.headSeq) break;
      }
      this.#catchUpFailed = false;
      this.#retryBackoff.reset();
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    } catch (e) {
      this.#catchUpFailed = true;
      const delay = this.#retryBackoff.next();
      log.warn('catch-up failed; retrying', { reason, code: codeOf(e), error: e, retryMs: delay });
      clearTimeout(this.#retryTimer);
      if (this.#d.running()) {
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.requestCatchUp('retry');
        }, delay);
      }
    } finally {
      this.#d.health.judge();
    }
  }

  /** Replaces the cache with the hub's snapshot; call on the queue only. */
  async snapshotNow(): Promise<void> {
    const { cache, hub, log, state } = this.#d;
    void this.flushPending();
    const t0 = performance.now();
    const { value: snap, hubDate } = await hub.snapshot();
    this.#d.health.contact(hubDate);
    const id = this.#d.identity();
    if (!id || snap.serviceId !== id.serviceId) throw new MyKeyError('validation_failed', 'snapshot of another service');
    const index = new KeyIndex(snap.entries.length);
    for (const [k, u] of snap.entries) index.set(k, u); // schema-checked: cannot throw
    const before = cache.size;
    cache.replace(index, snap.seq, snap.keyScheme ?? LEGACY_KEY_SCHEME);
    await state.checkpoint();
    const ms = performance.now() - t0;
    this.#d.stats.snapshots++;
    log.info('snapshot applied', { seq: snap.seq, mappings: index.size, before, ms: Math.round(ms) });
    this.#d.events.emit('snapshot', { seq: snap.seq, mappings: index.size, ms });
    this.#d.statusSoon();
  }

  /**
   * Issues the journal write of pending live entries now, so that it is ordered before any state
   * write that follows (catch-up pages, checkpoints); announces them once durable.
   */
  flushPending(): Promise<void> {
    if (this.#pending.length === 0) return this.#flushing;
    const batch = this.#pending.splice(0);
    const p = this.#persist(batch.map((b) => b.e)).then(() => {
      for (const b of batch) this.#announce(b, 'live');
    });
    this.#flushing = p;
    return p;
  }

  /** Stops retrying and waits for the queue and the journal. */
  async drain(): Promise<void> {
    clearTimeout(this.#retryTimer);
    await this.#work.catch(() => undefined);
    await this.flushPending().catch(() => undefined);
  }

  async #applyLive(entries: ChangeEntry[]): Promise<void> {
    const { cache, log, stats } = this.#d;
    this.#d.health.contact();
    if (!cache.synced) {
      this.requestCatchUp('unsynced');
      return;
    }
    for (const e of entries) {
      const before = cache.appliedSeq;
      const r = cache.apply(e);
      if (r.result === 'duplicate') {
        stats.duplicates++;
        continue;
      }
      if (r.result === 'gap') {
        // The rest of this message lies beyond the gap too: the catch-up brings it all.
        stats.gaps++;
        log.info('gap in the change log: catching up', { appliedSeq: before, got: e.seq });
        await this.catchUpNow('gap');
        return;
      }
      this.#pending.push({ e, purged: r.purged, set: r.set });
    }
    // Group commit: live entries are journalled together once the current burst has been read, so a
    // burst costs one fdatasync, not one per entry. PUBACK does not wait for it: an entry lost from
    // the journal by a crash in that window is fetched again by the catch-up after restart.
    if (this.#pending.length > 0 && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        void this.flushPending();
      });
    }
  }

  async #persist(entries: ChangeEntry[]): Promise<void> {
    const { log, state } = this.#d;
    try {
      await state.recordApplied(entries);
    } catch (e) {
      // The cache is right; only its durability suffered. A full checkpoint covers these entries.
      log.error('journal write failed; trying a checkpoint', { code: codeOf(e), error: e });
      this.#catchUpFailed = true;
      await state.checkpoint().then(
        () => {
          this.#catchUpFailed = false;
        },
        (e2) => log.error('checkpoint failed too: state on disk is behind the cache', { code: codeOf(e2), error: e2 }),
      );
    }
  }

  #announce(a: Applied, source: 'live' | 'catch-up'): void {
    const { e, purged, set } = a;
    this.#d.stats.applied++;
    this.#d.events.emit('applied', { seq: e.seq, kind: e.kind, purged, set, source });
    if (purged > 0) this.#d.events.emit('purged', { seq: e.seq, kind: e.kind, keys: purged });
    // The service moved to another key derivation (shared/sync.ts): its keys come again in a snapshot.
    if (e.kind === 'rekey') void this.resync().catch((err) => this.#d.log.warn('re-key snapshot failed; the catch-up retries', { code: codeOf(err) }));
    this.#d.statusSoon();
  }

  /** Replaces the cache with a fresh snapshot, then catches up (queued). */
  resync(): Promise<void> {
    return this.enqueue(async () => {
      await this.snapshotNow();
      await this.catchUpNow('resync');
    });
  }
}
