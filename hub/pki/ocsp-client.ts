// OCSP client (RFC 6960) for registration-time revocation checks: a request for exactly one CertID
// with a nonce, POSTed to the configured responder, and the answer accepted only when
//   - it answers for that very CertID (hash algorithm, issuerNameHash, issuerKeyHash, serial; 4.1.1),
//   - it is signed by the issuing CA itself or by a responder the CA delegated directly with
//     id-kp-OCSPSigning (4.2.2.2): issued and signed by the CA, valid now, not a CA certificate,
//   - it is fresh: thisUpdate not in the future, nextUpdate not passed, and without nextUpdate no
//     older than a maximum age (so an old "good" cannot be replayed forever; 4.2.2.1),
//   - the nonce, when echoed, is ours (4.4.1).
// Anything else is an `unknown` verdict with a stable code saying why; the client never throws.
//
// At registration load the hub asks thousands of times a second, so the cost per answer is kept
// small: the issuer's key hash and KeyObject are made once, a delegated responder certificate is
// checked once per certificate, signatures are verified with node:crypto directly, requests go out
// over keep-alive node:http, and a verified answer is kept per (issuer key, serial) while it is fresh
// (an OCSP answer is public data). A cached answer never outlives its nextUpdate, the maximum age or
// the cache lifetime, and never overrides a CRL "revoked": the checker asks OCSP only after the CRL
// (hub/revocation/checker.ts).
//
// The response is read with the platform's bounds-checked DER toolkit (shared/asn1), not PKI.js, so a
// malformed answer is a DerError at a known offset and nothing else.
import { createHash, createPublicKey, randomBytes, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { ErrorCode } from '../../shared/errors.ts';
import { silentLogger, type Logger } from '../../shared/log.ts';
import { crlReasonFromCode, type CrlReason } from '../../shared/revocation.ts';
import type { RevocationVerdict } from '../revocation/checker.ts';
import { digestForSignatureOid, parseCertificate, type ParsedCertificate } from './certificate.ts';
import { DerError, TAG, bytesEqual, bytesOf, children, expectTlv, readTlv, valueOf, type Tlv } from '../../shared/asn1/der.ts';
import { oidToString } from '../../shared/asn1/oid.ts';
import { decodeTime } from '../../shared/asn1/time.ts';
import type { CheckedCertificate } from './user-cert.ts';

/** Why an OCSP answer was not used: one stable code each (shared/errors.ts). */
export type OcspRejectCode = Extract<
  ErrorCode,
  | 'ocsp_unavailable'
  | 'ocsp_malformed'
  | 'ocsp_signature_invalid'
  | 'ocsp_responder_unauthorized'
  | 'ocsp_certid_mismatch'
  | 'ocsp_nonce_mismatch'
  | 'ocsp_not_yet_valid'
  | 'ocsp_stale'
  | 'ocsp_cert_unknown'
>;

export const OCSP_OID = {
  nonce: '1.3.6.1.5.5.7.48.1.2',
  basic: '1.3.6.1.5.5.7.48.1.1',
  ocspSigning: '1.3.6.1.5.5.7.3.9',
  sha1: '1.3.14.3.2.26',
} as const;

export interface OcspClientOptions {
  url: string;
  timeoutMs?: number;
  /** How far the responder's clock may be ahead, or an answer past its nextUpdate (default 5 minutes). */
  clockSkewMs?: number;
  /** Without nextUpdate, an answer older than this (from thisUpdate) is stale (default 1 hour). */
  maxAgeMs?: number;
  /** Largest response accepted, in bytes. */
  maxResponseBytes?: number;
  /**
   * How long a verified answer is reused for the same (issuer key, serial), at most; never past its
   * nextUpdate, nor past thisUpdate + maxAgeMs without one. 0 asks the responder every time.
   */
  cacheMs?: number;
  /** Most answers kept (oldest dropped first). */
  cacheEntries?: number;
  /**
   * Most CertIDs asked in one request. Checks that arrive together (in one turn of the event loop)
   * for certificates of the same CA share one request, one nonce and one signed answer (RFC 6960
   * 4.1.1 requestList); 1 asks for each certificate alone.
   */
  batchMax?: number;
  /**
   * Most requests in flight to the responder per CA. Checks arriving meanwhile wait and go together
   * in the next request, so a slow round trip makes bigger requests rather than more of them.
   */
  maxInFlight?: number;
  /** Another HTTP client (tests); node:http(s) with keep-alive otherwise. */
  fetchImpl?: typeof fetch;
  log?: Logger;
}

/** The CertID of RFC 6960 4.1.1, as the hub asks it and as a SingleResponse must repeat it. */
export interface CertId {
  hashAlgorithmOid: string;
  issuerNameHash: Uint8Array;
  issuerKeyHash: Uint8Array;
  /** Content bytes of the serialNumber INTEGER. */
  serial: Uint8Array;
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

// --- DER writing for the request (X.690 definite lengths) ---

function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const len = content.reduce((n, c) => n + c.length, 0);
  if (len > 0xffff) throw new RangeError('an OCSP request over 64 KiB is not written');
  const head = len < 0x80 ? [tag, len] : len < 0x100 ? [tag, 0x81, len] : [tag, 0x82, len >> 8, len & 0xff];
  return new Uint8Array(Buffer.concat([Uint8Array.from(head), ...content]));
}

const SHA1_ALGORITHM = tlv(TAG.SEQUENCE, tlv(TAG.OID, Uint8Array.from([0x2b, 0x0e, 0x03, 0x02, 0x1a])), tlv(TAG.NULL));

/** SHA-1 of a certificate's subjectPublicKey bits, made once per parsed certificate (anchors live long). */
const keyHashes = new WeakMap<ParsedCertificate, Uint8Array>();
function keyHashOf(c: ParsedCertificate): Uint8Array {
  let h = keyHashes.get(c);
  if (!h) {
    h = new Uint8Array(createHash('sha1').update(subjectPublicKeyBits(c)).digest());
    keyHashes.set(c, h);
  }
  return h;
}

/** The CertID for a certificate under its CA (SHA-1, as RFC 6960 4.1.1 and RFC 5019 profile it). */
export function certIdFor(cert: ParsedCertificate, issuer: ParsedCertificate): CertId {
  return {
    hashAlgorithmOid: OCSP_OID.sha1,
    // The hash of the issuer's distinguished name, DER-encoded: the issuer field of the certificate.
    issuerNameHash: new Uint8Array(createHash('sha1').update(cert.issuerDer).digest()),
    // The hash of the issuer's public key: the subjectPublicKey BIT STRING value without tag, length
    // and unused-bits octet.
    issuerKeyHash: keyHashOf(issuer),
    serial: cert.serial,
  };
}

function subjectPublicKeyBits(c: ParsedCertificate): Uint8Array {
  const spki = readTlv(c.spkiDer, 0);
  const [, bits] = children(c.spkiDer, spki);
  if (!bits || bits.tag !== TAG.BIT_STRING || bits.end - bits.valueStart < 1) throw new DerError('bad subjectPublicKey', spki.start);
  return c.spkiDer.subarray(bits.valueStart + 1, bits.end);
}

/**
 * OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
 * TBSRequest ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, requestorName [1] ... OPTIONAL,
 *                           requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
 * Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
 * One CertID, or several under one nonce (RFC 6960 4.1.1: requestList is a SEQUENCE OF Request).
 */
export function encodeOcspRequest(ids: CertId | readonly CertId[], nonce: Uint8Array): Uint8Array {
  const list = Array.isArray(ids) ? (ids as readonly CertId[]) : [ids as CertId];
  const requests = list.map((id) => {
    if (id.hashAlgorithmOid !== OCSP_OID.sha1) throw new RangeError('only SHA-1 CertIDs are written');
    return tlv(TAG.SEQUENCE, tlv(TAG.SEQUENCE, SHA1_ALGORITHM, tlv(TAG.OCTET_STRING, id.issuerNameHash), tlv(TAG.OCTET_STRING, id.issuerKeyHash), tlv(TAG.INTEGER, id.serial)));
  });
  // RFC 8954 2.1: the nonce extension's value is an OCTET STRING of 1 to 32 octets.
  const nonceExt = tlv(TAG.SEQUENCE, tlv(TAG.OID, Uint8Array.from([0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02])), tlv(TAG.OCTET_STRING, tlv(TAG.OCTET_STRING, nonce)));
  const tbs = tlv(TAG.SEQUENCE, tlv(TAG.SEQUENCE, ...requests), tlv(TAG.ctx(2), tlv(TAG.SEQUENCE, nonceExt)));
  return tlv(TAG.SEQUENCE, tbs);
}

// --- DER reading of the response ---

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
  return { hashAlgorithmOid: oidToString(buf, oid.valueStart, oid.end), issuerNameHash: valueOf(buf, nameHash), issuerKeyHash: valueOf(buf, keyHash), serial: valueOf(buf, serial) };
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
    const v = valueOf(buf, octets);
    try {
      const inner = readTlv(v, 0);
      if (inner.tag === TAG.OCTET_STRING && inner.end === v.length) return valueOf(v, inner);
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
  const b = valueOf(der, respT);
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
  else if (ridT.tag === TAG.ctx(2)) responderId = { byKey: valueOf(b, expectTlv(b, ridT.valueStart, TAG.OCTET_STRING, ridT.end, 'responder KeyHash')) };
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

// --- Verification ---

/** An OCSP answer the hub refused, with its stable code and a message without serials. */
export class OcspRejected extends Error {
  readonly code: OcspRejectCode;
  constructor(code: OcspRejectCode, message: string) {
    super(message);
    this.name = 'OcspRejected';
    this.code = code;
  }
}

function verifySignature(oid: string, data: Uint8Array, key: KeyObject, sig: Uint8Array): boolean {
  const digest = digestForSignatureOid(oid);
  if (!digest) return false;
  try {
    return cryptoVerify(digest, data, key, sig);
  } catch {
    return false;
  }
}

function publicKeyOf(c: ParsedCertificate): KeyObject | undefined {
  try {
    return createPublicKey({ key: Buffer.from(c.spkiDer), format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

/**
 * Who signed the response, and may they (RFC 6960 4.2.2.2): the CA that issued the certificate in
 * question, or a certificate in `certs` that this CA issued directly (its signature verifies with
 * the CA key), that carries id-kp-OCSPSigning, is valid now and is not itself a CA certificate. A
 * holder's certificate, a revoked certificate's own key, another CA's responder: all refused.
 */
/** A responder certificate as checked once: parsed, its key, and why the CA's delegation fails (if it does). */
interface ResponderCert {
  cert: ParsedCertificate;
  key: KeyObject | undefined;
  /** Why it may not sign for this CA regardless of time, or undefined when it may (RFC 6960 4.2.2.2). */
  refusal?: string;
}
// Per trust anchor, the certificates responders shipped, by their DER (as latin1): one parse, one
// signature check by the CA, per responder certificate and not per answer. Bounded; a flood of
// distinct certificates only costs what it would without the cache.
const responderCerts = new WeakMap<CheckedCertificate['anchor'], Map<string, ResponderCert | null>>();
const RESPONDER_CERTS_KEPT = 64;

function responderCert(der: Uint8Array, issuer: CheckedCertificate['anchor']): ResponderCert | null {
  let m = responderCerts.get(issuer);
  if (!m) {
    m = new Map();
    responderCerts.set(issuer, m);
  }
  const id = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1');
  const seen = m.get(id);
  if (seen !== undefined) return seen;
  const parsed = parseCertificate(der);
  let out: ResponderCert | null = null;
  if (parsed.ok) {
    const c = parsed.value;
    const issuedByCa =
      bytesEqual(c.issuerDer, issuer.cert.subjectDer) && digestForSignatureOid(c.signatureAlgorithmOid) !== undefined && verifySignature(c.signatureAlgorithmOid, c.tbs, issuer.publicKey, c.signature);
    let refusal: string | undefined;
    if (!issuedByCa) refusal = 'the responder certificate was not issued by the certificate\'s CA';
    else if (!c.extKeyUsage?.includes(OCSP_OID.ocspSigning)) refusal = 'the responder certificate lacks id-kp-OCSPSigning';
    else if (c.basicConstraintsCa) refusal = 'the responder certificate is a CA certificate';
    else if (c.keyUsage && !c.keyUsage.has('digitalSignature')) refusal = 'the responder certificate key usage lacks digitalSignature';
    out = { cert: c, key: publicKeyOf(c), ...(refusal ? { refusal } : {}) };
  }
  if (m.size >= RESPONDER_CERTS_KEPT) m.delete(m.keys().next().value as string);
  m.set(id, out);
  return out;
}

function authorizeSigner(basic: NonNullable<ParsedOcspResponse['basic']>, issuer: CheckedCertificate['anchor'], now: Date, skewMs: number): void {
  if (verifySignature(basic.signatureAlgorithmOid, basic.tbs, issuer.publicKey, basic.signature)) return checkResponderId(basic, issuer.cert);
  let why: string | undefined;
  for (const der of basic.certs) {
    const r = responderCert(der, issuer);
    if (!r || !r.key || !verifySignature(basic.signatureAlgorithmOid, basic.tbs, r.key, basic.signature)) continue;
    // This certificate's key made the signature: is it a responder the CA delegated, valid now?
    const c = r.cert;
    if (r.refusal) why = r.refusal;
    else if (c.notBefore.getTime() > now.getTime() + skewMs) why = 'the responder certificate is not yet valid';
    else if (c.notAfter.getTime() < now.getTime()) why = 'the responder certificate has expired';
    else return checkResponderId(basic, c);
    throw new OcspRejected('ocsp_responder_unauthorized', why);
  }
  // No certificate that may sign for this CA made the signature.
  throw new OcspRejected('ocsp_signature_invalid', 'the response signature verifies with neither the CA key nor a certificate it carries');
}

/** RFC 6960 4.2.2.3: the ResponderID names the signer, by its subject Name or SHA-1 of its key. */
function checkResponderId(basic: NonNullable<ParsedOcspResponse['basic']>, signer: ParsedCertificate): void {
  const id = basic.responderId;
  let named = false;
  try {
    named = 'byName' in id ? bytesEqual(id.byName, signer.subjectDer) : bytesEqual(id.byKey, keyHashOf(signer));
  } catch {
    named = false; // a key whose bits cannot be found names nobody
  }
  if (!named) throw new OcspRejected('ocsp_responder_unauthorized', 'the ResponderID does not name the certificate that signed the response');
}

function sameCertId(a: CertId, b: CertId): string | undefined {
  if (a.hashAlgorithmOid !== b.hashAlgorithmOid) return 'hash algorithm';
  if (!bytesEqual(a.issuerNameHash, b.issuerNameHash)) return 'issuerNameHash';
  if (!bytesEqual(a.issuerKeyHash, b.issuerKeyHash)) return 'issuerKeyHash';
  // The serial as the certificate encodes it (DER INTEGER content is unique, X.690 8.3.2).
  if (!bytesEqual(a.serial, b.serial)) return 'serialNumber';
  return undefined;
}

export interface OcspCheckInput {
  /** The CertID the hub asked about. */
  asked: CertId;
  /** The nonce the hub sent. */
  nonce: Uint8Array;
  issuer: CheckedCertificate['anchor'];
  now: Date;
  skewMs: number;
  maxAgeMs: number;
}

/**
 * Decides what a DER OCSP response says about the certificate asked about, or throws OcspRejected.
 * Pure over data and `now`: the HTTP shell below and the tests call it.
 */
export function evaluateOcspResponse(der: Uint8Array, input: OcspCheckInput): SingleResponse['status'] {
  return evaluateOcspAnswer(der, input).status;
}

/** As evaluateOcspResponse, with the accepted SingleResponse whole (its times decide how long it may be reused). */
export function evaluateOcspAnswer(der: Uint8Array, input: OcspCheckInput): SingleResponse {
  return answerFor(verifyOcspResponse(der, input), input);
}

/**
 * Parses a DER OCSP response and checks what holds for the whole of it: a successful status, a
 * signer the CA authorized (RFC 6960 4.2.2.2) and, when echoed, our nonce (4.4.1). Throws OcspRejected.
 */
export function verifyOcspResponse(der: Uint8Array, input: Pick<OcspCheckInput, 'nonce' | 'issuer' | 'now' | 'skewMs'>): VerifiedOcspResponse {
  let parsed: ParsedOcspResponse;
  try {
    parsed = parseOcspResponseOrThrow(der);
  } catch (e) {
    throw new OcspRejected('ocsp_malformed', e instanceof DerError ? `the response is not valid DER: ${e.message}` : 'the response could not be parsed');
  }
  if (parsed.responseStatus !== 0 || !parsed.basic) throw new OcspRejected('ocsp_unavailable', `the responder answered responseStatus ${parsed.responseStatus}`);
  const basic = parsed.basic;
  authorizeSigner(basic, input.issuer, input.now, input.skewMs);
  if (basic.nonce && !bytesEqual(basic.nonce, input.nonce)) throw new OcspRejected('ocsp_nonce_mismatch', 'the response nonce is not the one sent');
  return basic;
}

/** A BasicOCSPResponse whose signer and nonce verifyOcspResponse accepted. */
export type VerifiedOcspResponse = NonNullable<ParsedOcspResponse['basic']>;

/**
 * The answer a verified response gives for one CertID, if it names exactly that CertID (RFC 6960
 * 4.1.1, 4.2.2.3) and is fresh at `now` (4.2.2.1). Throws OcspRejected.
 */
export function answerFor(basic: VerifiedOcspResponse, input: Pick<OcspCheckInput, 'asked' | 'now' | 'skewMs' | 'maxAgeMs'>): SingleResponse {
  let nearest: string | undefined;
  const single = basic.responses.find((r) => {
    const diff = sameCertId(r.certId, input.asked);
    if (diff && (!nearest || diff !== 'serialNumber')) nearest = diff;
    return diff === undefined;
  });
  if (!single) throw new OcspRejected('ocsp_certid_mismatch', `no answer for the CertID asked about (${nearest ? `${nearest} differs` : 'no responses'})`);
  const now = input.now.getTime();
  // RFC 6960 4.2.2.1: thisUpdate after the local time is not valid; nextUpdate before it is stale.
  if (single.thisUpdate.getTime() > now + input.skewMs) throw new OcspRejected('ocsp_not_yet_valid', `thisUpdate ${single.thisUpdate.toISOString()} is in the future`);
  if (basic.producedAt.getTime() > now + input.skewMs) throw new OcspRejected('ocsp_not_yet_valid', `producedAt ${basic.producedAt.toISOString()} is in the future`);
  if (single.nextUpdate) {
    if (single.nextUpdate.getTime() + input.skewMs < now) throw new OcspRejected('ocsp_stale', `nextUpdate ${single.nextUpdate.toISOString()} has passed`);
  } else if (single.thisUpdate.getTime() + input.maxAgeMs < now) {
    throw new OcspRejected('ocsp_stale', `no nextUpdate and thisUpdate ${single.thisUpdate.toISOString()} is older than ${Math.round(input.maxAgeMs / 1000)} s`);
  }
  if (single.status.kind === 'unknown') throw new OcspRejected('ocsp_cert_unknown', 'the responder does not know the certificate');
  return single;
}

/** Reads a response body, giving up (and cancelling the stream) past `limit` bytes, chunked or not. */
async function readBounded(res: Response, limit: number): Promise<Uint8Array | 'too-large'> {
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      return 'too-large';
    }
    chunks.push(value);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** What one POST to the responder gave: an HTTP status and the body, or why there is none. */
type Posted = { status: number; body: Uint8Array } | { failed: 'too-large' } | { failed: 'unreachable'; why: string };
type PostOcsp = (body: Uint8Array) => Promise<Posted>;

/** POSTs with a fetch implementation (tests give their own). */
function postWithFetch(url: string, doFetch: typeof fetch, timeoutMs: number, maxBytes: number): PostOcsp {
  return async (body) => {
    try {
      const res = await doFetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!res.ok) return { status: res.status, body: new Uint8Array(0) };
      const declared = Number(res.headers.get('content-length') ?? '0');
      if (declared > maxBytes) return { failed: 'too-large' };
      const read = await readBounded(res, maxBytes);
      return read === 'too-large' ? { failed: 'too-large' } : { status: res.status, body: read };
    } catch (e) {
      return { failed: 'unreachable', why: (e as Error).message };
    }
  };
}

/**
 * POSTs over node:http(s) on keep-alive connections: several times cheaper per request than fetch,
 * which matters when every registration asks the responder. The whole exchange is bounded by the
 * timeout, the body by maxBytes (declared or streamed).
 */
function postWithNodeHttp(url: string, timeoutMs: number, maxBytes: number): PostOcsp {
  const u = new URL(url);
  const https = u.protocol === 'https:';
  const agent = https ? new HttpsAgent({ keepAlive: true, maxSockets: 64 }) : new HttpAgent({ keepAlive: true, maxSockets: 64 });
  const send = https ? httpsRequest : httpRequest;
  return (body) =>
    new Promise<Posted>((resolve) => {
      let settled = false;
      const done = (p: Posted) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(p);
      };
      const req = send(u, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response', 'content-length': String(body.length) },
      });
      const timer = setTimeout(() => {
        req.destroy();
        done({ failed: 'unreachable', why: `no answer within ${timeoutMs} ms` });
      }, timeoutMs);
      req.on('error', (e) => done({ failed: 'unreachable', why: e.message }));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) {
          res.resume();
          return done({ status, body: new Uint8Array(0) });
        }
        if (Number(res.headers['content-length'] ?? '0') > maxBytes) {
          req.destroy();
          return done({ failed: 'too-large' });
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            req.destroy();
            done({ failed: 'too-large' });
          } else chunks.push(c);
        });
        res.on('end', () => {
          const b = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
          done({ status, body: new Uint8Array(b.buffer, b.byteOffset, b.byteLength) });
        });
        res.on('error', (e) => done({ failed: 'unreachable', why: e.message }));
      });
      req.end(body);
    });
}

