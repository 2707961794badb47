// The device key and its certificate signing request, for every program that makes one: the
// enrollment tool (provisioning/enroll) and the edge agent renewing its own certificate (edge/renew).
// ECDSA P-256 (FIPS 186-4, RFC 5480), PKCS#10 (RFC 2986) signed with SHA-256, subject CN = the edge
// id. The hub's device CA decides the certificate's subject and extensions; the CSR only proves
// possession of the key. node:crypto and the platform's DER writer only (no PKI.js on a reader).
import { createPrivateKey, createPublicKey, KeyObject, sign, webcrypto, X509Certificate } from 'node:crypto';
import { derBitString, derOid, derSequence, derSetOfOne, derSmallInt, derUtf8, tlv } from './asn1/write.ts';
import { toPem } from './asn1/pem.ts';
import { isEdgeId } from './ids.ts';
import { MyKeyError } from './errors.ts';

const EC_P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const OID_COMMON_NAME = '2.5.4.3';
const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

/** PEM armour (RFC 7468): the platform's one encoder (shared/asn1/pem.ts). */
export { toPem };

/** A new device key pair; the private key as PKCS#8 PEM ("PRIVATE KEY"). */
export async function generateDeviceKey(): Promise<{ keyPair: webcrypto.CryptoKeyPair; keyPem: string }> {
  const keyPair = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keyPair.privateKey));
  return { keyPair, keyPem: toPem(pkcs8, 'PRIVATE KEY') };
}

/** Imports a PKCS#8 PEM ECDSA P-256 private key and derives its public key. */
export async function importDeviceKey(keyPem: string): Promise<webcrypto.CryptoKeyPair> {
  let priv: ReturnType<typeof createPrivateKey>;
  try {
    priv = createPrivateKey(keyPem);
  } catch (e) {
    throw new MyKeyError('validation_failed', 'the device key file is not a readable PEM private key', { cause: e });
  }
  if (priv.asymmetricKeyType !== 'ec' || priv.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new MyKeyError('validation_failed', 'the device key is not an ECDSA P-256 key');
  }
  const pkcs8 = priv.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(priv).export({ type: 'spki', format: 'der' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, EC_P256, true, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', spki, EC_P256, true, ['verify']);
  return { privateKey, publicKey };
}

/** A PKCS#10 CSR for `edgeId`, signed by the key pair, as PEM ("CERTIFICATE REQUEST"). */
export async function createCsr(edgeId: string, keyPair: webcrypto.CryptoKeyPair): Promise<string> {
  if (!isEdgeId(edgeId)) throw new MyKeyError('validation_failed', 'an edge id is 2-64 lower-case letters, digits and hyphens');
  const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keyPair.publicKey));
  // RFC 2986 4.1: CertificationRequestInfo ::= SEQUENCE { version INTEGER { v1(0) }, subject Name,
  //   subjectPKInfo SubjectPublicKeyInfo, attributes [0] IMPLICIT SET OF Attribute }
  // The subject is one RDN, the CN as UTF8String (RFC 5280 4.1.2.6); no attributes.
  const subject = derSequence(derSetOfOne(derSequence(derOid(OID_COMMON_NAME), derUtf8(edgeId))));
  const info = derSequence(derSmallInt(0), subject, spki, tlv(0xa0));
  // RFC 5758 3.2: ecdsa-with-SHA256, parameters absent; the signature is the DER ECDSA-Sig-Value.
  const signature = sign('sha256', info, KeyObject.from(keyPair.privateKey));
  const csr = derSequence(info, derSequence(derOid(OID_ECDSA_WITH_SHA256)), derBitString(new Uint8Array(signature)));
  return toPem(csr, 'CERTIFICATE REQUEST');
}

/** True when the certificate (PEM) carries the public key of the private key (PEM). */
export function certMatchesKey(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** True when `certPem` was signed by the CA certificate `caPem`. */
export function issuedBy(certPem: string, caPem: string): boolean {
  try {
    const c = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    return c.checkIssued(ca) && c.verify(ca.publicKey);
  } catch {
    return false;
  }
}
