// The edge's state directory: what must outlive a restart or a power cut, and nothing more.
//
//   checkpoint.json  the cache at one applied seq (lowdb, DurableJsonFile: atomic, checksummed)
//   journal.log      entries applied since that checkpoint (append-only, per-record CRC)
//   meta.json        device identity from the hub, aggregate counters, last contact with the hub
//
// Loading is checkpoint + journal replay. The journal is folded into a new checkpoint every
// `compactEveryEntries` records or `compactEveryMs`, whichever comes first. Never stored: which card
// touched when. Only mappings (keyed identities, service user ids) and aggregate counters.
import { Low } from 'lowdb';
import { mkdir, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { MyKeyError } from '../../shared/errors.ts';
import { silentLogger, type Logger } from '../../shared/log.ts';
import type { ChangeEntry, EdgeCounters } from '../../shared/sync.ts';
import type { EdgeCache } from '../cache/edge-cache.ts';
import { KeyIndex } from '../cache/key-index.ts';
import { DurableJsonFile, removeIfPresent, syncDir } from './durable-file.ts';
import { Journal, type JournalRecord } from './journal.ts';

/** The device's identity and service secret as the hub gave them (GET /v1/device/config). */
export interface DeviceIdentity {
  edgeId: string;
  serviceId: string;
  /** base64url of 32 bytes. */
  syncSecret: string;
  /** PIN-checked touch (#14): the service's touch assurance as the hub said it (absent: possession). */
  touchAssurance?: string;
  /** PIN-checked touch (#14): the hub's JPKI user-authentication CA certificates, base64 DER. */
  jpkiAnchors?: string[];
}

/** Whether two identities say the same about PIN-checked touches (kept so a reboot offline keeps them). */
function sameTouchPolicy(a: DeviceIdentity, b: DeviceIdentity): boolean {
  return a.touchAssurance === b.touchAssurance && JSON.stringify(a.jpkiAnchors ?? []) === JSON.stringify(b.jpkiAnchors ?? []);
}

/** The checkpoint document. Keys and refs are base64 of packed arrays (see KeyIndex.pack). */
export interface CheckpointData {
  v: 1;
  serviceId: string;
  seq: number;
  gen: number;
  at: string;
  count: number;
  keys: string;
  userIds: string[];
  refs: string;
}

/** The meta document. */
export interface MetaData {
  v: 1;
  identity?: DeviceIdentity;
  counters: EdgeCounters;
  /** Wall-clock ms of the last successful contact with the hub. */
  lastContactWall?: number;
}

export type CounterName = keyof EdgeCounters;

/** What open() found. */
export interface OpenReport {
  /** `ok`: checkpoint loaded; `missing`: first start; `corrupt`: set aside, a snapshot is needed; `other_service`: discarded. */
  checkpoint: 'ok' | 'missing' | 'corrupt' | 'other_service';
  appliedSeq: number;
  mappings: number;
  /** Journal records replayed on top of the checkpoint. */
  replayed: number;
  /** Bytes of torn or corrupt journal tail dropped. */
  droppedBytes: number;
  ms: number;
}

export interface EdgeStateOptions {
  dir: string;
  log?: Logger;
  /** Fold the journal into a checkpoint after this many records. Default 5000. */
  compactEveryEntries?: number;
  /** ... or after this long with records pending. Default 10 minutes. */
  compactEveryMs?: number;
  /** How often counters and last contact go to disk. Default 60 s (SD card wear). */
  metaFlushMs?: number;
  now?: () => number;
}

const ZERO_COUNTERS: EdgeCounters = { touches: 0, handoffs: 0, notLinked: 0, refused: 0, errors: 0 };

function isCheckpoint(v: unknown): v is CheckpointData {
  const c = v as CheckpointData;
  return (
    typeof c === 'object' &&
    c !== null &&
    c.v === 1 &&
    typeof c.serviceId === 'string' &&
    Number.isSafeInteger(c.seq) &&
    c.seq >= 0 &&
    Number.isSafeInteger(c.gen) &&
    Number.isSafeInteger(c.count) &&
    typeof c.keys === 'string' &&
    typeof c.refs === 'string' &&
    Array.isArray(c.userIds)
  );
}

function isMeta(v: unknown): v is MetaData {
  const m = v as MetaData;
  if (typeof m !== 'object' || m === null || m.v !== 1 || typeof m.counters !== 'object' || m.counters === null) return false;
  for (const k of Object.keys(ZERO_COUNTERS) as CounterName[]) if (!Number.isSafeInteger(m.counters[k]) || m.counters[k] < 0) return false;
  if (m.identity !== undefined) {
    const i = m.identity;
    if (typeof i.edgeId !== 'string' || typeof i.serviceId !== 'string' || typeof i.syncSecret !== 'string') return false;
    if (i.touchAssurance !== undefined && typeof i.touchAssurance !== 'string') return false;
    if (i.jpkiAnchors !== undefined && (!Array.isArray(i.jpkiAnchors) || i.jpkiAnchors.some((a) => typeof a !== 'string'))) return false;
  }
  return m.lastContactWall === undefined || Number.isFinite(m.lastContactWall);
}

/** Turns a journal record back into the entry it came from (kind and time are not kept). */
function recordToEntry(r: JournalRecord): ChangeEntry {
  return { seq: r.s, kind: 'link', at: '1970-01-01T00:00:00Z', remove: r.r, ...(r.k && r.u !== undefined ? { set: { keys: r.k, serviceUserId: r.u } } : {}) };
}

export class EdgeState {
  readonly dir: string;
  readonly #log: Logger;
  readonly #compactEvery: number;
  readonly #compactMs: number;
  readonly #metaFlushMs: number;
  readonly #now: () => number;
  readonly #ckpt: Low<CheckpointData | null>;
  readonly #meta: Low<MetaData>;
  readonly #journal: Journal;
  #cache: EdgeCache | undefined;
  #gen = 0;
  #io: Promise<unknown> = Promise.resolve();
  #metaDirty = false;
  #metaTimer: NodeJS.Timeout | undefined;
  #compactTimer: NodeJS.Timeout | undefined;
  #lastCheckpointAt = 0;
  #closed = false;

  constructor(opts: EdgeStateOptions) {
    this.dir = opts.dir;
    this.#log = opts.log ?? silentLogger;
    this.#compactEvery = opts.compactEveryEntries ?? 5000;
    this.#compactMs = opts.compactEveryMs ?? 10 * 60_000;
    this.#metaFlushMs = opts.metaFlushMs ?? 60_000;
    this.#now = opts.now ?? Date.now;
    this.#ckpt = new Low<CheckpointData | null>(new DurableJsonFile<CheckpointData | null>(join(opts.dir, 'checkpoint.json'), (v): v is CheckpointData | null => isCheckpoint(v)), null);
    this.#meta = new Low<MetaData>(new DurableJsonFile(join(opts.dir, 'meta.json'), isMeta), { v: 1, counters: { ...ZERO_COUNTERS } });
    this.#journal = new Journal(join(opts.dir, 'journal.log'));
  }

  /**
   * Opens the directory (creating it) and loads the checkpoint and journal into `cache`. A corrupt
   * checkpoint is set aside and the cache left empty and unsynced: the sync agent then fetches a
   * fresh snapshot. Corrupt meta resets the counters and forgets the identity (the hub gives it again).
   */
  async open(cache: EdgeCache): Promise<OpenReport> {
    const t0 = performance.now();
    this.#cache = cache;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const f of await readdir(this.dir)) if (f.endsWith('.tmp')) await removeIfPresent(join(this.dir, f));

    try {
      await this.#meta.read();
    } catch (e) {
      this.#log.error('meta.json is corrupt: counters reset, identity will be fetched from the hub again', { code: 'state_corrupt', error: e });
      await this.#setAside('meta.json');
      this.#meta.data = { v: 1, counters: { ...ZERO_COUNTERS } };
    }
    const identity = this.#meta.data.identity;
    if (identity) cache.setSecret(Buffer.from(identity.syncSecret, 'base64url'));

    let checkpoint: OpenReport['checkpoint'] = 'missing';
    try {
      await this.#ckpt.read();
      const c = this.#ckpt.data;
      if (c) {
        if (identity && c.serviceId !== identity.serviceId) {
          checkpoint = 'other_service';
          this.#log.warn('checkpoint belongs to another service: discarded', { serviceId: c.serviceId });
        } else {
          const keys = Buffer.from(c.keys, 'base64');
          const refBytes = Buffer.from(c.refs, 'base64');
          if (keys.length !== c.count * 16 || refBytes.length !== c.count * 4) throw new MyKeyError('state_corrupt', 'checkpoint: array lengths disagree');
          const refs = new Uint32Array(c.count);
          new Uint8Array(refs.buffer).set(refBytes);
          let index: KeyIndex;
          try {
            index = KeyIndex.unpack({ keys, userIds: c.userIds, refs });
          } catch (e) {
            throw new MyKeyError('state_corrupt', 'checkpoint: bad mappings', { cause: e });
          }
          cache.replace(index, c.seq);
          this.#gen = c.gen;
          checkpoint = 'ok';
        }
      }
    } catch (e) {
      checkpoint = 'corrupt';
      this.#log.error('checkpoint is corrupt: set aside; the cache will be rebuilt from a fresh snapshot', { code: 'state_corrupt', error: e });
      await this.#setAside('checkpoint.json');
    }
    if (checkpoint !== 'ok') {
      cache.clear();
      this.#ckpt.data = null;
    }

    const scan = await this.#journal.open();
    if (scan.droppedBytes > 0) this.#log.warn('journal tail was torn: dropped', { code: 'state_corrupt', bytes: scan.droppedBytes });
    // Without its checkpoint the journal means nothing; emptying it now also keeps its old
    // generation numbers from ever matching a later checkpoint's.
    if (checkpoint !== 'ok' && this.#journal.count > 0) await this.#journal.reset();
    let replayed = 0;
    if (checkpoint === 'ok') {
      for (const r of scan.records) {
        if (r.g !== this.#gen || r.s <= cache.appliedSeq) continue;
        if (r.s !== cache.appliedSeq + 1) break; // cannot happen with intact appends; the hub fills any hole
        try {
          cache.apply(recordToEntry(r));
        } catch (e) {
          this.#log.error('journal record could not be applied: replay stopped there', { code: 'state_corrupt', error: e });
          break;
        }
        replayed++;
      }
    }
    this.#lastCheckpointAt = this.#now();
    this.#compactTimer = setInterval(
      () => {
        if (this.#journal.count > 0 && this.#now() - this.#lastCheckpointAt >= this.#compactMs) void this.checkpoint().catch(() => undefined);
      },
      Math.min(this.#compactMs, 60_000),
    );
    this.#compactTimer.unref();
    this.#metaTimer = setInterval(() => void this.flush().catch(() => undefined), this.#metaFlushMs);
    this.#metaTimer.unref();
    const report: OpenReport = { checkpoint, appliedSeq: cache.appliedSeq, mappings: cache.size, replayed, droppedBytes: scan.droppedBytes, ms: performance.now() - t0 };
    this.#log.info('state loaded', { ...report, ms: Math.round(report.ms) });
    return report;
  }

  /** The device identity last given by the hub, if any. */
  identity(): DeviceIdentity | undefined {
    return this.#meta.data.identity;
  }

  /**
   * Records the device identity (written at once: it is needed to answer offline after a reboot).
   * When the service or its secret changed, the cached mappings are keyed for something else: the
   * cache is cleared (unsynced) and `resync` is true, so the caller fetches a snapshot.
   */
  async setIdentity(id: DeviceIdentity): Promise<{ changed: boolean; resync: boolean }> {
    const old = this.#meta.data.identity;
    if (old && old.edgeId === id.edgeId && old.serviceId === id.serviceId && old.syncSecret === id.syncSecret && sameTouchPolicy(old, id)) return { changed: false, resync: false };
    const ckptService = this.#ckpt.data?.serviceId;
    const resync = (old !== undefined && (old.serviceId !== id.serviceId || old.syncSecret !== id.syncSecret)) || (old === undefined && ckptService !== undefined && ckptService !== id.serviceId);
    this.#meta.data.identity = { ...id };
    this.#cache?.setSecret(Buffer.from(id.syncSecret, 'base64url'));
    if (resync) {
      this.#log.warn('service or sync secret changed: cached mappings dropped until a fresh snapshot');
      this.#cache?.clear();
    }
    await this.#serial(() => this.#meta.write());
    return { changed: true, resync };
  }

  /** Aggregate counters. */
  counters(): EdgeCounters {
    return { ...this.#meta.data.counters };
  }

  /** Adds to an aggregate counter (written with the next meta flush). */
  count(name: CounterName, by = 1): void {
    this.#meta.data.counters[name] += by;
    this.#metaDirty = true;
  }

  /** Notes a successful contact with the hub at wall time `wallMs` (written with the next meta flush). */
  recordContact(wallMs: number): void {
    this.#meta.data.lastContactWall = wallMs;
    this.#metaDirty = true;
  }

  /** Wall time of the last recorded contact with the hub, if any. */
  lastContactWall(): number | undefined {
    return this.#meta.data.lastContactWall;
  }

  /** Journal records since the last checkpoint. */
  get journalCount(): number {
    return this.#journal.count;
  }

  /**
   * Makes entries already applied to the cache durable (one append, one fdatasync), folding the
   * journal into a checkpoint when it is due. Resolves once they are on disk.
   */
  recordApplied(entries: ChangeEntry[]): Promise<void> {
    const records: JournalRecord[] = entries.map((e) => ({ g: this.#gen, s: e.seq, r: e.remove, ...(e.set ? { k: e.set.keys, u: e.set.serviceUserId } : {}) }));
    return this.#serial(async () => {
      // The generation may have moved on since the call (a checkpoint queued before): those
      // entries are then in the checkpoint already, and stamping them with the new generation
      // is harmless (replay skips seq <= checkpoint seq).
      for (const r of records) r.g = this.#gen;
      await this.#journal.append(records);
      if (this.#journal.count >= this.#compactEvery) await this.#checkpointNow();
    });
  }

  /** Writes a checkpoint of the cache as it is now and empties the journal. */
  checkpoint(): Promise<void> {
    return this.#serial(() => this.#checkpointNow());
  }

  /** Writes counters and last contact if they changed. */
  flush(): Promise<void> {
    if (!this.#metaDirty) return Promise.resolve();
    this.#metaDirty = false;
    return this.#serial(() => this.#meta.write());
  }

  /** Removes every mapping from disk and memory (decommission); counters and identity go too. */
  async wipe(): Promise<void> {
    await this.#serial(async () => {
      this.#cache?.clear();
      await this.#journal.reset();
      await removeIfPresent(join(this.dir, 'checkpoint.json'));
      this.#ckpt.data = null;
      this.#meta.data = { v: 1, counters: { ...ZERO_COUNTERS } };
      await this.#meta.write();
      await syncDir(this.dir);
    });
  }

  /** Flushes meta and closes the journal. The cache stays as it is. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#metaTimer);
    clearInterval(this.#compactTimer);
    await this.flush().catch((e) => this.#log.warn('meta flush failed at close', { error: e }));
    await this.#serial(() => this.#journal.close());
  }

  async #checkpointNow(): Promise<void> {
    const cache = this.#cache;
    if (!cache) throw new Error('state is not open');
    if (!cache.synced) return; // nothing trustworthy to write
    const p = cache.pack();
    const gen = this.#gen + 1;
    const data: CheckpointData = {
      v: 1,
      serviceId: this.#meta.data.identity?.serviceId ?? '',
      seq: cache.appliedSeq,
      gen,
      at: new Date(this.#now()).toISOString(),
      count: p.refs.length,
      keys: Buffer.from(p.keys.buffer, p.keys.byteOffset, p.keys.byteLength).toString('base64'),
      userIds: p.userIds,
      refs: Buffer.from(p.refs.buffer, p.refs.byteOffset, p.refs.byteLength).toString('base64'),
    };
    this.#ckpt.data = data;
    await this.#ckpt.write();
    // From here the checkpoint holds everything; journal records of the old generation are skipped.
    this.#gen = gen;
    await this.#journal.reset();
    this.#lastCheckpointAt = this.#now();
  }

  async #setAside(name: string): Promise<void> {
    await rename(join(this.dir, name), join(this.dir, `${name}.corrupt`)).catch(() => undefined);
  }

  // State writes run one at a time, in call order.
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#io.then(fn, fn);
    this.#io = run.catch(() => undefined);
    return run;
  }
}
