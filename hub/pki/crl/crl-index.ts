// The revocation index of one CRL: a bucketed hash table in typed arrays (compressed-sparse-row
// form) whose rows point at entries inside the CRL's own DER buffer. No per-entry object or string
// is made: a million entries cost 8 bytes each (entry offset and serial hash) plus 4 bytes per
// bucket, on top of the DER itself. Buckets are filled by a counting sort, which touches memory
// almost sequentially; dates and reasons are decoded only when a lookup hits.
import { type Result, ok } from '../../../shared/errors.ts';
import { crlReasonFromCode, type CrlReason } from '../../../shared/revocation.ts';
import { CrlDerError, T } from './der-cursor.ts';
import { walkEntries, type WalkStats } from './entries.ts';
import { MIN_ENTRY_BYTES, crlMalformed, layoutOf, prepared, type Pace, type PreparedEntries, type ParsedCrl } from './parse.ts';
import { hashSerial, minimalStart, serialHex, serialKey } from './serial.ts';
import { timeToMs } from './time.ts';

/** One revoked certificate, decoded. */
export interface CrlEntry {
  /** Upper-case hex as `openssl crl -text` prints it (magnitude, no sign byte). */
  serialHex: string;
  revokedAt: Date;
  reason: CrlReason;
}

/** What a lookup says about a revoked serial. */
export interface CrlRevocation {
  revokedAt: Date;
  reason: CrlReason;
}

/** The index of one CRL. `size` counts distinct serials (a repeated serial keeps its first entry). */
export interface CrlIndex {
  readonly size: number;
  /**
   * The revocation of a serial, or undefined when it is not on the CRL. The serial is a bigint, hex
   * (any case, with or without leading 00) or INTEGER content bytes; all compare by value (RFC 5280).
   * Throws MyKeyError(validation_failed) for a malformed serial rather than answer "not revoked".
   */
  lookup(serial: bigint | string | Uint8Array): CrlRevocation | undefined;
  /** Every distinct entry in CRL order. */
  entries(): IterableIterator<CrlEntry>;
  /**
   * The entries whose serial `other` does not list (what a CRL adds to the one before it), in no
   * particular order. Serials compare by value, without decoding the entries both lists hold.
   * `from` and `to` limit it to a range of the index's rows (0 to size, in no particular order of
   * serials): a caller compares a national CRL a block at a time, yielding between blocks.
   */
  entriesNotIn(other: CrlIndex, from?: number, to?: number): IterableIterator<CrlEntry>;
}

/** Options of indexCrl. */
export interface IndexOptions {
  /** Called every 65,536 entries and at the end with (entries done, total). */
  onProgress?: (done: number, total: number) => void;
}

const PROGRESS_EVERY = 1 << 16;

// Header decoding of already validated DER (walkEntries checked every entry before it is stored).
function bodyOf(b: Uint8Array, pos: number): number {
  const l = b[pos + 1];
  return l < 0x80 ? pos + 2 : pos + 2 + (l & 0x7f);
}
function endOf(b: Uint8Array, pos: number): number {
  const l = b[pos + 1];
  if (l < 0x80) return pos + 2 + l;
  const n = l & 0x7f;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[pos + 2 + i];
  return pos + 2 + n + len;
}

/** True when the serial of the entry at `off` has the minimal INTEGER bytes key[ks, ke) of `kb`. */
function serialIs(b: Uint8Array, off: number, kb: Uint8Array, ks: number, ke: number): boolean {
  const si = bodyOf(b, off);
  const se = endOf(b, si);
  const ss = minimalStart(b, bodyOf(b, si), se);
  const kl = ke - ks;
  if (se - ss !== kl) return false;
  for (let i = 0; i < kl; i++) if (b[ss + i] !== kb[ks + i]) return false;
  return true;
}

class BucketIndex implements CrlIndex {
  readonly size: number;
  constructor(
    private readonly der: Uint8Array,
    private readonly listStart: number,
    private readonly listEnd: number,
    /** dir[b] .. dir[b + 1] is bucket b's row range in offs/hashes. */
    private readonly dir: Uint32Array,
    private readonly shift: number,
    private readonly offs: Uint32Array,
    private readonly hashes: Int32Array,
    /** Whether some serial was listed twice (then entries() skips the repeats). */
    private readonly hadRepeats: boolean,
  ) {
    this.size = offs.length;
  }

