// Snapshots of a service: its current mappings at its head seq, for an edge that is new or saw a gap.
//
// A national service has hundreds of thousands of links (two keyed identities each): built in one go
// its snapshot held the event loop for seconds and every other request waited. So the JSON is built
// a page of links at a time inside one read of the store (hub/store/snapshot-repo.ts: one consistent
// state across turns of the event loop), and the serialized bytes are kept per (service, head seq,
// key scheme) within a memory budget: edges that ask at the same head (a fleet re-syncing after a
// rekey) share one build, concurrent ones share the build in progress. On a SQLite file the pages
// are written as JSON by SQLite on two reader threads, each taking the next range of the service's
// links (jsonRange): the event loop only collects the pieces. Elsewhere (PostgreSQL, the legacy
// scheme, a page SQLite leaves to TypeScript) rows are written here, each slice bounded in time.
// A first build is sent while it is read (Unfolding: the head, then each range once every range
// before it is read, in order), to every request that asks meanwhile; a build that fails after its
// head cuts those responses (the route ends the connection: no last chunk), so a part is never taken
// for the whole. The gzip form (for an edge that accepts it) is made on the libuv pool once per
// snapshot: during a first build, from its bytes as they come, and sent as it is made to every gzip
// request meanwhile (the edge's own client asks for gzip); the result is kept with the body.
// The body is the JSON of `Snapshot` (shared/sync.ts), the same fields in the same order as before.
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { MyKeyError } from '../../shared/errors.ts';
import { keyedIdentitySync, LEGACY_KEY_SCHEME, schemeKeysCertIssuer, type ChangeEntry, type KeyScheme, type Snapshot } from '../../shared/sync.ts';
import type { LinkRepo, ServiceRow } from '../store/link-repo.ts';
import { AFTER_ALL, type SnapshotPages, type SnapshotRepo, type SnapshotRow } from '../store/snapshot-repo.ts';
import { nextTurn, type Ident, type KeyedIdentities } from './keyed-identities.ts';
import { addedPiece, filterPiece, firstWithoutComma, foldChanges } from './snapshot-delta.ts';

/** Bytes kept as the pieces they were made in (a page of links each): never copied into one buffer on the event loop. */
export interface Pieces {
  parts: Buffer[];
  bytes: number;
}

/**
 * Compresses bytes through zlib on the libuv pool, a piece at a time as they come; each compressed
 * piece also goes to `out` (ended with them, failed with the source or zlib).
 */
async function gzipPieces(src: Iterable<Buffer> | AsyncIterable<Buffer>, out?: Unfolding): Promise<Pieces> {
  // Keys are random: a fast level compresses them nearly as well as the default.
  const z = createGzip({ level: 4 });
  const parts: Buffer[] = [];
  let bytes = 0;
  z.on('data', (d: Buffer) => {
    parts.push(d);
    bytes += d.length;
    out?.push([d]);
  });
  const done = finished(z);
  done.catch(() => undefined);
  try {
    for await (const p of src) if (!z.write(p)) await once(z, 'drain');
    z.end();
    await done;
  } catch (e) {
    z.destroy();
    out?.fail(e);
    throw e;
  }
  out?.end();
  return { parts, bytes };
}

/** Bytes given to a streamed response at a time. */
const SEND_SLICE = 64 * 1024;

/**
 * A snapshot being written: its bytes so far, in order (the head, then each page of entries once it and
 * every page before it are read), read by each request that asks meanwhile from its first byte. A build
 * that fails ends it as failed: a reader gets an error after the bytes it had, never an end, so a
 * response cut short cannot pass for a whole body.
 */
export class Unfolding {
  /** The pieces so far (kept: they are the built snapshot's pieces too). */
  readonly parts: Buffer[] = [];
  #ended = false;
  #failure: { error: unknown } | undefined;
  #waiting: (() => void)[] = [];
  /** Settles once the head is written (or the build failed before it): a route answers an error instead while none is sent. */
  readonly started: Promise<void>;
  #start!: { resolve: () => void; reject: (e: unknown) => void };

