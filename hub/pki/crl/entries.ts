// The revokedCertificates list of a CRL (RFC 5280 5.1.2.6, 5.3): one validating walk over every
// entry that allocates nothing per entry, recording each entry's offset and serial hash in typed
// arrays for the index (crl-index.ts). Called by parse.ts on the list its header reading found.
//
//   revokedCertificates SEQUENCE OF SEQUENCE {
//     userCertificate CertificateSerialNumber, revocationDate Time,
//     crlEntryExtensions Extensions OPTIONAL } OPTIONAL
import { DerError as CrlDerError, DerCursor, TAG as T } from '../../../shared/asn1/der.ts';
import { minimalStart } from '../../../shared/asn1/integer.ts';
import { isValidTime } from '../../../shared/asn1/time.ts';
import { hashSerial } from './serial.ts';

// Entry extension OIDs as value bytes (2.5.29.x is 55 1D x).

const OID_REASON_CODE = 0x15; // 2.5.29.21
const OID_HOLD_INSTRUCTION = 0x17; // 2.5.29.23
const OID_INVALIDITY_DATE = 0x18; // 2.5.29.24

/** Entry extensions that this engine understands (RFC 5280 5.3). */
function isKnownEntryExt(b: Uint8Array, s: number, len: number): boolean {
  if (len !== 3 || b[s] !== 0x55 || b[s + 1] !== 0x1d) return false;
  const x = b[s + 2];
  return x === OID_REASON_CODE || x === OID_INVALIDITY_DATE || x === OID_HOLD_INSTRUCTION;
}

/** Counters filled by walkEntries. */
export interface WalkStats {
  count: number;
  unknownCritical: number;
}

/**
 * Where walkEntries writes, per entry, the offset of its SEQUENCE and the hash of its serial's value
 * (hashSerial over the minimal INTEGER bytes). Typed arrays, so no object is made per entry.
 */
export interface EntrySink {
  offs: Uint32Array;
  hashes: Int32Array;
}

/**
 * Validates every entry of revokedCertificates in [start, end) and records each in `sink`. Throws
 * CrlDerError on the first malformed entry. Checks: the SEQUENCE nesting and lengths, a non-empty
 * serial INTEGER, a valid Time, and well-formed extensions (reasonCode an ENUMERATED, invalidityDate
 * a GeneralizedTime, no duplicate reasonCode).
 *
 * Walks at most `limit` entries and returns where it stopped (`end` when done): a caller walks a
 * national CRL in parts, calling again from there. `stats` accumulates over the calls (entries are
 * recorded in `sink` from `stats.count` on), so it starts at zero for a fresh walk.
 */
export function walkEntries(b: Uint8Array, start: number, end: number, sink: EntrySink | null, stats: WalkStats, limit = Number.POSITIVE_INFINITY): number {
  let tg = 0;
  const c = new DerCursor(b);
  let n = stats.count;
  const stopAt = n + limit;
  let unknownCritical = stats.unknownCritical;
  let p = start;
  const offs = sink === null ? null : sink.offs;
  const hashes = sink === null ? null : sink.hashes;
  const cap = offs === null ? 0 : offs.length;
  while (p < end && n < stopAt) {
    const entryStart = p;
    tg = c.read(p, end);
    if (tg !== T.SEQUENCE) throw new CrlDerError('revoked entry: expected SEQUENCE', p);
    const ee = c.end;
    if (c.read(c.body, ee) !== T.INTEGER) throw new CrlDerError('revoked entry: expected serial INTEGER', c.start);
    const sStart = c.body;
    const sEnd = c.end;
    if (sEnd === sStart) throw new CrlDerError('revoked entry: empty serial', c.start);
    tg = c.read(sEnd, ee);
    if (!isValidTime(b, tg, c.body, c.end - c.body)) throw new CrlDerError('revoked entry: bad revocationDate', c.start);
    let q = c.end;
    if (q < ee) {
      tg = c.read(q, ee);
      if (tg !== T.SEQUENCE || c.end !== ee) throw new CrlDerError('revoked entry: bad crlEntryExtensions', q);
      q = c.body;
      if (q === ee) throw new CrlDerError('revoked entry: empty crlEntryExtensions', q);
      let sawReason = false;
      while (q < ee) {
        tg = c.read(q, ee);
        if (tg !== T.SEQUENCE) throw new CrlDerError('entry extension: expected SEQUENCE', q);
        const xe = c.end;
        tg = c.read(c.body, xe);
        if (tg !== T.OID || c.end === c.body) throw new CrlDerError('entry extension: expected OID', c.start);
        const oidStart = c.body;
        const oidLen = c.end - c.body;
        let r = c.end;
        tg = c.read(r, xe);
        let critical = false;
        if (tg === T.BOOLEAN) {
          if (c.end - c.body !== 1 || (b[c.body] !== 0 && b[c.body] !== 0xff)) throw new CrlDerError('entry extension: bad critical flag', c.start);
          critical = b[c.body] === 0xff;
          r = c.end;
          tg = c.read(r, xe);
        }
        if (tg !== T.OCTET_STRING || c.end !== xe) throw new CrlDerError('entry extension: expected OCTET STRING value', c.start);
        const vs = c.body;
        const vl = c.end - c.body;
        if (isKnownEntryExt(b, oidStart, oidLen)) {
          const kind = b[oidStart + 2];
          if (kind === OID_REASON_CODE) {
            // CRLReason ::= ENUMERATED; every defined value fits one byte.
            if (sawReason) throw new CrlDerError('entry extension: duplicate reasonCode', q);
            if (vl !== 3 || b[vs] !== T.ENUMERATED || b[vs + 1] !== 1 || b[vs + 2] & 0x80) throw new CrlDerError('entry extension: bad reasonCode', vs);
            sawReason = true;
          } else if (kind === OID_INVALIDITY_DATE) {
            if (vl !== 17 || b[vs] !== T.GeneralizedTime || b[vs + 1] !== 15 || !isValidTime(b, T.GeneralizedTime, vs + 2, 15)) {
              throw new CrlDerError('entry extension: bad invalidityDate', vs);
            }
          } else {
            // holdInstructionCode: an OID; checked for shape only.
            if (vl < 3 || b[vs] !== T.OID || b[vs + 1] !== vl - 2) throw new CrlDerError('entry extension: bad holdInstructionCode', vs);
          }
        } else if (critical) unknownCritical++;
        q = xe;
      }
    }
    if (offs !== null) {
      if (n >= cap) throw new CrlDerError('more entries than expected', entryStart);
      offs[n] = entryStart;
      hashes![n] = hashSerial(b, minimalStart(b, sStart, sEnd), sEnd);
    }
    n++;
    p = ee;
  }
  stats.count = n;
  stats.unknownCritical = unknownCritical;
  return p;
}
