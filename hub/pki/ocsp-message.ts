// OCSP messages (RFC 6960 4.1 and 4.2): the request the hub writes (one or more CertIDs and a nonce)
// and the response it reads, decoded with the bounds-checked DER toolkit (shared/asn1) so a malformed
// answer is a DerError at a known offset. Decoding only: whether an answer may be believed is
// ocsp-verify.ts, asking the responder is ocsp-transport.ts and ocsp-client.ts.
import { createHash } from 'node:crypto';
import { crlReasonFromCode, type CrlReason } from '../../shared/revocation.ts';
import type { ParsedCertificate } from './certificate.ts';
import { DerError, TAG, bytesEqual, bytesOf, children, expectTlv, rangeEquals, readTlv, valueBytes, type Tlv } from '../../shared/asn1/der.ts';
import { tlv } from '../../shared/asn1/write.ts';
import { oidToString } from '../../shared/asn1/oid.ts';
import { decodeTime } from '../../shared/asn1/time.ts';

export const OCSP_OID = {
  nonce: '1.3.6.1.5.5.7.48.1.2',
  basic: '1.3.6.1.5.5.7.48.1.1',
  ocspSigning: '1.3.6.1.5.5.7.3.9',
  sha1: '1.3.14.3.2.26',
} as const;

/** The CertID of RFC 6960 4.1.1, as the hub asks it and as a SingleResponse must repeat it. */
export interface CertId {
  hashAlgorithmOid: string;
  issuerNameHash: Uint8Array;
  issuerKeyHash: Uint8Array;
  /** Content bytes of the serialNumber INTEGER. */
  serial: Uint8Array;
  /** The CertID's own DER, exactly as written (certIdFor) or as read from a response. */
  der?: Uint8Array;
}

/**
 * A string naming a CertID by its four fields (RFC 6960 4.1.1): equal strings exactly when
 * hashAlgorithm, issuerNameHash, issuerKeyHash and serialNumber are all equal, byte for byte.
 * Hex cannot contain ':', so no two different CertIDs share a key whatever their lengths.
 */
export function certIdKey(id: CertId): string {
  const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
  return `${id.hashAlgorithmOid}:${hex(id.issuerNameHash)}:${hex(id.issuerKeyHash)}:${hex(id.serial)}`;
}

/** One SingleResponse, decoded. */
export interface SingleResponse {
  certId: CertId;
  status: { kind: 'good' } | { kind: 'revoked'; revokedAt: Date; reason?: CrlReason } | { kind: 'unknown' };
  thisUpdate: Date;
  nextUpdate?: Date;
}

/** A decoded OCSPResponse; `basic` only when responseStatus is successful. */
export interface ParsedOcspResponse {
  responseStatus: number;
  basic?: {
    /** DER of tbsResponseData, exactly as signed. */
    tbs: Uint8Array;
    responderId: { byName: Uint8Array } | { byKey: Uint8Array };
    producedAt: Date;
    responses: SingleResponse[];
    nonce?: Uint8Array;
    signatureAlgorithmOid: string;
    signature: Uint8Array;
    certs: Uint8Array[];
  };
}

// --- DER writing for the request (X.690 10.1: definite lengths, fewest octets) ---

/** Octets of a definite length's encoding (X.690 8.1.3); requests stay far below 16 MiB. */
function lengthOctets(len: number): number {
  return len < 0x80 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 4;
}

/** Writes tag and length at `at`; returns where the value starts. */
function putHeader(out: Uint8Array, at: number, tag: number, len: number): number {
  out[at++] = tag;
  if (len < 0x80) out[at++] = len;
  else if (len < 0x100) {
    out[at++] = 0x81;
    out[at++] = len;
  } else if (len < 0x10000) {
    out[at++] = 0x82;
    out[at++] = len >> 8;
    out[at++] = len & 0xff;
  } else {
    out[at++] = 0x83;
    out[at++] = len >> 16;
    out[at++] = (len >> 8) & 0xff;
    out[at++] = len & 0xff;
  }
  return at;
}

const tlvSize = (len: number) => 1 + lengthOctets(len) + len;

/** AlgorithmIdentifier { id-sha1, NULL } (RFC 6960 4.1.1 CertID.hashAlgorithm, as RFC 5019 profiles it). */
const SHA1_ALGORITHM = tlv(TAG.SEQUENCE, tlv(TAG.OID, Uint8Array.from([0x2b, 0x0e, 0x03, 0x02, 0x1a])), tlv(TAG.NULL));
/** The extnID of id-pkix-ocsp-nonce (RFC 6960 4.4.1), as DER. */
const NONCE_OID_DER = tlv(TAG.OID, Uint8Array.from([0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02]));

