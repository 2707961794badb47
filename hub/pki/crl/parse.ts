// Parses a CRL (RFC 5280 5.1) without asn1js: one pass over the headers, then one validating walk
// over every revoked-certificate entry that allocates nothing per entry. The result keeps views into
// the input buffer rather than copies.
//
//   CertificateList ::= SEQUENCE { tbsCertList TBSCertList, signatureAlgorithm AlgorithmIdentifier,
//                                  signatureValue BIT STRING }
//   TBSCertList ::= SEQUENCE {
//     version Version OPTIONAL,                 -- if present, MUST be v2 (INTEGER 1)
//     signature AlgorithmIdentifier,            -- MUST equal signatureAlgorithm (5.1.1.2)
//     issuer Name, thisUpdate Time, nextUpdate Time OPTIONAL,
//     revokedCertificates SEQUENCE OF SEQUENCE {
//       userCertificate CertificateSerialNumber, revocationDate Time,
//       crlEntryExtensions Extensions OPTIONAL } OPTIONAL,
//     crlExtensions [0] EXPLICIT Extensions OPTIONAL }
//   Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
import { fail, ok, type Result } from '../../../shared/errors.ts';
import { DerError as CrlDerError, DerCursor, TAG as T, rangeEquals } from '../../../shared/asn1/der.ts';
import { readUnsigned, minimalStart } from '../../../shared/asn1/integer.ts';
import { oidToString } from '../../../shared/asn1/oid.ts';
import { fromPem, looksLikePem } from '../../../shared/asn1/pem.ts';
import { isValidTime, timeToMs } from '../../../shared/asn1/time.ts';
import { hashSerial } from './serial.ts';

/** A parsed CRL. Byte fields are views into `der`, which is the input (or the DER decoded from PEM). */
export interface ParsedCrl {
  der: Uint8Array;
  /** The signed part, tbsCertList, header included: what the signature covers. */
  tbs: Uint8Array;
  /** The issuer Name, as its full DER TLV. */
  issuerNameDer: Uint8Array;
  thisUpdate: Date;
  nextUpdate?: Date;
  /** cRLNumber extension (RFC 5280 5.2.3). */
  crlNumber?: bigint;
  /** keyIdentifier of the authorityKeyIdentifier extension (RFC 5280 5.2.1). */
  authorityKeyId?: Uint8Array;
  signatureAlgorithmOid: string;
  /** The signature bits (BIT STRING value without its unused-bits byte). */
  signature: Uint8Array;
  entryCount: number;
  /** True when the deltaCRLIndicator extension is present (RFC 5280 5.2.4). */
  isDelta: boolean;
  /** The BaseCRLNumber of a delta CRL. */
  baseCrlNumber?: bigint;
  /** issuingDistributionPoint extension value (RFC 5280 5.2.5), undecoded; the scope of a partitioned CRL. */
  issuingDistributionPoint?: Uint8Array;
  /** The issuingDistributionPoint decoded (RFC 5280 5.2.5), when present. */
  scope?: CrlScope;
  /**
   * CRL extensions marked critical that this engine does not process, as dotted OIDs. RFC 5280 5.2:
   * such a CRL MUST NOT be used to determine revocation status; loadCrl refuses it.
   */
  unknownCriticalExtensions: string[];
  /** 1 or 2 (the version field is absent in v1). */
  version: 1 | 2;
  /**
   * Entries carrying a critical extension this engine does not process (for example certificateIssuer
   * of an indirect CRL, RFC 5280 5.3.3). They are still indexed; RFC 5280 5.3 says a relying party
   * that cannot process them must not rely on the CRL, so callers should look at this count.
   */
  unknownCriticalEntryExtensions: number;
}

/**
 * The scope a CRL declares in its issuingDistributionPoint (RFC 5280 5.2.5):
 *   IssuingDistributionPoint ::= SEQUENCE {
 *     distributionPoint          [0] DistributionPointName OPTIONAL,
 *     onlyContainsUserCerts      [1] BOOLEAN DEFAULT FALSE,
 *     onlyContainsCACerts        [2] BOOLEAN DEFAULT FALSE,
 *     onlySomeReasons            [3] ReasonFlags OPTIONAL,
 *     indirectCRL                [4] BOOLEAN DEFAULT FALSE,
 *     onlyContainsAttributeCerts [5] BOOLEAN DEFAULT FALSE }
 */