  /** Row of the serial with minimal bytes key[ks, ke), or -1. */
  private find(kb: Uint8Array, ks: number, ke: number): number {
    const h = hashSerial(kb, ks, ke);
    const bucket = h >>> this.shift;
    for (let r = this.dir[bucket], e = this.dir[bucket + 1]; r < e; r++) {
      if (this.hashes[r] === h && serialIs(this.der, this.offs[r], kb, ks, ke)) return r;
    }
    return -1;
  }

  lookup(serial: bigint | string | Uint8Array): CrlRevocation | undefined {
    const key = serialKey(serial);
    const r = this.find(key, 0, key.length);
    if (r < 0) return undefined;
    const e = this.decode(this.offs[r]);
    return { revokedAt: e.revokedAt, reason: e.reason };
  }

  *entries(): IterableIterator<CrlEntry> {
    const b = this.der;
    for (let p = this.listStart; p < this.listEnd; p = endOf(b, p)) {
      if (this.hadRepeats) {
        // Only the first listing of a repeated serial is indexed.
        const si = bodyOf(b, p);
        const se = endOf(b, si);
        const r = this.find(b, minimalStart(b, bodyOf(b, si), se), se);
        if (this.offs[r] !== p) continue;
      }
      yield this.decode(p);
    }
  }

  *entriesNotIn(other: CrlIndex, from = 0, to = this.offs.length): IterableIterator<CrlEntry> {
    const b = this.der;
    for (let r = Math.max(0, from), end = Math.min(to, this.offs.length); r < end; r++) {
      const off = this.offs[r];
      if (other instanceof BucketIndex) {
        // Compared on the DER bytes of both CRLs: nothing is decoded for an entry both hold.
        const si = bodyOf(b, off);
        const se = endOf(b, si);
        if (other.find(b, minimalStart(b, bodyOf(b, si), se), se) >= 0) continue;
        yield this.decode(off);
      } else {
        const e = this.decode(off);
        if (other.lookup(e.serialHex) === undefined) yield e;
      }
    }
  }

  private decode(off: number): CrlEntry {
    const b = this.der;
    const ee = endOf(b, off);
    const si = bodyOf(b, off);
    const se = endOf(b, si);
    const serial = serialHex(b, bodyOf(b, si), se);
    const tb = bodyOf(b, se);
    const te = endOf(b, se);
    const revokedAt = new Date(timeToMs(b, b[se], tb, te - tb));
    let reason: CrlReason = 'unspecified';
    if (te < ee) {
      // crlEntryExtensions: look for reasonCode (2.5.29.21, value ENUMERATED, RFC 5280 5.3.1).
      const xe = endOf(b, te);
      for (let q = bodyOf(b, te); q < xe; q = endOf(b, q)) {
        const o = bodyOf(b, q);
        if (b[o + 1] === 3 && b[o + 2] === 0x55 && b[o + 3] === 0x1d && b[o + 4] === 0x15) {
          let v = o + 5;
          if (b[v] === T.BOOLEAN) v = endOf(b, v);
          // OCTET STRING { ENUMERATED } checked as 04 03 0A 01 xx by walkEntries. Codes outside
          // RFC 5280's list (7, 11 and up) still mean revoked; they are reported as unspecified.
          reason = crlReasonFromCode(b[v + 4]) ?? 'unspecified';
          break;
        }
      }
    }
    return { serialHex: serial, revokedAt, reason };
  }
}

/** Entries of a CRL that did not come from parseCrl (or whose DER was swapped): walked afresh. */
function prepare(crl: ParsedCrl): PreparedEntries {
  const der = crl.der;
  const got = prepared.get(crl);
  if (got !== undefined && got.der === der) return got;
  const layout = layoutOf(der);
  const bound = Math.ceil((layout.listEnd - layout.listStart) / MIN_ENTRY_BYTES);
  const sink = { offs: new Uint32Array(bound), hashes: new Int32Array(bound) };
  const stats: WalkStats = { count: 0, unknownCritical: 0 };
  walkEntries(der, layout.listStart, layout.listEnd, sink, stats);
  return { der, listStart: layout.listStart, listEnd: layout.listEnd, offs: sink.offs.subarray(0, stats.count), hashes: sink.hashes.subarray(0, stats.count) };
}

