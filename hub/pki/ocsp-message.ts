// OCSP messages (RFC 6960 4.1 and 4.2): the request the hub writes (one or more CertIDs and a nonce)
// and the response it reads, decoded with the bounds-checked DER toolkit (shared/asn1) so a malformed
// answer is a DerError at a known offset. Decoding only: whether an answer may be believed is
// ocsp-verify.ts, asking the responder is ocsp-transport.ts and ocsp-client.ts.
import { createHash } from 'node:crypto';
import { crlReasonFromCode, type CrlReason } from '../../shared/revocation.ts';
import type { ParsedCertificate } from './certificate.ts';
import { DerError, TAG, bytesOf, children, expectTlv, readTlv, valueOf, type Tlv } from '../../shared/asn1/der.ts';
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
export function keyHashOf(c: ParsedCertificate): Uint8Array {
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
