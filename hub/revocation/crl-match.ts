// Matching a verified CRL against the bound certificates, and writing what it revokes, as steps: each
// (async) generator yields after a slice of work (its caller decides whether the event loop gets
// a turn there: crl-manager.ts applyAsync), so a national CRL never holds the hub's requests.
//
// Matching does not read every binding. The bindings up to the previous run's mark were matched
// against the previous CRL of this key, so for them only the entries new since that CRL are looked
// up, through the index (issuer, key, serial); bindings made since the mark (registrations that raced
// the previous run included) are matched against the whole CRL. Without a usable previous CRL (the
// first run, a restart that could not reload it) every binding is matched, in pages.
import type { Emitter } from '../../shared/typed-events.ts';
import type { FanoutEvents } from '../fanout.ts';
import type { CrlIndex } from '../pki/crl/index.ts';
import { SERIAL_BATCH, type BindingState, type MyKeyRepo, type RevocationHit } from '../store/mykey-repo.ts';
import type { CrlMatchMark } from '../store/revocation-repo.ts';

/** A bound certificate found revoked: what applyRevocations writes. */
export type Hit = RevocationHit;

/** Most revocations written per transaction (chunks are sized to take about a slice). */
const APPLY_CHUNK = 2000;
/** Rows of a CRL's index compared with the previous CRL between two looks at the pace. */
const COMPARE_BLOCK = 4096;
/** Bindings read per page when every binding is matched. */
const SCAN_PAGE = 2000;

/** The duty cycle of a run: whether the current slice of synchronous work is used up, and a new slice. */
export interface Slicer {
  /** True once the current slice has run its time; the caller yields (and a new slice starts). */
  used(): boolean;
  /** Starts a new slice (after a yield the caller did not ask `used` about). */
  restart(): void;
  /** The slice's length in milliseconds. */
  readonly ms: number;
}

export function createSlicer(ms: number): Slicer {
  let start = performance.now();
  return {
    ms,
    used() {
      if (performance.now() - start < ms) return false;
      start = performance.now();
      return true;
    },
    restart() {
      start = performance.now();
    },
  };
}

/**
 * Runs a paced run (a generator that yields after each slice of work) to its end, the event loop
 * getting a turn (setImmediate: timers and I/O first) at each yield; returns what it returns.
 */
export async function acrossTurns<T>(it: AsyncGenerator<void, T>): Promise<T> {
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    await new Promise<void>((res) => setImmediate(res));
  }
}

export interface MatchInput {
  mykeys: MyKeyRepo;
  /** The issuing key (TrustAnchor.keyId) and the issuer name hash of the CRL. */
  keyId: string;
  nameKey: string;
  index: CrlIndex;
  /** The index of the CRL of this key applied last, when it is still held, and its mark. */
  held?: { index: CrlIndex; thisUpdate: number; crlNumber?: string };
  prevMark?: CrlMatchMark;
  /** Whether bindings without a key id may remain (bound before key ids were recorded). */
  legacyRows: boolean;
  slicer: Slicer;
  /** Progress of a phase (rows done so far). */
  report: (phase: string, done: number) => void;
}

/** Finds the bound certificates the CRL revokes (not yet marked revoked), in binding order. */
export async function* matchCrl(m: MatchInput): AsyncGenerator<void, { hits: Hit[]; incremental: boolean }> {
  const { mykeys, keyId, nameKey, index, held, prevMark, legacyRows, slicer, report } = m;
  const incremental = prevMark !== undefined && held !== undefined && held.thisUpdate === prevMark.this_update && (held.crlNumber ?? null) === prevMark.crl_number;
  const hits: Hit[] = [];
  const hit = (b: { id: number; mykey_id: string; state: BindingState }, rev: { revokedAt: Date; reason: string }) => {
    hits.push({ bindingId: b.id, mykeyId: b.mykey_id, state: b.state, revokedAt: rev.revokedAt.getTime(), reason: rev.reason });
  };

  /** Matches bindings with an id above `from` against the whole CRL, a page at a time (through the key index). */
  async function* matchAfter(from: number): AsyncGenerator<void> {
    let scanned = 0;
    // The issuing key's rows, then rows of this issuer name whose key is not yet known.
    for (const [rowsKey, nameOnly] of legacyRows
      ? ([
          [keyId, false],
          ['', true],
        ] as const)
      : ([[keyId, false]] as const)) {
      let after = from;
      for (;;) {
        const page = await mykeys.unrevokedOfKeyAfter(rowsKey, after, SCAN_PAGE);
        if (page.length === 0) break;
        for (const b of page) {
          if (nameOnly && b.issuer_key !== nameKey) continue;
          const rev = index.lookup(b.serial_hex);
          if (rev) hit(b, rev);
        }
        after = page[page.length - 1].id;
        scanned += page.length;
        report('match', scanned);
        slicer.restart();
        yield;
      }
    }
  }

  if (incremental) {
    // Entries new since the CRL every binding up to the previous mark was matched against,
    // looked up in serial order (neighbouring pages of the index, not a random walk over it).
    // Bindings keep serials as lower-case hex without leading zero bytes (hub/pki/der.ts).
    const fresh: { serial: string; revokedAt: Date; reason: string }[] = [];
    // A block of the index's rows at a time: a CRL with nothing new decodes nothing, so the pace is
    // looked at between blocks, not only as new entries come.
    for (let from = 0; from < index.size; from += COMPARE_BLOCK) {
      for (const e of index.entriesNotIn(held.index, from, from + COMPARE_BLOCK)) {
        fresh.push({ serial: e.serialHex.toLowerCase(), revokedAt: e.revokedAt, reason: e.reason });
      }
      if (slicer.used()) yield;
    }
    // Ordered by the serial's first 32 bits (what the index orders by first), as numbers in one
    // typed-array sort: key * 2^20 + position stays exact in a double for up to 2^20 new entries a slice.
    const order: number[] = [];
    for (let from = 0; from < fresh.length; from += 1 << 20) {
      const part = fresh.slice(from, from + (1 << 20));
      const keys = new Float64Array(part.length);
      for (let i = 0; i < part.length; i++) {
        const top = parseInt(part[i].serial.slice(0, 8).padEnd(8, '0'), 16);
        keys[i] = Math.max(top, 0) * 1048576 + i; // a negative serial (not RFC 5280) sorts first
      }
      keys.sort();
      for (const k of keys) order.push(from + (k % 1048576));
    }
    yield;
    // Looked up SERIAL_BATCH entries a statement (one trip through the driver per batch, not per entry).
    const batch: string[] = [];
    const bySerial = new Map<string, (typeof fresh)[number]>();
    for (let i = 0; i < order.length; ) {
      batch.length = 0;
      bySerial.clear();
      for (; i < order.length && batch.length < SERIAL_BATCH; i++) {
        const e = fresh[order[i]];
        batch.push(e.serial);
        bySerial.set(e.serial, e);
      }
      for (const b of await mykeys.unrevokedBySerials(nameKey, keyId, batch, legacyRows)) {
        const e = bySerial.get(b.serial_hex);
        // Bindings after the previous mark are matched against the whole CRL below.
        if (e !== undefined && b.id <= prevMark.binding_mark) hit(b, e);
      }
      if (slicer.used()) {
        report('match', i);
        yield;
      }
    }
    yield* matchAfter(prevMark.binding_mark);
  } else {
    yield* matchAfter(0);
  }
  yield;
  return { hits: byBinding(hits), incremental };
}