  constructor() {
    this.started = new Promise<void>((resolve, reject) => (this.#start = { resolve, reject }));
    // Nobody may be waiting for it (a build shared without a route).
    this.started.catch(() => undefined);
  }

  /** A body already whole (kept, or its gzip form), given the same way: in slices, from its first byte. */
  static whole(parts: readonly Buffer[]): Unfolding {
    const u = new Unfolding();
    u.push(parts);
    u.end();
    return u;
  }

  push(parts: readonly Buffer[]): void {
    if (this.#ended || this.#failure) return;
    for (const p of parts) if (p.length > 0) this.parts.push(p);
    if (this.parts.length > 0) this.#start.resolve();
    this.#wake();
  }

  end(): void {
    if (this.#failure) return;
    this.#ended = true;
    this.#start.resolve();
    this.#wake();
  }

  /** Piece `i` once it is written; undefined when the body ended before it; throws the build's error once the pieces before it are read. */
  async #piece(i: number): Promise<Buffer | undefined> {
    for (;;) {
      if (i < this.parts.length) return this.parts[i];
      if (this.#failure) throw this.#failure.error;
      if (this.#ended) return undefined;
      await new Promise<void>((r) => this.#waiting.push(r));
    }
  }

  /** Its pieces as they come; throws the build's error after the pieces written before it. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (let i = 0; ; i++) {
      const p = await this.#piece(i);
      if (!p) return;
      yield p;
    }
  }

  fail(error: unknown): void {
    if (this.#ended || this.#failure) return;
    this.#failure = { error };
    this.#start.reject(error);
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiting;
    this.#waiting = [];
    for (const f of w) f();
  }

  /**
   * The bytes from the first, as they come; errors (after what was written) if the build fails,
   * `cut` called first: a server may still end a response whose stream errors (its last chunk
   * written), so the caller cuts the connection itself.
   */
  stream(cut: (error: unknown) => void): ReadableStream<Uint8Array> {
    let i = 0;
    let at = 0;
    // The response is gone (the edge hung up): nothing more is given to it; the build goes on (kept).
    let gone = false;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (gone) return;
        let p: Buffer | undefined;
        try {
          p = await this.#piece(i);
        } catch (error) {
          cut(error);
          return controller.error(error);
        }
        if (gone) return;
        if (!p) return controller.close();
        // A page is hundreds of kilobytes: given in slices, so that writing (and encrypting) one
        // holds the event loop briefly and other requests are answered between them.
        const slice = p.subarray(at, at + SEND_SLICE);
        at += slice.length;
        if (at >= p.length) {
          i++;
          at = 0;
        }
        controller.enqueue(slice);
      },
      cancel: () => {
        gone = true;
      },
    });
  }
}

/**
 * What a request is answered from: a kept snapshot (whole), or one being built (its bytes as they come,
 * its gzip form as it is made, and the whole when done).
 */
export type SnapshotOpen = { body: SnapshotBody; live?: undefined } | { live: Unfolding; gzipLive(): Unfolding; body: Promise<SnapshotBody> };

/** A built snapshot: its head seq and its JSON bytes; the gzip form on demand (shared, made once). */
export interface SnapshotBody {
  serviceId: string;
  seq: number;
  keyScheme: KeyScheme;
  /** Mappings in it (two per link with a certificate). */
  mappings: number;
  /** The JSON, in pieces (what the route streams): the head, `entryParts`, the tail. */
  pieces: Pieces;
  /** The entries' JSON in pieces: what a later head's snapshot is made from (snapshot-delta.ts). */
  entryParts: Buffer[];
  /** The JSON in one buffer (tests, tools: a copy). */
  json(): Buffer;
  gzip(): Promise<Pieces>;
  /** Its gzip form made while it was being sent (SnapshotOpen.gzipLive): gzip() gives that one, unless it made its own already. */
  adoptGzip(zipped: Promise<Pieces>): void;
}

export interface SnapshotsDeps {
  repo: LinkRepo;
  store: SnapshotRepo;
  keys: KeyedIdentities;
  now: () => number;
  /** Bytes of snapshots kept (JSON and gzip forms together); a larger one is served but not kept. Default 128 MiB. */
  cacheBytes?: number;
  /** Synchronous work between two turns of the event loop while a snapshot is built. Default 8 ms. */
  sliceMs?: number;
}

/** Whether a serial (hex) is as shared/cert-identity.ts writes it: lower case, no leading zero bytes. */
const isNormalSerial = (serial: string): boolean => /^[0-9a-f]+$/.test(serial) && !(serial.length > 2 && serial.startsWith('00'));

/** Links read per page at first; the page then grows or shrinks to take about sliceMs. */
const FIRST_PAGE = 500;
const MAX_PAGE = 20_000;
/** Links per page SQLite writes (on a reader thread its time holds nothing here: a page is one message each way). */
const THREAD_PAGE = 8192;
/** The byte SQLite writes for a link it leaves to TypeScript (snapshot-repo.ts JSON_PAGE). */
const LEFT_TO_US = 0x01;
/** Change-log entries a later snapshot is made from at most; further behind, it is read in full. */
const MAX_DELTA_ENTRIES = 20_000;

/** The JSON of a snapshot, written a page at a time: `{"serviceId":..,"seq":..,"generatedAt":..,"entries":[..]` + keyScheme. */
function head(s: Pick<ServiceRow, 'id' | 'head_seq'>, generatedAt: string): string {
  return `${JSON.stringify({ serviceId: s.id, seq: s.head_seq, generatedAt }).slice(0, -1)},"entries":[`;
}

export function createSnapshots(deps: SnapshotsDeps) {
  const { repo, store, keys } = deps;
  const budget = deps.cacheBytes ?? 128 * 1024 * 1024;
  const sliceMs = deps.sliceMs ?? 8;

  interface Cached {
    body: SnapshotBody;
    bytes: number;
  }
  /** The newest snapshot of each service, least recently used first (Map order). */
  const cache = new Map<string, Cached>();
  let cachedBytes = 0;
  /** Builds under way, by service@seq@scheme: a request for the same head waits for the same build. */
  const building = new Map<string, Extract<SnapshotOpen, { live: Unfolding }>>();
  /** Snapshot reads run one at a time (one reader connection or transaction). */
  let queue: Promise<unknown> = Promise.resolve();
  const stats = { builds: 0, hits: 0, shared: 0, deltas: 0 };

  async function requireService(serviceId: string): Promise<ServiceRow> {
    const s = await repo.service(serviceId);
    if (!s) throw new MyKeyError('not_found', `no service ${serviceId}`);
    if (s.status !== 'active') throw new MyKeyError('forbidden', `service ${serviceId} is disabled`);
    return s;
  }

  /** One mapping to write: its identity, the key found stored (null: derive it), the service ID. */
  type Want = { ident: Ident; key: string | null; uid: string };

  /** The mappings of one page's links, in entry order (by MyKey ID, then by certificate). */
  async function wantedOf(pages: SnapshotPages, scheme: KeyScheme, rows: SnapshotRow[]): Promise<Want[]> {
    const out: Want[] = [];
    for (const [mykeyId, uid, mkey, cident, ckey] of rows) {
      out.push({ ident: { kind: 'mykey', value: mykeyId }, key: mkey, uid });
      if (cident === null) continue;
      // The SQL identity is this one when the stored serial is in normal form (it always is: bindings
      // keep serials so); otherwise the identity is made here, by the one rule, and its key looked up.
      const serial = cident.slice(cident.lastIndexOf(':') + 1);
      if (isNormalSerial(serial)) {
        out.push({ ident: { kind: 'cert', value: cident }, key: ckey, uid });
        continue;
      }
      const c = await pages.cert(mykeyId);
      if (c) out.push({ ident: { kind: 'cert', value: keys.certValue({ issuerKey: c.issuer_key, serialHex: c.serial_hex, aki: c.cert_aki ?? c.issuer_key_id }, scheme) }, key: null, uid });
    }
    return out;
  }

  /** The JSON of the mappings: legacy keys computed, others as stored or else derived (keys.derived: blocking, stored). */
  async function entriesJson(s: ServiceRow, scheme: KeyScheme, wanted: Want[], first: boolean): Promise<string> {
    let json = '';
    for (const w of wanted) {
      let k = scheme === LEGACY_KEY_SCHEME ? keyedIdentitySync(s.sync_secret, w.ident.kind, w.ident.value, scheme) : w.key;
      if (k === null) k = await keys.derived(s, w.ident.kind, w.ident.value);
      // Service IDs are printable ASCII: only a quote or a backslash needs JSON's escaping.
      const uid = w.uid.includes('"') || w.uid.includes('\\') ? JSON.stringify(w.uid) : `"${w.uid}"`;
      json += `${first ? '' : ','}["${k}",${uid}]`;
      first = false;
    }
    return json;
  }

  /**
   * The JSON of a page of rows (its mappings, `first`: without a leading comma). Across turns, the
   * keys not stored are derived on the libuv pool first; at once, entriesJson derives them blocking.
   */
  async function rowsJson(pages: SnapshotPages, s: ServiceRow, scheme: KeyScheme, rows: SnapshotRow[], acrossTurns: boolean, first: boolean): Promise<{ json: Buffer; mappings: number }> {
    const wanted = await wantedOf(pages, scheme, rows);
    if (acrossTurns && scheme !== LEGACY_KEY_SCHEME) {
      const missing = wanted.filter((w) => w.key === null).map((w) => w.ident);
      if (missing.length > 0) await keys.deriveAhead(s, scheme, missing);
    }
    return { json: Buffer.from(await entriesJson(s, scheme, wanted, first)), mappings: wanted.length };
  }

  /**
   * The entries' JSON of the active links after `after` up to `upto` from what SQLite writes
   * (jsonPage), each mapping with its leading comma. A page with a link SQLite left (byte 0x01) is read
   * again as rows and written here a slice at a time, keys not stored derived as `read` does.
   */
  async function jsonRange(pages: SnapshotPages, s: ServiceRow, scheme: KeyScheme, after: string, upto: string, acrossTurns: boolean): Promise<{ parts: Buffer[]; mappings: number }> {
    const p = await pages.jsonPage!(s.id, scheme, schemeKeysCertIssuer(scheme), after, upto);
    if (p.json.indexOf(LEFT_TO_US) === -1) return { parts: [p.json], mappings: p.mappings };
    // The same links (the same state), as rows: exactly p.links of them after `after`.
    const parts: Buffer[] = [];
    let mappings = 0;
    for (let from = after, left = p.links; left > 0; ) {
      const rows = await pages.page(s.id, scheme, schemeKeysCertIssuer(scheme), from, Math.min(left, FIRST_PAGE));
      if (rows.length === 0) break;
      const page = await rowsJson(pages, s, scheme, rows, acrossTurns, false);
      parts.push(page.json);
      mappings += page.mappings;
      left -= rows.length;
      from = rows[rows.length - 1][0];
      if (acrossTurns) await nextTurn();
    }
    return { parts, mappings };
  }

  /**
   * Reads and serializes a whole snapshot from `pages` (and `more`: readers of the same state, each
   * given a part of the service's links). Across turns (`acrossTurns`): the keys of a page that are
   * not stored are derived on the libuv pool first, and the event loop turns after each slice of
   * about sliceMs read here; at once: keys not stored are derived blocking. `out` is given the bytes
   * as they are placed: the head, each page once every page before it is placed, the tail.
   */
  async function read(pages: SnapshotPages, serviceId: string, acrossTurns: boolean, more: SnapshotPages[] = [], out?: Unfolding): Promise<SnapshotBody> {
    const s = await pages.service(serviceId);
    if (!s || s.status !== 'active') throw new MyKeyError('not_found', `no service ${serviceId}`);
    const scheme = keys.schemeOf(s);
    const headPart = Buffer.from(head(s, new Date(deps.now()).toISOString()));
    out?.push([headPart]);
    // The entries in order, the first mapping without its leading comma (pages are written with one).
    const entryParts: Buffer[] = [];
    let mappings = 0;
    const place = (parts: readonly Buffer[], n: number) => {
      const placed: Buffer[] = [];
      for (const p of parts) if (p.length > 0) placed.push(entryParts.length + placed.length === 0 ? p.subarray(1) : p);
      for (const p of placed) entryParts.push(p);
      mappings += n;
      out?.push(placed);
    };
    const finish = () => {
      const body = makeBody(s, scheme, entryParts, mappings, headPart);
      out?.push(body.pieces.parts.slice(-1));
      out?.end();
      return body;
    };
    // Written by SQLite (legacy keys are computed here, never stored).
    if (scheme !== LEGACY_KEY_SCHEME && pages.jsonPage) {
      const readers = [pages, ...more.filter((m) => m.jsonPage)];
      // Ranges of THREAD_PAGE links (four per reader at least), each reader taking the next one when
      // it is done with one: a reader the system runs less (a busy machine) does less of the work.
      const { size, points } = await pages.splitSize!(s.id, THREAD_PAGE, 4 * readers.length);
      // The first range at once; the other split points read meanwhile by the last reader (one
      // statement), so the first range is being read while the service is split.
      const [first] = await pages.splitAfter!(s.id, size, '', Math.min(1, points));
      const ranges: { after: string; upto: string }[] = [{ after: '', upto: first ?? AFTER_ALL }];
      let listed = first === undefined;
      let failed = false;
      const listing = listed
        ? Promise.resolve()
        : readers[readers.length - 1].splitAfter!(s.id, size, first, points - 1).then(
            (rest) => {
              for (const upto of [...rest, AFTER_ALL]) ranges.push({ after: ranges[ranges.length - 1].upto, upto });
              listed = true;
            },
            (e: unknown) => {
              failed = true;
              throw e;
            },
          );
      const done: ({ parts: Buffer[]; mappings: number } | undefined)[] = [];
      let taken = 0;
      let placed = 0;
      // A range that fails ends the read: the other readers take no further range (their
      // transactions end with it).
      await Promise.all([
        listing,
        ...readers.map(async (r) => {
          while (!failed) {
            if (taken >= ranges.length) {
              if (listed) return;
              await listing;
              continue;
            }
            const i = taken++;
            done[i] = await jsonRange(r, s, scheme, ranges[i].after, ranges[i].upto, acrossTurns).catch((e: unknown) => {
              failed = true;
              throw e;
            });
            // Placed (and sent) in order, as soon as every range before it is read.
            for (let d = done[placed]; d !== undefined; d = done[placed]) {
              place(d.parts, d.mappings);
              done[placed++] = undefined;
            }
          }
        }),
      ]);
      return finish();
    }
    let after = '';
    let size = FIRST_PAGE;
    for (;;) {
      const t = performance.now();
      const rows = await pages.page(s.id, scheme, schemeKeysCertIssuer(scheme), after, size);
      if (rows.length === 0) break;
      const page = await rowsJson(pages, s, scheme, rows, acrossTurns, false);
      place([page.json], page.mappings);
      after = rows[rows.length - 1][0];
      if (rows.length < size) break;
      const took = performance.now() - t;
      size = Math.max(100, Math.min(MAX_PAGE, Math.round(size * (sliceMs / Math.max(took, 0.5)))));
      if (acrossTurns) await nextTurn();
    }
    return finish();
  }

  /** A snapshot of a service at its head seq from its entries' JSON pieces: head and tail around them, gzip on demand. */
  function makeBody(s: Pick<ServiceRow, 'id' | 'head_seq'>, scheme: KeyScheme, entryParts: Buffer[], mappings: number, headPart?: Buffer): SnapshotBody {
    const parts = [
      headPart ?? Buffer.from(head(s, new Date(deps.now()).toISOString())),
      ...entryParts,
      Buffer.from(`]${scheme === LEGACY_KEY_SCHEME ? '' : `,"keyScheme":${JSON.stringify(scheme)}`}}`),
    ];
    const pieces: Pieces = { parts, bytes: parts.reduce((n, p) => n + p.length, 0) };
    let zipped: Promise<Pieces> | undefined;
    const keepZipped = (z: Promise<Pieces>) => {
      zipped = z;
      void z.then(
        (done) => account(body, done.bytes),
        () => undefined,
      );
    };
    const body: SnapshotBody = {
      serviceId: s.id,
      seq: s.head_seq,
      keyScheme: scheme,
      mappings,
      pieces,
      entryParts,
      json: () => Buffer.concat(parts, pieces.bytes),
      gzip: () => {
        if (!zipped) keepZipped(gzipPieces(pieces.parts));
        return zipped!;
      },
      adoptGzip: (z) => {
        if (!zipped) keepZipped(z);
      },
    };
    return body;
  }

  /**
   * The snapshot at `headSeq` made from a kept one and the change-log entries after it, a piece at a
   * time between turns of the event loop; undefined when the log cannot say it (an entry missing,
   * another key scheme, a re-key): the caller builds in full.
   */
  async function later(kept: SnapshotBody, headSeq: number): Promise<SnapshotBody | undefined> {
    const entries: ChangeEntry[] = [];
    for (let after = kept.seq; after < headSeq; ) {
      const page = await repo.changesAfter(kept.serviceId, after, Math.min(1000, headSeq - after));
      if (page.length === 0) return undefined;
      for (const json of page) {
        const e = JSON.parse(json) as ChangeEntry;
        if (e.seq !== after + 1 || e.kind === 'rekey' || (e.keyScheme ?? LEGACY_KEY_SCHEME) !== kept.keyScheme) return undefined;
        entries.push(e);
        after = e.seq;
      }
      await nextTurn();
    }
    const { touched, added } = foldChanges(entries);
    const out: Buffer[] = [];
    let mappings = 0;
    let t = performance.now();
    for (const p of kept.entryParts) {
      const f = filterPiece(p, touched);
      out.push(f.piece);
      mappings += f.kept;
      if (performance.now() - t >= sliceMs) {
        await nextTurn();
        t = performance.now();
      }
    }
    out.push(addedPiece(added));
    mappings += added.size;
    stats.deltas++;
    return makeBody({ id: kept.serviceId, head_seq: headSeq }, kept.keyScheme, firstWithoutComma(out), mappings);
  }

  /** Adds bytes of a kept snapshot (its gzip form, made later) to the budget, evicting the least recently used. */
  function account(body: SnapshotBody, bytes: number): void {
    const c = cache.get(body.serviceId);
    if (!c || c.body !== body) return;
    c.bytes += bytes;
    cachedBytes += bytes;
    evict(body.serviceId);
  }

  function evict(keep?: string): void {
    for (const [id, c] of cache) {
      if (cachedBytes <= budget) return;
      if (id === keep) continue;
      cache.delete(id);
      cachedBytes -= c.bytes;
    }
    // Only the one kept is left and it alone is over the budget: it goes too.
    if (cachedBytes > budget && keep !== undefined) drop(keep);
  }

  function drop(serviceId: string): void {
    const c = cache.get(serviceId);
    if (!c) return;
    cache.delete(serviceId);
    cachedBytes -= c.bytes;
  }

  function keep(body: SnapshotBody): void {
    const old = cache.get(body.serviceId);
    if (old && old.body.seq > body.seq) return; // a newer one was kept meanwhile
    drop(body.serviceId);
    if (body.pieces.bytes > budget) return;
    cache.set(body.serviceId, { body, bytes: body.pieces.bytes });
    cachedBytes += body.pieces.bytes;
    evict(body.serviceId);
  }

  /** Builds a snapshot in one read of the store, over turns of the event loop, after any build under way; its bytes go to `out` as they are placed. */
  function build(serviceId: string, out: Unfolding): Promise<SnapshotBody> {
    const run = queue.then(async () => {
      stats.builds++;
      return store.read((pages, more) => read(pages, serviceId, true, more, out));
    });
    queue = run.catch(() => undefined);
    return run;
  }

  /**
   * The service's snapshot at its head seq: kept from an earlier request at the same head (whole), or
   * being built (shared with a build under way, else built now without holding the event loop), its
   * bytes given as they are placed and the whole body when it is done (then kept).
   */
  async function open(serviceId: string): Promise<SnapshotOpen> {
    const s = await requireService(serviceId);
    const scheme = keys.schemeOf(s);
    const c = cache.get(serviceId);
    if (c && c.body.seq === s.head_seq && c.body.keyScheme === scheme) {
      // Most recently used last.
      cache.delete(serviceId);
      cache.set(serviceId, c);
      stats.hits++;
      return { body: c.body };
    }
    if (!store.readsAcrossTurns) {
      // A database in memory (tests, tools): one read at once inside the hub connection's transaction.
      const body = await store.read((pages) => read(pages, serviceId, false));
      keep(body);
      return { body };
    }
    const key = `${serviceId}@${s.head_seq}@${scheme}`;
    const under = building.get(key);
    if (under) {
      stats.shared++;
      return under;
    }
    const live = new Unfolding();
    // From the kept snapshot and the log when it is not too far behind (given whole when made), else read in full.
    const from = c && c.body.keyScheme === scheme && c.body.seq < s.head_seq && s.head_seq - c.body.seq <= MAX_DELTA_ENTRIES ? c.body : undefined;
    const p = (async () => {
      const delta = from ? await later(from, s.head_seq).catch(() => undefined) : undefined;
      if (!delta) return build(serviceId, live);
      live.push(delta.pieces.parts);
      live.end();
      return delta;
    })().then(
      (body) => {
        keep(body);
        return body;
      },
      (e: unknown) => {
        live.fail(e);
        throw e;
      },
    );
    let zipping: Unfolding | undefined;
    const entry = {
      live,
      body: p,
      // Made once, from the bytes as they come, for every gzip request during the build; kept with the body.
      gzipLive: (): Unfolding => {
        if (!zipping) {
          const z = new Unfolding();
          const done = gzipPieces(live, z);
          done.catch(() => undefined);
          void p.then(
            (body) => body.adoptGzip(done),
            () => undefined,
          );
          zipping = z;
        }
        return zipping;
      },
    };
    building.set(key, entry);
    const forget = () => void building.delete(key);
    p.then(forget, forget);
    return entry;
  }

  return {
    open,

    /** The service's snapshot at its head seq, whole (kept, shared with a build under way, or built now). */
    body: async (serviceId: string): Promise<SnapshotBody> => (await open(serviceId)).body,

    /**
     * The snapshot as an object, read at once inside one transaction of the hub's connection (tests
     * and tools; the device route uses body()).
     */
    async snapshot(serviceId: string): Promise<Snapshot> {
      await requireService(serviceId);
      return JSON.parse((await store.direct((pages) => read(pages, serviceId, false))).json().toString('utf8')) as Snapshot;
    },

    /** Counts since start: snapshots built (in full, from a kept one and the log), answered from the cache, requests that shared a build. */
    stats: () => ({ ...stats, cachedBytes, cached: cache.size }),

    /** Closes the reader connection (SQLite). */
    close: () => store.close(),
  };
}

export type Snapshots = ReturnType<typeof createSnapshots>;