/** SHA-1 of a certificate's subjectPublicKey bits, made once per parsed certificate (anchors live long). */
const keyHashes = new WeakMap<ParsedCertificate, Uint8Array>();
export function keyHashOf(c: ParsedCertificate): Uint8Array {
  let h = keyHashes.get(c);
  if (!h) {
    h = new Uint8Array(createHash('sha1').update(subjectPublicKeyBits(c)).digest());
    keyHashes.set(c, h);
  }
  return h;
}

/**
 * Per issuer certificate, and per issuer Name as the certificates asked about encode it (exact DER,
 * as latin1): the SHA-1 of that Name and the CertID's first three fields written once
 * (hashAlgorithm, issuerNameHash, issuerKeyHash), so a CertID costs one INTEGER and one copy.
 * Keyed by the exact bytes hashed, so a lookup gives the hash of exactly those bytes. Bounded: the
 * certificates of one CA carry its one Name.
 */
interface CertIdPrefix {
  /** The issuer Name bytes hashed (a copy). */
  name: Uint8Array;
  nameHash: Uint8Array;
  prefix: Uint8Array;
}
const certIdPrefixes = new WeakMap<ParsedCertificate, { last?: CertIdPrefix; byName: Map<string, CertIdPrefix> }>();
const NAMES_KEPT_PER_ISSUER = 16;

function certIdPrefix(issuerDer: Uint8Array, issuer: ParsedCertificate): CertIdPrefix {
  let m = certIdPrefixes.get(issuer);
  if (!m) {
    m = { byName: new Map() };
    certIdPrefixes.set(issuer, m);
  }
  // Nearly always the Name the previous certificate carried: a byte comparison, no string made.
  if (m.last && bytesEqual(m.last.name, issuerDer)) return m.last;
  const id = Buffer.from(issuerDer.buffer, issuerDer.byteOffset, issuerDer.byteLength).toString('latin1');
  let p = m.byName.get(id);
  if (!p) {
    // The hash of the issuer's distinguished name, DER-encoded: the issuer field of the certificate.
    const nameHash = new Uint8Array(createHash('sha1').update(issuerDer).digest());
    // The hash of the issuer's public key: the subjectPublicKey BIT STRING value without tag, length
    // and unused-bits octet.
    const prefix = concat(SHA1_ALGORITHM, tlv(TAG.OCTET_STRING, nameHash), tlv(TAG.OCTET_STRING, keyHashOf(issuer)));
    p = { name: Uint8Array.from(issuerDer), nameHash, prefix };
    if (m.byName.size >= NAMES_KEPT_PER_ISSUER) m.byName.delete(m.byName.keys().next().value as string);
    m.byName.set(id, p);
  }
  m.last = p;
  return p;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
  let at = 0;
  for (const x of parts) {
    out.set(x, at);
    at += x.length;
  }
  return out;
}

/** The CertID for a certificate under its CA (SHA-1, as RFC 6960 4.1.1 and RFC 5019 profile it), with its DER. */
export function certIdFor(cert: ParsedCertificate, issuer: ParsedCertificate): CertId {
  const { nameHash, prefix } = certIdPrefix(cert.issuerDer, issuer);
  // CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber INTEGER }; the
  // serial goes as the certificate encodes it (DER INTEGER content, X.690 8.3.2).
  const serial = cert.serial;
  const bodyLen = prefix.length + tlvSize(serial.length);
  const der = new Uint8Array(tlvSize(bodyLen));
  let at = putHeader(der, 0, TAG.SEQUENCE, bodyLen);
  der.set(prefix, at);
  at = putHeader(der, at + prefix.length, TAG.INTEGER, serial.length);
  der.set(serial, at);
  return { hashAlgorithmOid: OCSP_OID.sha1, issuerNameHash: nameHash, issuerKeyHash: keyHashOf(issuer), serial, der };
}

function subjectPublicKeyBits(c: ParsedCertificate): Uint8Array {
  const spki = readTlv(c.spkiDer, 0);
  const [, bits] = children(c.spkiDer, spki);
  if (!bits || bits.tag !== TAG.BIT_STRING || bits.end - bits.valueStart < 1) throw new DerError('bad subjectPublicKey', spki.start);
  return c.spkiDer.subarray(bits.valueStart + 1, bits.end);
}

