// The JPKI user-authentication certificate policy: what makes a certificate acceptable as proof of
// a holder, and the check of the card's signature over a hub challenge. Pure over data and `now`;
// revocation is asked of a checker passed in.
import { createHash, verify as cryptoVerify } from 'node:crypto';
import { fail, ok, type Result } from '../../shared/errors.ts';
import { JPKI_AUTH_POLICY_OID } from '../../shared/card.ts';
import { OID, digestForSignatureOid, parseCertificate, type ParsedCertificate } from './certificate.ts';
import { bytesEqual } from '../../shared/asn1/der.ts';
import { namesMatch } from './crl/name.ts';
import type { TrustAnchor } from './trust-anchors.ts';

/** A certificate that passed the profile and chain checks. */
export interface CheckedCertificate {
  cert: ParsedCertificate;
  anchor: TrustAnchor;
  /** sha256 of the certificate DER, hex. */
  fingerprint: string;
}

export type CertCheckCode =
  | 'cert_malformed'
  | 'cert_unknown_issuer'
  | 'cert_chain_broken'
  | 'cert_expired'
  | 'cert_not_yet_valid'
  | 'cert_key_usage'
  | 'cert_policy'
  | 'cert_key_type'
  | 'cert_critical_extension';

export interface CertCheckOptions {
  now: Date;
  /** Accept an expired certificate (carry-over: the old card proves possession after its certificate ended). */
  allowExpired?: boolean;
  /** Certificate policy OID that must be present (JPKI user authentication by default). */
  policyOid?: string;
  /** Smallest accepted RSA modulus. */
  minRsaBits?: number;
}

/**
 * Checks a user-authentication certificate against the trust anchors (RFC 5280 6.1, one level: JPKI
 * issues end-entity certificates directly from the self-signed CA) and the JPKI profile.
 */
export function checkUserCertificate(der: Uint8Array, anchors: readonly TrustAnchor[], opts: CertCheckOptions): Result<CheckedCertificate, CertCheckCode> {
  const parsed = parseCertificate(der);
  if (!parsed.ok) return parsed;
  const cert = parsed.value;

  // Candidates: anchors whose subject is the certificate's issuer. With key rollover several share
  // a DN; the authority key identifier, when both sides have one, narrows the choice.
  // RFC 5280 7.1 name matching, the hub's one rule (crl/name.ts).
  const named = anchors.filter((a) => namesMatch(a.cert.subjectDer, cert.issuerDer));
  if (named.length === 0) return fail('cert_unknown_issuer', 'the certificate issuer is not a configured JPKI trust anchor');
  const digest = digestForSignatureOid(cert.signatureAlgorithmOid);
  if (!digest || cert.signatureAlgorithmOid === OID.ecdsaWithSHA256) {
    return fail('cert_chain_broken', `signature algorithm ${cert.signatureAlgorithmOid} is not accepted`);
  }
  const ordered = cert.authorityKeyId ? [...named].sort((a, b) => Number(!sameKeyId(b, cert)) - Number(!sameKeyId(a, cert))) : named;
  const anchor = ordered.find((a) => verifyQuietly(() => cryptoVerify(digest, cert.tbs, a.publicKey, cert.signature)));
  if (!anchor) return fail('cert_chain_broken', 'the certificate signature does not verify against any configured anchor with its issuer name');

  // RFC 5280 6.1.3 (a)(2): the certificate validity period includes the current time.
  if (cert.notBefore.getTime() > opts.now.getTime()) return fail('cert_not_yet_valid', `the certificate is valid from ${cert.notBefore.toISOString()}`);
  if (!opts.allowExpired && cert.notAfter.getTime() < opts.now.getTime()) {
    return fail('cert_expired', `the certificate expired at ${cert.notAfter.toISOString()}`);
  }
  // The anchor itself must be within its validity too.
  if (anchor.cert.notAfter.getTime() < opts.now.getTime() && !opts.allowExpired) {
    return fail('cert_expired', 'the issuing CA certificate has expired');
  }
  if (cert.unknownCriticalExtensions.length) {
    return fail('cert_critical_extension', `unknown critical extension ${cert.unknownCriticalExtensions.join(', ')}`);
  }
  if (cert.basicConstraintsCa) return fail('cert_key_usage', 'a CA certificate is not a user-authentication certificate');
  // JPKI profile: key usage critical, digitalSignature only.
  const ku = cert.keyUsage;
  if (!ku || !ku.has('digitalSignature') || ku.size !== 1) {
    return fail('cert_key_usage', `key usage must be digitalSignature only, found ${ku ? [...ku].join(', ') || 'none' : 'no key usage extension'}`);
  }
  const policy = opts.policyOid ?? JPKI_AUTH_POLICY_OID;
  if (!cert.policies.includes(policy)) {
    return fail('cert_policy', `the certificate does not carry policy ${policy} (found ${cert.policies.join(', ') || 'none'})`);
  }
  if (cert.publicKeyAlgorithmOid !== OID.rsaEncryption || !cert.rsaPublicKeyDer) {
    return fail('cert_key_type', 'the certificate key is not RSA');
  }
  if ((cert.rsaModulusBits ?? 0) < (opts.minRsaBits ?? 2048)) {
    return fail('cert_key_type', `the certificate key is RSA-${cert.rsaModulusBits}, at least ${opts.minRsaBits ?? 2048} bits are required`);
  }
  const fingerprint = createHash('sha256').update(der).digest('hex');
  return ok({ cert, anchor, fingerprint });
}

/** A verification that throws (a key or signature OpenSSL cannot read) is a failed verification. */
function verifyQuietly(f: () => boolean): boolean {
  try {
    return f();
  } catch {
    return false;
  }
}

function sameKeyId(a: TrustAnchor, cert: ParsedCertificate): boolean {
  return !!a.cert.subjectKeyId && !!cert.authorityKeyId && bytesEqual(a.cert.subjectKeyId, cert.authorityKeyId);
}

/**
 * Checks the card's signature over a challenge: RSASSA-PKCS1-v1_5 with SHA-256 over the challenge
 * bytes, which is what the card's SIGN produces when given DigestInfo(SHA-256(challenge)).
 */
export function verifyChallengeSignature(cert: ParsedCertificate, challenge: Uint8Array, signature: Uint8Array): Result<void, 'signature_invalid' | 'signature_malformed'> {
  const modulusBytes = Math.ceil((cert.rsaModulusBits ?? 0) / 8);
  if (!cert.rsaPublicKeyDer || signature.length !== modulusBytes) {
    return fail('signature_malformed', `the signature must be ${modulusBytes} bytes, got ${signature.length}`);
  }
  // PKCS#1 DER import is ~25x cheaper in Node than SPKI, which matters at thousands per second.
  // A key that parsed as far as the modulus may still be refused by OpenSSL: that is a bad signature
  // check, not a crash.
  const rsaKey = cert.rsaPublicKeyDer;
  const okSig = verifyQuietly(() => cryptoVerify('sha256', challenge, { key: Buffer.from(rsaKey), format: 'der', type: 'pkcs1' }, signature));
  return okSig ? ok(undefined) : fail('signature_invalid', 'the signature does not verify over this challenge with the certificate key');
}