/**
 * The hits in binding order, so each written chunk's rows sit on neighbouring pages: as numbers in
 * one typed-array sort (id * 2^21 + position, exact in a double for ids below 2^32), not a
 * comparator over objects, which held the event loop for tens of milliseconds at 100,000 hits.
 */
function byBinding(hits: Hit[]): Hit[] {
  const SPAN = 2 ** 21;
  if (hits.length >= SPAN) return hits.sort((x, y) => x.bindingId - y.bindingId);
  const keys = new Float64Array(hits.length);
  for (let i = 0; i < hits.length; i++) keys[i] = hits[i].bindingId * SPAN + i;
  keys.sort();
  const out = new Array<Hit>(hits.length);
  for (let i = 0; i < keys.length; i++) out[i] = hits[keys[i] % SPAN];
  return out;
}

/** Least time between two `suspended` events of one run: the outboxes are told in rounds, not per chunk. */
const NOTIFY_EVERY_MS = 250;
/**
 * Suspensions that make a round sooner: about a whole batch of their entries (a suspension takes ~47
 * bytes of a 64 KiB compact batch, shared/sync.ts), which the outbox publishes while the run goes on
 * (it holds back only a partly filled batch), so the edges start on the first batch as soon as it is
 * written instead of 250 ms in.
 */
const NOTIFY_EVERY_SUSPENSIONS = 1300;

/**
 * Writes the hits in chunks, each its own short write transaction (BEGIN IMMEDIATE), sized to take
 * about a slice: the event loop (and another process waiting for the write lock) gets a turn
 * between. Returns how many MyKey IDs were suspended. `suspended` is emitted after a committed chunk
 * that suspended some, once NOTIFY_EVERY_MS have passed since the last event or NOTIFY_EVERY_SUSPENSIONS
 * were made since, and once more at the end (their change-log entries wait in the outboxes): a
 * publishing round per chunk would compete with requests for the turns the run leaves free, and
 * each round takes what has committed so far anyway. Events before the last say `more`: the
 * outboxes publish only whole batches then, and the rest with the last.
 */
export async function* writeRevocations(
  mykeys: MyKeyRepo,
  hits: Hit[],
  o: { now: () => number; slicer: Slicer; report: (phase: string, done: number) => void; events?: Emitter<FanoutEvents> },
): AsyncGenerator<void, number> {
  let newlySuspended = 0;
  let size = 100;
  let pending = false;
  /** Told with `more` since the last plain event: the outboxes hold a partly filled batch until told without. */
  let holding = false;
  let told = performance.now();
  /** Suspensions since the last event. */
  let untold = 0;
  try {
    for (let i = 0; i < hits.length; ) {
      const chunk = hits.slice(i, i + size);
      const t = performance.now();
      const n = await mykeys.applyRevocations(chunk, o.now());
      const took = performance.now() - t;
      size = Math.max(10, Math.min(APPLY_CHUNK, Math.round(size * (o.slicer.ms / Math.max(took, 0.5)))));
      i += chunk.length;
      newlySuspended += n;
      if (n > 0) pending = true;
      untold += n;
      if (pending && (performance.now() - told >= NOTIFY_EVERY_MS || untold >= NOTIFY_EVERY_SUSPENSIONS)) {
        const more = i < hits.length;
        o.events?.emit('suspended', more ? { source: 'crl', more } : { source: 'crl' });
        holding = more;
        pending = false;
        untold = 0;
        told = performance.now();
      }
      o.report('apply', i);
      yield;
    }
  } finally {
    // At the end, and when a later chunk failed: what committed is told of all the same, without
    // `more`, so what the outboxes held back goes too.
    if (pending || holding) o.events?.emit('suspended', { source: 'crl' });
  }
  return newlySuspended;
}
