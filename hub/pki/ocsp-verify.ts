// Whether an OCSP answer may be believed (RFC 6960 4.2.2): signed by the CA or a responder it
// delegated directly, naming that signer, echoing our nonce, answering for the very CertID asked
// about, and fresh. Pure over data and `now`; a refusal is an OcspRejected with a stable code.
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import type { ErrorCode } from '../../shared/errors.ts';
import { DerError, bytesEqual } from '../../shared/asn1/der.ts';
import { digestForSignatureOid, parseCertificate, type ParsedCertificate } from './certificate.ts';
import { OCSP_OID, certIdKey, keyHashOf, parseOcspResponseOrThrow, type CertId, type ParsedOcspResponse, type SingleResponse } from './ocsp-message.ts';
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
    if (!issuedByCa) refusal = "the responder certificate was not issued by the certificate's CA";
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
  if (verifySignature(basic.signatureAlgorithmOid, basic.tbs, issuer.publicKey, basic.signature)) return void checkResponderId(basic, issuer.cert);
  let why: string | undefined;
  for (const der of basic.certs) {
    const r = responderCert(der, issuer);
    if (!r || !r.key || !verifySignature(basic.signatureAlgorithmOid, basic.tbs, r.key, basic.signature)) continue;
    // This certificate's key made the signature: is it a responder the CA delegated, valid now?
    const c = r.cert;
    if (r.refusal) why = r.refusal;
    else if (c.notBefore.getTime() > now.getTime() + skewMs) why = 'the responder certificate is not yet valid';
    else if (c.notAfter.getTime() < now.getTime()) why = 'the responder certificate has expired';
    else return void checkResponderId(basic, c);
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

export function sameCertId(a: CertId, b: CertId): string | undefined {
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
 * The SingleResponses of a response by CertID (certIdKey), made once per response: a batched
 * answer names up to batchMax certificates, and each check finds its own without a scan. A CertID
 * answered twice keeps its first answer, as a scan in order would.
 */
const answerIndexes = new WeakMap<VerifiedOcspResponse, Map<string, SingleResponse>>();
export function answersOf(basic: VerifiedOcspResponse): Map<string, SingleResponse> {
  let m = answerIndexes.get(basic);
  if (!m) {
    m = new Map();
    for (const r of basic.responses) {
      const k = certIdKey(r.certId);
      if (!m.has(k)) m.set(k, r);
    }
    answerIndexes.set(basic, m);
  }
  return m;
}

/**
 * The answer a verified response gives for one CertID, if it names exactly that CertID (RFC 6960
 * 4.1.1, 4.2.2.3) and is fresh at `now` (4.2.2.1). Throws OcspRejected.
 */
export function answerFor(basic: VerifiedOcspResponse, input: Pick<OcspCheckInput, 'asked' | 'now' | 'skewMs' | 'maxAgeMs'>, askedKey?: string): SingleResponse {
  const single = answersOf(basic).get(askedKey ?? certIdKey(input.asked));
  if (!single) {
    // Only to say which field differs (the refusal is the same whichever it is).
    let nearest: string | undefined;
    for (const r of basic.responses) {
      const diff = sameCertId(r.certId, input.asked);
      if (diff && (!nearest || diff !== 'serialNumber')) nearest = diff;
    }
    throw new OcspRejected('ocsp_certid_mismatch', `no answer for the CertID asked about (${nearest ? `${nearest} differs` : 'no responses'})`);
  }
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