/** The DER of a SHA-1 CertID, from its fields when it was not made by certIdFor. */
function certIdDer(id: CertId): Uint8Array {
  if (id.hashAlgorithmOid !== OCSP_OID.sha1) throw new RangeError('only SHA-1 CertIDs are written');
  return id.der ?? tlv(TAG.SEQUENCE, SHA1_ALGORITHM, tlv(TAG.OCTET_STRING, id.issuerNameHash), tlv(TAG.OCTET_STRING, id.issuerKeyHash), tlv(TAG.INTEGER, id.serial));
}

/**
 * OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
 * TBSRequest ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, requestorName [1] ... OPTIONAL,
 *                           requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
 * Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
 * One CertID, or several under one nonce (RFC 6960 4.1.1: requestList is a SEQUENCE OF Request).
 * Written in one pass into one buffer: lengths first, then the bytes.
 */
export function encodeOcspRequest(ids: CertId | readonly CertId[], nonce: Uint8Array): Uint8Array {
  const list = Array.isArray(ids) ? (ids as readonly CertId[]) : [ids as CertId];
  const certIds = list.map(certIdDer);
  // Sizes from the inside out. RFC 8954 2.1: the nonce extension's extnValue is an OCTET STRING
  // holding an OCTET STRING of 1 to 32 octets; Extension ::= SEQUENCE { extnID, extnValue }.
  const extnValueSize = tlvSize(tlvSize(nonce.length));
  const extContent = NONCE_OID_DER.length + extnValueSize;
  const extsContent = tlvSize(extContent); // Extensions ::= SEQUENCE OF Extension
  const ctx2Content = tlvSize(extsContent); // requestExtensions [2] EXPLICIT Extensions
  let listContent = 0;
  for (const c of certIds) listContent += tlvSize(c.length); // Request ::= SEQUENCE { reqCert }
  const tbsContent = tlvSize(listContent) + tlvSize(ctx2Content);
  const reqContent = tlvSize(tbsContent);
  const total = tlvSize(reqContent);
  if (total > 0xffff) throw new RangeError('an OCSP request over 64 KiB is not written');
  const out = new Uint8Array(total);
  let at = putHeader(out, 0, TAG.SEQUENCE, reqContent);
  at = putHeader(out, at, TAG.SEQUENCE, tbsContent);
  at = putHeader(out, at, TAG.SEQUENCE, listContent);
  for (const c of certIds) {
    at = putHeader(out, at, TAG.SEQUENCE, c.length);
    out.set(c, at);
    at += c.length;
  }
  at = putHeader(out, at, TAG.ctx(2), ctx2Content);
  at = putHeader(out, at, TAG.SEQUENCE, extsContent);
  at = putHeader(out, at, TAG.SEQUENCE, extContent);
  out.set(NONCE_OID_DER, at);
  at = putHeader(out, at + NONCE_OID_DER.length, TAG.OCTET_STRING, tlvSize(nonce.length));
  at = putHeader(out, at, TAG.OCTET_STRING, nonce.length);
  out.set(nonce, at);
  return out;
}

// --- DER reading of the response ---

/** The value bytes of id-sha1 (1.3.14.3.2.26), its one DER encoding (X.690 8.19). */
const SHA1_OID_VALUE = Uint8Array.from([0x2b, 0x0e, 0x03, 0x02, 0x1a]);

function parseCertId(buf: Uint8Array, t: Tlv): CertId {
  // CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
  //                       issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
  if (t.tag !== TAG.SEQUENCE) throw new DerError('bad CertID', t.start);
  const [alg, nameHash, keyHash, serial, ...rest] = children(buf, t);
  if (!serial || rest.length || alg.tag !== TAG.SEQUENCE || nameHash.tag !== TAG.OCTET_STRING || keyHash.tag !== TAG.OCTET_STRING || serial.tag !== TAG.INTEGER) {
    throw new DerError('bad CertID', t.start);
  }
  const [oid] = children(buf, alg);
  if (!oid || oid.tag !== TAG.OID) throw new DerError('bad hashAlgorithm', alg.start);
  if (serial.end === serial.valueStart) throw new DerError('empty serialNumber', serial.start);
  // The hub asks SHA-1 CertIDs: their OID bytes are compared as they are, any other OID is decoded.
  const hashAlgorithmOid = rangeEquals(buf, oid.valueStart, oid.end, SHA1_OID_VALUE) ? OCSP_OID.sha1 : oidToString(buf, oid.valueStart, oid.end);
  return { hashAlgorithmOid, issuerNameHash: valueBytes(buf, nameHash), issuerKeyHash: valueBytes(buf, keyHash), serial: valueBytes(buf, serial), der: bytesOf(buf, t) };
}

