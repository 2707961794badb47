// CRL signature check (RFC 5280 5.1.1.3): the signature is over the DER of tbsCertList. node:crypto
// does the hashing and the public-key math, in OpenSSL, over the subarray view (no copy).
import { verify, type KeyObject } from 'node:crypto';
import type { ParsedCrl } from './parse.ts';

/** Signature algorithms a CRL may use here: OID -> digest and the key type it needs. */
export const CRL_SIGNATURE_ALGORITHMS: Readonly<Record<string, { hash: string | null; keyType: string }>> = {
  '1.2.840.113549.1.1.11': { hash: 'sha256', keyType: 'rsa' }, // sha256WithRSAEncryption (RFC 4055)
  '1.2.840.113549.1.1.12': { hash: 'sha384', keyType: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', keyType: 'rsa' },
  '1.2.840.10045.4.3.2': { hash: 'sha256', keyType: 'ec' }, // ecdsa-with-SHA256 (RFC 5758)
  '1.2.840.10045.4.3.3': { hash: 'sha384', keyType: 'ec' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', keyType: 'ec' },
  '1.3.101.112': { hash: null, keyType: 'ed25519' }, // Ed25519 (RFC 8410)
};

/**
 * True when the CRL's signature verifies with the issuer's public key. False for a wrong key, an
 * algorithm outside CRL_SIGNATURE_ALGORITHMS (SHA-1 and RSASSA-PSS are not accepted), a key of the
 * wrong type, or a signature of the wrong form. Never throws.
 */
export function verifyCrlSignature(crl: ParsedCrl, issuerPublicKey: KeyObject): boolean {
  const alg = CRL_SIGNATURE_ALGORITHMS[crl.signatureAlgorithmOid];
  if (alg === undefined) return false;
  try {
    if (issuerPublicKey.type !== 'public' || issuerPublicKey.asymmetricKeyType !== alg.keyType) return false;
    // ECDSA signatures in X.509 are DER SEQUENCE { r, s } (RFC 5758 3.2), node's default dsaEncoding.
    return verify(alg.hash, crl.tbs, issuerPublicKey, crl.signature);
  } catch {
    return false;
  }
}

/**
 * verifyCrlSignature on the libuv thread pool (node:crypto's verify with a callback): hashing a
 * national CRL's tbsCertList is tens of milliseconds, which the event loop does not wait out. Same
 * answers; never rejects.
 */
export function verifyCrlSignatureAsync(crl: ParsedCrl, issuerPublicKey: KeyObject): Promise<boolean> {
  const alg = CRL_SIGNATURE_ALGORITHMS[crl.signatureAlgorithmOid];
  if (alg === undefined) return Promise.resolve(false);
  if (issuerPublicKey.type !== 'public' || issuerPublicKey.asymmetricKeyType !== alg.keyType) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      verify(alg.hash, crl.tbs, issuerPublicKey, crl.signature, (err, ok) => resolve(err === null && ok === true));
    } catch {
      resolve(false);
    }
  });
}