/**
 * Indexes a parsed CRL for lookups by serial. A ParsedCrl from parseCrl is indexed from what its
 * validating pass gathered; any other is validated again from its DER, so an index is never built
 * over bytes that were not checked. Malformed input gives crl_malformed.
 */
export function indexCrl(crl: ParsedCrl, opts: IndexOptions = {}): Result<CrlIndex, 'crl_malformed'> {
  const it = indexCrlSteps(crl, opts);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
  }
}

/** Rows (or buckets) handled between two looks at the pace. */
const BLOCK = 1 << 14;

/**
 * indexCrl as steps: with a `pace`, each pass over the rows and buckets yields whenever the pace's
 * slice is used up, so a national CRL is indexed in pieces of a few milliseconds between requests.
 * Without one it never yields.
 */
export function* indexCrlSteps(crl: ParsedCrl, opts: IndexOptions = {}, pace?: Pace): Generator<void, Result<CrlIndex, 'crl_malformed'>> {
  /** True (after a yield) when the pace says so at the end of a block of `i` rows. */
  const due = (i: number) => pace !== undefined && (i & (BLOCK - 1)) === 0 && pace.used();
  try {
    const p = prepare(crl);
    prepared.delete(crl);
    const n = p.offs.length;
    if (n !== crl.entryCount) throw new CrlDerError(`entryCount says ${crl.entryCount}, the CRL holds ${n}`, p.listStart);
    const onProgress = opts.onProgress;
    // About two entries per bucket.
    let bits = 4;
    while (bits < 30 && 2 ** bits * 2 < n) bits++;
    const shift = 32 - bits;
    const buckets = 2 ** bits;
    const dir = new Uint32Array(buckets + 1);
    const src = p.hashes;
    for (let i = 0; i < n; i++) {
      dir[(src[i] >>> shift) + 1]++;
      if (due(i + 1)) {
        yield;
        pace!.restart();
      }
    }
    for (let b = 0; b < buckets; b++) dir[b + 1] += dir[b];
    // Counting sort into buckets; stable, so a repeated serial's first listing comes first.
    const fill = dir.slice(0, buckets);
    let offs = new Uint32Array(n);
    let hashes = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const h = src[i];
      const r = fill[h >>> shift]++;
      offs[r] = p.offs[i];
      hashes[r] = h;
      if (onProgress !== undefined && (i + 1) % PROGRESS_EVERY === 0) onProgress(i + 1, n);
      if (due(i + 1)) {
        yield;
        pace!.restart();
      }
    }
    // Repeated serials (RFC 5280 does not allow them, CAs have written them): keep the first.
    const der = p.der;
    const DROP = 0xffffffff;
    let dropped = 0;
    for (let b = 0; b < buckets; b++) {
      const e = dir[b + 1];
      for (let r = dir[b]; r < e; r++) {
        if (offs[r] === DROP) continue;
        for (let q = r + 1; q < e; q++) {
          if (hashes[q] !== hashes[r] || offs[q] === DROP) continue;
          const si = bodyOf(der, offs[q]);
          const se = endOf(der, si);
          if (serialIs(der, offs[r], der, minimalStart(der, bodyOf(der, si), se), se)) {
            offs[q] = DROP;
            dropped++;
          }
        }
      }
      if (due(b + 1)) {
        yield;
        pace!.restart();
      }
    }
    if (dropped > 0) {
      const o2 = new Uint32Array(n - dropped);
      const h2 = new Int32Array(n - dropped);
      let w = 0;
      for (let b = 0; b < buckets; b++) {
        const s = dir[b];
        const e = dir[b + 1];
        dir[b] = w;
        for (let r = s; r < e; r++) {
          if (offs[r] === DROP) continue;
          o2[w] = offs[r];
          h2[w] = hashes[r];
          w++;
        }
      }
      dir[buckets] = w;
      offs = o2;
      hashes = h2;
    }
    onProgress?.(n, n);
    return ok(new BucketIndex(der, p.listStart, p.listEnd, dir, shift, offs, hashes, dropped > 0));
  } catch (err) {
    return crlMalformed(err);
  }
}
