// The test CA's RSA keys and the card's way of signing: key generation, PKCS#8 export and import,
// and the RSASSA-PKCS1-v1_5 signatures the virtual card returns. Test material only (extractable keys).
import { createPrivateKey, privateEncrypt, constants as cryptoConstants } from 'node:crypto';
import type { webcrypto } from 'node:crypto';

// The project compiles without the DOM lib, so WebCrypto's types come from node:crypto.
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;

const subtle: webcrypto.SubtleCrypto = globalThis.crypto.subtle;

/** RSASSA-PKCS1-v1_5 with SHA-256: the only algorithm the JPKI card and this CA use. */
export const RSA_SHA256: webcrypto.RsaHashedImportParams = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };

/** A fresh extractable RSA key pair for RSASSA-PKCS1-v1_5 with SHA-256 (e = 65537). */
export async function generateRsaKeyPair(bits: 2048 | 1024 = 2048): Promise<CryptoKeyPair> {
  return subtle.generateKey({ ...RSA_SHA256, modulusLength: bits, publicExponent: Uint8Array.from([1, 0, 1]) } as webcrypto.RsaHashedKeyGenParams, true, ['sign', 'verify']);
}

/**
 * Exactly what the card's SIGN returns for DigestInfo(SHA-256(message)): RSASSA-PKCS1-v1_5 with
 * SHA-256 (RFC 8017 8.2.1), the 256-byte signature for a 2048-bit key.
 */
export async function signLikeCard(privateKey: CryptoKey, message: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle.sign(RSA_SHA256, privateKey, message));
}

/**
 * What the card does with the DigestInfo it is given (CARD.md SIGN): PKCS#1 v1.5 type-1 padding
 * over the bytes as they are, then the RSA private operation. For the virtual card.
 */
export async function signDigestInfo(privateKey: CryptoKey, digestInfo: Uint8Array): Promise<Uint8Array> {
  const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', privateKey));
  const key = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  // RFC 8017 9.2 step 5: EM = 0x00 || 0x01 || PS || 0x00 || T; privateEncrypt with PKCS1 padding is that.
  return new Uint8Array(privateEncrypt({ key, padding: cryptoConstants.RSA_PKCS1_PADDING }, digestInfo));
}

/** PKCS#8 DER of a private key. */
export async function exportPkcs8(privateKey: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await subtle.exportKey('pkcs8', privateKey));
}

/** Imports a PKCS#8 RSA private key and derives its public key, as an extractable RSASSA/SHA-256 pair. */
export async function importKeyPairPkcs8(pkcs8: Uint8Array): Promise<CryptoKeyPair> {
  const privateKey = await subtle.importKey('pkcs8', pkcs8, RSA_SHA256, true, ['sign']);
  const jwk = await subtle.exportKey('jwk', privateKey);
  const publicKey = await subtle.importKey('jwk', { kty: 'RSA', n: jwk.n, e: jwk.e, alg: 'RS256', ext: true }, RSA_SHA256, true, ['verify']);
  return { privateKey, publicKey };
}