function generalizedTime(buf: Uint8Array, t: Tlv | undefined, what: string): Date {
  if (!t || t.tag !== TAG.GeneralizedTime) throw new DerError(`bad ${what}`, t?.start ?? 0);
  return decodeTime(buf, t, { fraction: true });
}

function parseSingleResponse(buf: Uint8Array, t: Tlv): SingleResponse {
  // SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus, thisUpdate GeneralizedTime,
  //                               nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL,
  //                               singleExtensions [1] EXPLICIT Extensions OPTIONAL }
  if (t.tag !== TAG.SEQUENCE) throw new DerError('bad SingleResponse', t.start);
  const [idT, statusT, thisT, ...opt] = children(buf, t);
  if (!thisT) throw new DerError('SingleResponse is missing fields', t.start);
  const certId = parseCertId(buf, idT);
  let status: SingleResponse['status'];
  // CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT UnknownInfo }
  if (statusT.tag === 0x80 && statusT.end === statusT.valueStart) status = { kind: 'good' };
  else if (statusT.tag === 0x82 && statusT.end === statusT.valueStart) status = { kind: 'unknown' };
  else if (statusT.tag === TAG.ctx(1)) {
    // RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
    const [timeT, reasonT, ...more] = children(buf, statusT);
    if (more.length) throw new DerError('bad RevokedInfo', statusT.start);
    const revokedAt = generalizedTime(buf, timeT, 'revocationTime');
    let reason: CrlReason | undefined;
    if (reasonT) {
      if (reasonT.tag !== TAG.ctx(0)) throw new DerError('bad revocationReason', reasonT.start);
      const e = expectTlv(buf, reasonT.valueStart, TAG.ENUMERATED, reasonT.end, 'CRLReason');
      if (e.end - e.valueStart !== 1) throw new DerError('bad CRLReason', e.start);
      reason = crlReasonFromCode(buf[e.valueStart]);
      if (!reason) throw new DerError('unknown CRLReason', e.start);
    }
    status = { kind: 'revoked', revokedAt, ...(reason ? { reason } : {}) };
  } else throw new DerError('bad CertStatus', statusT.start);
  const thisUpdate = generalizedTime(buf, thisT, 'thisUpdate');
  let nextUpdate: Date | undefined;
  for (const o of opt) {
    if (o.tag === TAG.ctx(0) && nextUpdate === undefined) nextUpdate = generalizedTime(buf, readTlv(buf, o.valueStart, o.end), 'nextUpdate');
    else if (o.tag !== TAG.ctx(1)) throw new DerError('bad SingleResponse field', o.start);
  }
  return { certId, status, thisUpdate, ...(nextUpdate ? { nextUpdate } : {}) };
}

function findNonce(buf: Uint8Array, exts: Tlv): Uint8Array | undefined {
  const seq = expectTlv(buf, exts.valueStart, TAG.SEQUENCE, exts.end, 'Extensions');
  for (const ext of children(buf, seq)) {
    const parts = ext.tag === TAG.SEQUENCE ? children(buf, ext) : [];
    if (parts.length < 2 || parts[0].tag !== TAG.OID) throw new DerError('bad Extension', ext.start);
    const octets = parts[parts.length - 1];
    if (octets.tag !== TAG.OCTET_STRING) throw new DerError('bad extnValue', octets.start);
    if (oidToString(buf, parts[0].valueStart, parts[0].end) !== OCSP_OID.nonce) continue;
    // RFC 8954 2.1: extnValue holds an OCTET STRING; some responders echo the raw value instead.
    const v = valueBytes(buf, octets);
    try {
      const inner = readTlv(v, 0);
      if (inner.tag === TAG.OCTET_STRING && inner.end === v.length) return valueBytes(v, inner);
    } catch {
      // not wrapped
    }
    return v;
  }
  return undefined;
}

