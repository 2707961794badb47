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
//
// The parts: header.ts reads everything up to the entries, entries.ts walks the entries.
import { fail, ok, type Result } from '../../../shared/errors.ts';
import { DerError as CrlDerError } from '../../../shared/asn1/der.ts';
import { fromPem, looksLikePem } from '../../../shared/asn1/pem.ts';
import { walkEntries, type EntrySink, type WalkStats } from './entries.ts';
import { readHeader, type CrlLayout } from './header.ts';

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
 * The pace of a stepped walk: `used()` is true once the current slice of synchronous work has run
 * its time (the walk then yields, and its caller lets the event loop turn), `restart()` starts a new
 * slice after such a yield. hub/revocation's Slicer is one.
 */
export interface Pace {
  used(): boolean;
  restart(): void;
}

/** Entries walked between two looks at the pace (about a millisecond on a Raspberry Pi 4). */
export const WALK_BLOCK = 4096;

/**
 * Parses a CRL given as DER or PEM. Every entry is validated, so a later indexCrl cannot meet a
 * malformed one. Never throws: any malformation is crl_malformed with the byte offset.
 */
export function parseCrl(derOrPem: Uint8Array): Result<ParsedCrl, 'crl_malformed'> {
  const it = parseCrlSteps(derOrPem);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
  }
}

/**
 * parseCrl as steps: with a `pace`, the walk over the entries yields whenever the pace's slice is
 * used up (a national CRL's walk is a hundred milliseconds and more on a busy hub: in one piece it
 * holds every request waiting). Without one it never yields.
 */
export function* parseCrlSteps(derOrPem: Uint8Array, pace?: Pace): Generator<void, Result<ParsedCrl, 'crl_malformed'>> {
  try {
    const der = toDer(derOrPem);
    const h = readHeader(der);
    const stats: WalkStats = { count: 0, unknownCritical: 0 };
    // Offsets and serial hashes are gathered now, in the one validating pass, for indexCrl. The
    // arrays are sized for the smallest possible entry (20 bytes); pages never written to are never
    // touched, so they cost address space, not memory.
    const bound = Math.ceil((h.listEnd - h.listStart) / MIN_ENTRY_BYTES);
    const sink: EntrySink = { offs: new Uint32Array(bound), hashes: new Int32Array(bound) };
    if (pace === undefined) walkEntries(der, h.listStart, h.listEnd, sink, stats);
    else {
      for (let p = h.listStart; p < h.listEnd; ) {
        p = walkEntries(der, p, h.listEnd, sink, stats, WALK_BLOCK);
        if (p < h.listEnd && pace.used()) {
          yield;
          pace.restart();
        }
      }
    }
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
      der,
      listStart: h.listStart,
      listEnd: h.listEnd,
      offs: sink.offs.subarray(0, stats.count),
      hashes: sink.hashes.subarray(0, stats.count),
    });
    return ok(crl);
  } catch (err) {
    return malformed(err);
  }
}

export { malformed as crlMalformed };