/** A verified answer kept for reuse, and until when (epoch ms) it may be. */
interface CachedAnswer {
  status: { kind: 'good' } | { kind: 'revoked'; revokedAt: Date; reason?: CrlReason };
  /** Not before this (the answer's thisUpdate less the skew): a clock set back does not reuse it. */
  from: number;
  until: number;
}

/**
 * Verified answers by (issuer key hash, serial). Entries leave when they expire (at lookup) or,
 * when full, oldest first; a Map keeps insertion order, so that costs nothing extra.
 */
export class OcspAnswerCache {
  private readonly m = new Map<string, CachedAnswer>();
  constructor(private readonly maxEntries: number) {}
  static key(id: CertId): string {
    return `${Buffer.from(id.issuerKeyHash).toString('hex')}:${Buffer.from(id.serial).toString('hex')}`;
  }
  get(key: string, now: number): CachedAnswer['status'] | undefined {
    const e = this.m.get(key);
    if (!e) return undefined;
    if (now >= e.until || now < e.from) {
      this.m.delete(key);
      return undefined;
    }
    return e.status;
  }
  set(key: string, value: CachedAnswer): void {
    if (this.maxEntries <= 0) return;
    this.m.delete(key);
    if (this.m.size >= this.maxEntries) this.m.delete(this.m.keys().next().value as string);
    this.m.set(key, value);
  }
  get size(): number {
    return this.m.size;
  }
}