/** Decodes a DER OCSPResponse (RFC 6960 4.2.1). Throws DerError for anything malformed. */
export function parseOcspResponseOrThrow(der: Uint8Array): ParsedOcspResponse {
  // OCSPResponse ::= SEQUENCE { responseStatus OCSPResponseStatus, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
  const top = expectTlv(der, 0, TAG.SEQUENCE, der.length, 'OCSPResponse');
  if (top.end !== der.length) throw new DerError('trailing bytes after the OCSPResponse', top.end);
  const [statusT, bytesT, ...rest] = children(der, top);
  if (!statusT || statusT.tag !== TAG.ENUMERATED || statusT.end - statusT.valueStart !== 1 || rest.length) throw new DerError('bad OCSPResponse', top.start);
  const responseStatus = der[statusT.valueStart];
  if (responseStatus !== 0) return { responseStatus };
  if (!bytesT || bytesT.tag !== TAG.ctx(0)) throw new DerError('a successful response without responseBytes', top.start);
  // ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER, response OCTET STRING }
  const rb = expectTlv(der, bytesT.valueStart, TAG.SEQUENCE, bytesT.end, 'ResponseBytes');
  const [typeT, respT] = children(der, rb);
  if (!respT || typeT.tag !== TAG.OID || respT.tag !== TAG.OCTET_STRING) throw new DerError('bad ResponseBytes', rb.start);
  if (oidToString(der, typeT.valueStart, typeT.end) !== OCSP_OID.basic) throw new DerError('not a basic OCSP response', typeT.start);
  const b = valueBytes(der, respT);
  // BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm AlgorithmIdentifier,
  //                                  signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
  const basicT = expectTlv(b, 0, TAG.SEQUENCE, b.length, 'BasicOCSPResponse');
  if (basicT.end !== b.length) throw new DerError('trailing bytes after the BasicOCSPResponse', basicT.end);
  const [tbsT, algT, sigT, certsT, ...more] = children(b, basicT);
  if (!sigT || more.length || tbsT.tag !== TAG.SEQUENCE || algT.tag !== TAG.SEQUENCE || sigT.tag !== TAG.BIT_STRING || sigT.end - sigT.valueStart < 1) {
    throw new DerError('bad BasicOCSPResponse', basicT.start);
  }
  if (b[sigT.valueStart] !== 0) throw new DerError('signature BIT STRING with unused bits', sigT.start);
  const [algOid] = children(b, algT);
  if (!algOid || algOid.tag !== TAG.OID) throw new DerError('bad signatureAlgorithm', algT.start);
  const certs: Uint8Array[] = [];
  if (certsT) {
    if (certsT.tag !== TAG.ctx(0)) throw new DerError('bad certs', certsT.start);
    const seq = expectTlv(b, certsT.valueStart, TAG.SEQUENCE, certsT.end, 'certs');
    for (const c of children(b, seq)) certs.push(bytesOf(b, c));
  }
  // ResponseData ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, responderID ResponderID,
  //                             producedAt GeneralizedTime, responses SEQUENCE OF SingleResponse,
  //                             responseExtensions [1] EXPLICIT Extensions OPTIONAL }
  const f = children(b, tbsT);
  let i = 0;
  if (f[i]?.tag === TAG.ctx(0)) {
    const v = expectTlv(b, f[i].valueStart, TAG.INTEGER, f[i].end, 'version');
    if (v.end - v.valueStart !== 1 || b[v.valueStart] !== 0) throw new DerError('unsupported ResponseData version', v.start);
    i++;
  }
  const [ridT, producedT, responsesT, extsT, ...extra] = f.slice(i);
  if (!responsesT || extra.length || responsesT.tag !== TAG.SEQUENCE) throw new DerError('bad ResponseData', tbsT.start);
  // ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash }
  let responderId: { byName: Uint8Array } | { byKey: Uint8Array };
  if (ridT.tag === TAG.ctx(1)) responderId = { byName: bytesOf(b, expectTlv(b, ridT.valueStart, TAG.SEQUENCE, ridT.end, 'responder Name')) };
  else if (ridT.tag === TAG.ctx(2)) responderId = { byKey: valueBytes(b, expectTlv(b, ridT.valueStart, TAG.OCTET_STRING, ridT.end, 'responder KeyHash')) };
  else throw new DerError('bad ResponderID', ridT.start);
  const producedAt = generalizedTime(b, producedT, 'producedAt');
  const responses = children(b, responsesT).map((r) => parseSingleResponse(b, r));
  let nonce: Uint8Array | undefined;
  if (extsT) {
    if (extsT.tag !== TAG.ctx(1)) throw new DerError('bad responseExtensions', extsT.start);
    nonce = findNonce(b, extsT);
  }
  return {
    responseStatus,
    basic: {
      tbs: bytesOf(b, tbsT),
      responderId,
      producedAt,
      responses,
      ...(nonce ? { nonce } : {}),
      signatureAlgorithmOid: oidToString(b, algOid.valueStart, algOid.end),
      signature: b.subarray(sigT.valueStart + 1, sigT.end),
      certs,
    },
  };
}