export interface CrlScope {
  /** A distribution point name is present: the CRL covers only certificates naming that point. */
  distributionPoint: boolean;
  onlyContainsUserCerts: boolean;
  onlyContainsCACerts: boolean;
  /** onlySomeReasons is present: the CRL lists only revocations for some reasons. */
  onlySomeReasons: boolean;
  indirectCRL: boolean;
  onlyContainsAttributeCerts: boolean;
}

// Extension OIDs as value bytes (2.5.29.x is 55 1D x).
const OID_CRL_NUMBER = 0x14; // 2.5.29.20
const OID_REASON_CODE = 0x15; // 2.5.29.21
const OID_HOLD_INSTRUCTION = 0x17; // 2.5.29.23
const OID_INVALIDITY_DATE = 0x18; // 2.5.29.24
const OID_DELTA_CRL_INDICATOR = 0x1b; // 2.5.29.27
const OID_ISSUING_DP = 0x1c; // 2.5.29.28
const OID_CERTIFICATE_ISSUER = 0x1d; // 2.5.29.29
const OID_AKI = 0x23; // 2.5.29.35

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
 */
export function walkEntries(b: Uint8Array, start: number, end: number, sink: EntrySink | null, stats: WalkStats): void {
  let tg = 0;
  const c = new DerCursor(b);
  let n = 0;
  let unknownCritical = 0;
  let p = start;
  const offs = sink === null ? null : sink.offs;
  const hashes = sink === null ? null : sink.hashes;
  const cap = offs === null ? 0 : offs.length;
  while (p < end) {
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
}

/** Where the parts of a CRL are, found from the headers alone (no entry is visited). */
export interface CrlLayout {
  der: Uint8Array;
  tbsStart: number;
  tbsEnd: number;
  listStart: number;
  listEnd: number;
}

interface Header extends CrlLayout {
  issuerStart: number;
  issuerEnd: number;
  thisUpdate: number;
  nextUpdate?: number;
  version: 1 | 2;
  sigOid: string;
  sigStart: number;
  sigEnd: number;
  crlNumber?: bigint;
  baseCrlNumber?: bigint;
  aki?: Uint8Array;
  idp?: Uint8Array;
  scope?: CrlScope;
  unknownCritical: string[];
}

/** Decodes an issuingDistributionPoint SEQUENCE body in [start, end) (RFC 5280 5.2.5). */
function readScope(c: DerCursor, start: number, end: number): CrlScope {
  const b = c.buf;
  const scope: CrlScope = {
    distributionPoint: false, onlyContainsUserCerts: false, onlyContainsCACerts: false,
    onlySomeReasons: false, indirectCRL: false, onlyContainsAttributeCerts: false,
  };
  let last = -1;
  let p = start;
  while (p < end) {
    const tg = c.read(p, end);
    const n = tg & 0x1f;
    // Fields in order, each at most once (DER, X.690 10.x; SEQUENCE components keep their order).
    if ((tg & 0xc0) !== 0x80 || n > 5 || n <= last) throw new CrlDerError('issuingDistributionPoint: unexpected field', p);
    last = n;
    if (n === 0) {
      if (tg !== 0xa0) throw new CrlDerError('issuingDistributionPoint: distributionPoint must be constructed', p);
      scope.distributionPoint = true;
    } else if (n === 3) {
      if (tg !== 0x83 || c.end === c.body) throw new CrlDerError('issuingDistributionPoint: bad onlySomeReasons', p);
      scope.onlySomeReasons = true;
    } else {
      // BOOLEAN DEFAULT FALSE: DER leaves a FALSE default out (X.690 11.5), so only TRUE may appear.
      if (tg !== (0x80 | n) || c.end - c.body !== 1 || b[c.body] !== 0xff) throw new CrlDerError('issuingDistributionPoint: bad BOOLEAN', p);
      if (n === 1) scope.onlyContainsUserCerts = true;
      else if (n === 2) scope.onlyContainsCACerts = true;
      else if (n === 4) scope.indirectCRL = true;
      else scope.onlyContainsAttributeCerts = true;
    }
    p = c.end;
  }
  return scope;
}

function readTimeAt(c: DerCursor, pos: number, limit: number, what: string): number {
  const tg = c.read(pos, limit);
  const ms = timeToMs(c.buf, tg, c.body, c.end - c.body);
  if (Number.isNaN(ms)) throw new CrlDerError(`${what}: bad Time`, pos);
  return ms;
}

/** Validates a Name (RFC 5280 4.1.2.4): SEQUENCE OF SET OF SEQUENCE { OID, value }. */
function checkName(c: DerCursor, start: number, end: number): void {
  let tg = 0;
  let p = start;
  while (p < end) {
    if (c.read(p, end) !== T.SET || c.end === c.body) throw new CrlDerError('issuer: expected RelativeDistinguishedName SET', p);
    const se = c.end;
    let q = c.body;
    while (q < se) {
      tg = c.read(q, se);
      if (tg !== T.SEQUENCE) throw new CrlDerError('issuer: expected AttributeTypeAndValue', q);
      const ae = c.end;
      tg = c.read(c.body, ae);
      if (tg !== T.OID || c.end === c.body) throw new CrlDerError('issuer: expected attribute type OID', c.start);
      tg = c.read(c.end, ae);
      if (c.end !== ae) throw new CrlDerError('issuer: extra data in AttributeTypeAndValue', c.end);
      q = ae;
    }
    p = se;
  }
}

function readCrlExtensions(c: DerCursor, h: Header, start: number, end: number): void {
  let tg = 0;
  const b = c.buf;
  const seen = new Set<string>();
  let p = start;
  if (p === end) throw new CrlDerError('crlExtensions: empty', p);
  while (p < end) {
    tg = c.read(p, end);
    if (tg !== T.SEQUENCE) throw new CrlDerError('CRL extension: expected SEQUENCE', p);
    const xe = c.end;
    c.expect(T.OID, c.body, xe, 'CRL extension');
    const oid = oidToString(b, c.body, c.end);
    if (seen.has(oid)) throw new CrlDerError(`CRL extension ${oid} appears twice`, p);
    seen.add(oid);
    tg = c.read(c.end, xe);
    let critical = false;
    if (tg === T.BOOLEAN) {
      if (c.end - c.body !== 1 || (b[c.body] !== 0 && b[c.body] !== 0xff)) throw new CrlDerError('CRL extension: bad critical flag', c.start);
      critical = b[c.body] === 0xff;
      tg = c.read(c.end, xe);
    }
    if (tg !== T.OCTET_STRING || c.end !== xe) throw new CrlDerError('CRL extension: expected OCTET STRING value', c.start);
    const vs = c.body;
    const ve = c.end;
    switch (oid) {
      case '2.5.29.20': {
        c.expect(T.INTEGER, vs, ve, 'cRLNumber');
        if (c.end !== ve) throw new CrlDerError('cRLNumber: extra data', c.end);
        h.crlNumber = readUnsigned(b, c.body, c.end, 'cRLNumber');
        break;
      }
      case '2.5.29.27': {
        c.expect(T.INTEGER, vs, ve, 'deltaCRLIndicator');
        if (c.end !== ve) throw new CrlDerError('deltaCRLIndicator: extra data', c.end);
        h.baseCrlNumber = readUnsigned(b, c.body, c.end, 'deltaCRLIndicator');
        break;
      }
      case '2.5.29.35': {
        // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL,
        //   authorityCertIssuer [1] GeneralNames OPTIONAL, authorityCertSerialNumber [2] INTEGER OPTIONAL }
        c.expect(T.SEQUENCE, vs, ve, 'authorityKeyIdentifier');
        if (c.end !== ve) throw new CrlDerError('authorityKeyIdentifier: extra data', c.end);
        const ae = c.end;
        let q = c.body;
        while (q < ae) {
          tg = c.read(q, ae);
          if (tg === 0x80) h.aki = b.subarray(c.body, c.end);
          else if (tg !== 0xa1 && tg !== 0x82) throw new CrlDerError('authorityKeyIdentifier: unexpected field', q);
          q = c.end;
        }
        break;
      }
      case '2.5.29.28':
        c.expect(T.SEQUENCE, vs, ve, 'issuingDistributionPoint');
        if (c.end !== ve) throw new CrlDerError('issuingDistributionPoint: extra data', c.end);
        h.idp = b.subarray(vs, ve);
        h.scope = readScope(c, c.body, c.end);
        break;
      // issuerAltName, freshestCRL, authorityInfoAccess: informational here.
      case '2.5.29.18':
      case '2.5.29.46':
      case '1.3.6.1.5.5.7.1.1':
        break;
      default:
        // RFC 5280 5.2: a CRL with a critical extension the application cannot process MUST NOT be used.
        // Recorded here and refused by loadCrl with its own code (crl_critical_extension).
        if (critical) h.unknownCritical.push(oid);
    }
    p = xe;
  }
}

/** Reads every header of the CRL and locates revokedCertificates, without visiting the entries. */
function readHeader(der: Uint8Array): Header {
  let tg = 0;
  const c = new DerCursor(der);
  const n = der.length;
  c.expect(T.SEQUENCE, 0, n, 'CertificateList');
  if (c.end !== n) throw new CrlDerError('trailing data after CertificateList', c.end);
  const outerEnd = c.end;
  c.expect(T.SEQUENCE, c.body, outerEnd, 'tbsCertList');
  const tbsStart = c.start;
  const tbsEnd = c.end;
  const tbsBody = c.body;
  // signatureAlgorithm and signatureValue, after tbsCertList.
  c.expect(T.SEQUENCE, tbsEnd, outerEnd, 'signatureAlgorithm');
  const algStart = c.start;
  const algEnd = c.end;
  c.expect(T.OID, c.body, algEnd, 'signatureAlgorithm');
  const sigOid = oidToString(der, c.body, c.end);
  c.expect(T.BIT_STRING, algEnd, outerEnd, 'signatureValue');
  if (c.end !== outerEnd) throw new CrlDerError('extra data after signatureValue', c.end);
  if (c.end - c.body < 2 || der[c.body] !== 0) throw new CrlDerError('signatureValue: bad BIT STRING', c.start);
  const sigStart = c.body + 1;
  const sigEnd = c.end;

  let p = tbsBody;
  tg = c.read(p, tbsEnd);
  let version: 1 | 2 = 1;
  if (tg === T.INTEGER) {
    if (c.end - c.body !== 1 || der[c.body] !== 1) throw new CrlDerError('version: only v2 (1) may be present', c.start);
    version = 2;
    p = c.end;
    tg = c.read(p, tbsEnd);
  }
  if (tg !== T.SEQUENCE) throw new CrlDerError('signature: expected AlgorithmIdentifier', p);
  if (!rangeEquals(der, c.start, c.end, der.subarray(algStart, algEnd))) {
    throw new CrlDerError('signature differs from signatureAlgorithm (RFC 5280 5.1.1.2)', p);
  }
  p = c.end;
  c.expect(T.SEQUENCE, p, tbsEnd, 'issuer');
  const issuerStart = c.start;
  const issuerEnd = c.end;
  checkName(c, c.body, issuerEnd);
  p = issuerEnd;
  const thisUpdate = readTimeAt(c, p, tbsEnd, 'thisUpdate');
  p = c.end;
  const h: Header = {
    der, tbsStart, tbsEnd, listStart: 0, listEnd: 0, issuerStart, issuerEnd, thisUpdate, version, sigOid, sigStart, sigEnd,
    unknownCritical: [],
  };
  if (p < tbsEnd && (der[p] === T.UTCTime || der[p] === T.GeneralizedTime)) {
    h.nextUpdate = readTimeAt(c, p, tbsEnd, 'nextUpdate');
    p = c.end;
  }
  if (p < tbsEnd && der[p] === T.SEQUENCE) {
    tg = c.read(p, tbsEnd);
    h.listStart = c.body;
    h.listEnd = c.end;
    p = c.end;
  } else {
    h.listStart = h.listEnd = p;
  }
  if (p < tbsEnd) {
    if (c.read(p, tbsEnd) !== 0xa0) throw new CrlDerError('tbsCertList: unexpected element', p);
    if (version !== 2) throw new CrlDerError('crlExtensions in a v1 CRL', p);
    if (c.end !== tbsEnd) throw new CrlDerError('tbsCertList: extra data after crlExtensions', c.end);
    const xe = c.end;
    c.expect(T.SEQUENCE, c.body, xe, 'crlExtensions');
    if (c.end !== xe) throw new CrlDerError('crlExtensions: extra data', c.end);
    readCrlExtensions(c, h, c.body, c.end);
  }
  return h;
}

/** Smallest entry: SEQUENCE header (2), a one-byte serial INTEGER (3), a UTCTime (15). */
export const MIN_ENTRY_BYTES = 20;

/** What parseCrl already learnt about the entries of a CRL it returned, for indexCrl. */
export interface PreparedEntries extends EntrySink {
  der: Uint8Array;
  listStart: number;
  listEnd: number;
}

/** Keyed by the ParsedCrl object parseCrl returned; gone with it. */
export const prepared = new WeakMap<ParsedCrl, PreparedEntries>();

/** Turns input that may be PEM (RFC 7468 `X509 CRL`) into DER, or throws CrlDerError. */
function toDer(derOrPem: Uint8Array): Uint8Array {
  if (!(derOrPem instanceof Uint8Array)) throw new CrlDerError('input is not bytes', 0);
  return looksLikePem(derOrPem) ? fromPem(derOrPem, 'X509 CRL') : derOrPem;
}

function malformed(err: unknown): { ok: false; code: 'crl_malformed'; message: string } {
  if (err instanceof CrlDerError) return fail('crl_malformed', `malformed CRL: ${err.message}`);
  // Anything else is a bug in this parser, never a reason to crash the caller.
  return fail('crl_malformed', `malformed CRL: ${err instanceof Error ? err.message : String(err)}`);
}

/** Locates revokedCertificates in a CRL after checking its headers; for indexCrl. */
export function layoutOf(der: Uint8Array): CrlLayout {
  return readHeader(der);
}

/**
 * Parses a CRL given as DER or PEM. Every entry is validated, so a later indexCrl cannot meet a
 * malformed one. Never throws: any malformation is crl_malformed with the byte offset.
 */
export function parseCrl(derOrPem: Uint8Array): Result<ParsedCrl, 'crl_malformed'> {
  try {
    const der = toDer(derOrPem);
    const h = readHeader(der);
    const stats: WalkStats = { count: 0, unknownCritical: 0 };
    // Offsets and serial hashes are gathered now, in the one validating pass, for indexCrl. The
    // arrays are sized for the smallest possible entry (20 bytes); pages never written to are never
    // touched, so they cost address space, not memory.
    const bound = Math.ceil((h.listEnd - h.listStart) / MIN_ENTRY_BYTES);
    const sink: EntrySink = { offs: new Uint32Array(bound), hashes: new Int32Array(bound) };
    walkEntries(der, h.listStart, h.listEnd, sink, stats);
    const crl: ParsedCrl = {
      der,
      tbs: der.subarray(h.tbsStart, h.tbsEnd),
      issuerNameDer: der.subarray(h.issuerStart, h.issuerEnd),
      thisUpdate: new Date(h.thisUpdate),
      signatureAlgorithmOid: h.sigOid,
      signature: der.subarray(h.sigStart, h.sigEnd),
      entryCount: stats.count,
      isDelta: h.baseCrlNumber !== undefined,
      version: h.version,
      unknownCriticalEntryExtensions: stats.unknownCritical,
      unknownCriticalExtensions: h.unknownCritical,
    };
    if (h.nextUpdate !== undefined) crl.nextUpdate = new Date(h.nextUpdate);
    if (h.crlNumber !== undefined) crl.crlNumber = h.crlNumber;
    if (h.baseCrlNumber !== undefined) crl.baseCrlNumber = h.baseCrlNumber;
    if (h.aki !== undefined) crl.authorityKeyId = h.aki;
    if (h.idp !== undefined) crl.issuingDistributionPoint = h.idp;
    if (h.scope !== undefined) crl.scope = h.scope;
    prepared.set(crl, {
      der, listStart: h.listStart, listEnd: h.listEnd,
      offs: sink.offs.subarray(0, stats.count), hashes: sink.hashes.subarray(0, stats.count),
    });
    return ok(crl);
  } catch (err) {
    return malformed(err);
  }
}

export { malformed as crlMalformed };