/** Builds the OCSP query used by the revocation checker. Failures are `unknown` verdicts, never throws. */
export function createOcspQuery(opts: OcspClientOptions) {
  const skewMs = opts.clockSkewMs ?? 5 * 60_000;
  const maxAgeMs = opts.maxAgeMs ?? 3600_000;
  const maxBytes = opts.maxResponseBytes ?? 64 * 1024;
  const timeoutMs = opts.timeoutMs ?? 3000;
  const cacheMs = opts.cacheMs ?? 0;
  const cache = new OcspAnswerCache(cacheMs > 0 ? (opts.cacheEntries ?? 100_000) : 0);
  const post = opts.fetchImpl ? postWithFetch(opts.url, opts.fetchImpl, timeoutMs, maxBytes) : postWithNodeHttp(opts.url, timeoutMs, maxBytes);
  const log = opts.log ?? silentLogger;
  const refused = (code: OcspRejectCode, detail: string): RevocationVerdict => {
    // No serial here (no usage history): the code and why are enough to see an attack or a broken responder.
    log.warn('OCSP answer not used', { code, why: detail });
    return { status: 'unknown', source: 'ocsp', detail: `OCSP ${code}: ${detail}`, ocspCode: code };
  };
  const verdictOf = (st: CachedAnswer['status']): RevocationVerdict =>
    st.kind === 'good' ? { status: 'good', source: 'ocsp' } : { status: 'revoked', source: 'ocsp', revokedAt: st.revokedAt, reason: st.reason ?? 'unspecified' };
  let batchMax = Math.max(1, opts.batchMax ?? 32);
  const maxInFlight = Math.max(1, opts.maxInFlight ?? 4);

  interface Waiter {
    asked: CertId;
    key: string;
    now: Date;
    resolve: (v: RevocationVerdict) => void;
  }
  type Anchor = CheckedCertificate['anchor'];
  // Per CA: the checks waiting for a request, how many requests are in flight, and whether a pump is
  // scheduled; and the one check in flight per certificate, which a second check of it joins.
  const queues = new Map<Anchor, { waiting: Waiter[]; inFlight: number; scheduled: boolean }>();
  const inFlight = new Map<string, Promise<RevocationVerdict>>();

  const queueOf = (issuer: Anchor) => {
    let q = queues.get(issuer);
    if (!q) {
      q = { waiting: [], inFlight: 0, scheduled: false };
      queues.set(issuer, q);
    }
    return q;
  };
  // Everything that asks in one turn of the event loop goes in one request (up to batchMax), while
  // fewer than maxInFlight requests are out.
  const schedule = (issuer: Anchor) => {
    const q = queueOf(issuer);
    if (q.scheduled) return;
    q.scheduled = true;
    setImmediate(() => pump(issuer));
  };
  const pump = (issuer: Anchor) => {
    const q = queueOf(issuer);
    q.scheduled = false;
    while (q.inFlight < maxInFlight && q.waiting.length > 0) {
      const batch = q.waiting.splice(0, batchMax);
      q.inFlight++;
      void send(issuer, batch)
        .catch(() => batch.forEach((w) => w.resolve(refused('ocsp_malformed', 'the response could not be evaluated'))))
        .finally(() => {
          q.inFlight--;
          if (q.waiting.length > 0) schedule(issuer);
          else if (q.inFlight === 0) queues.delete(issuer);
        });
    }
  };
  // RFC 5019 2.1.1 (the lightweight profile large responders follow) allows one Request per
  // OCSPRequest. A responder that refuses or half-answers a request for several certificates is
  // asked one certificate at a time from then on, and the checks in that batch are asked again.
  const askSingly = (issuer: Anchor, waiters: Waiter[]) => {
    if (batchMax > 1) log.warn('OCSP responder does not answer requests for several certificates; asking one at a time');
    batchMax = 1;
    queueOf(issuer).waiting.unshift(...waiters);
    schedule(issuer);
  };

  const send = async (issuer: Anchor, asked: Waiter[]): Promise<void> => {
    let batch = asked;
    const all = (v: RevocationVerdict) => batch.forEach((w) => w.resolve(v));
    const nonce = new Uint8Array(randomBytes(16));
    let request: Uint8Array;
    try {
      request = encodeOcspRequest(batch.map((w) => w.asked), nonce);
    } catch {
      return all(refused('ocsp_malformed', 'the request cannot be written'));
    }
    const posted = await post(request);
    if ('failed' in posted) {
      return all(posted.failed === 'too-large' ? refused('ocsp_malformed', 'the response is too large') : refused('ocsp_unavailable', `the responder is unreachable: ${posted.why}`));
    }
    const several = batch.length > 1;
    if (posted.status < 200 || posted.status > 299) {
      if (several && posted.status >= 400 && posted.status < 500) return askSingly(issuer, batch);
      return all(refused('ocsp_unavailable', `the responder answered HTTP ${posted.status}`));
    }
    let basic: VerifiedOcspResponse;
    try {
      // The signer is judged at the time of the first check in the batch; they are microseconds apart.
      basic = verifyOcspResponse(posted.body, { nonce, issuer, now: batch[0].now, skewMs });
    } catch (e) {
      // responseStatus malformedRequest or unauthorized to several CertIDs: try them one by one.
      if (several && e instanceof OcspRejected && e.code === 'ocsp_unavailable') return askSingly(issuer, batch);
      return all(e instanceof OcspRejected ? refused(e.code, e.message) : refused('ocsp_malformed', 'the response could not be evaluated'));
    }
    // A signed answer naming fewer certificates than asked: the ones it leaves out are asked alone.
    if (several && basic.responses.length < batch.length) {
      const missing = batch.filter((w) => !basic.responses.some((r) => sameCertId(r.certId, w.asked) === undefined));
      if (missing.length) {
        askSingly(issuer, missing);
        batch = batch.filter((w) => !missing.includes(w));
      }
    }
    for (const w of batch) {
      try {
        const single = answerFor(basic, { asked: w.asked, now: w.now, skewMs, maxAgeMs });
        const st = single.status;
        if (st.kind === 'unknown') {
          w.resolve(refused('ocsp_cert_unknown', 'the responder does not know the certificate'));
          continue;
        }
        // Reused while fresh: never past nextUpdate, nor past thisUpdate + maxAge without one, nor
        // longer than the cache lifetime from now.
        const t = w.now.getTime();
        const fresh = single.nextUpdate ? single.nextUpdate.getTime() : single.thisUpdate.getTime() + maxAgeMs;
        const until = Math.min(fresh, t + cacheMs);
        if (cacheMs > 0 && until > t) cache.set(w.key, { status: st, from: single.thisUpdate.getTime() - skewMs, until });
        w.resolve(verdictOf(st));
      } catch (e) {
        w.resolve(e instanceof OcspRejected ? refused(e.code, e.message) : refused('ocsp_malformed', 'the response could not be evaluated'));
      }
    }
  };

  const query = async (checked: CheckedCertificate, now: Date): Promise<RevocationVerdict> => {
    let asked: CertId;
    try {
      asked = certIdFor(checked.cert, checked.anchor.cert);
    } catch {
      return refused('ocsp_malformed', 'the CA public key cannot be hashed for a CertID');
    }
    const key = OcspAnswerCache.key(asked);
    const hit = cache.get(key, now.getTime());
    if (hit) return verdictOf(hit);
    const joined = inFlight.get(key);
    if (joined) return joined;
    const issuer = checked.anchor;
    const p = new Promise<RevocationVerdict>((resolve) => {
      queueOf(issuer).waiting.push({ asked, key, now, resolve });
      schedule(issuer);
    });
    inFlight.set(key, p);
    void p.then(() => inFlight.delete(key));
    return p;
  };
  return Object.assign(query, { cache });
}
