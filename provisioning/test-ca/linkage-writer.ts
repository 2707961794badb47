// Certificate renewal in the test CA, and the signed linkage file (新旧シリアル番号紐付け) the JPKI side
// hands platform operators for it (format: shared/linkage.ts; the hub reads it in hub/linkage).
//
//   const next = await renewCertificate(caDir, old);                 // same holder key; old revoked as superseded
//   const signer = generateLinkageSigner();                          // Ed25519 (or 'p256')
//   const file = writeLinkageFile({ issuer: caDir.ca, records: [{ old, next }], signer: signer.privateKey });
//   // file.bytes: the JSON Lines file; file.signature: the detached signature (base64 text)
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { serializeLinkageFile, type LinkageRecord } from '../../shared/linkage.ts';
import type { CryptoKeyPair, IssueOptions, IssuedCert, TestCa } from './ca.ts';
import type { CaDir } from './store.ts';

/**
 * Renews a user-authentication certificate: a new certificate for the same holder key (or a new key
 * with `newKey`, as a replaced card has), and the old one revoked as superseded (RFC 5280 5.3.1,
 * reason 4), as JPKI does at each five-yearly renewal. The CRL that lists it is the caller's next
 * `publishCrl`.
 */
export async function renewCertificate(caDir: CaDir, old: { serialHex: string; keyPair?: CryptoKeyPair }, opts: { newKey?: boolean; revokedAt?: Date } & IssueOptions = {}): Promise<IssuedCert> {
  const { newKey, revokedAt, ...issue } = opts;
  if (!newKey && !old.keyPair) throw new TypeError('renewing for the same key needs the old key pair');
  const next = await caDir.issue(newKey ? issue : { keyPair: old.keyPair, ...issue });
  await caDir.revoke(old.serialHex, 'superseded', revokedAt);
  return next;
}

/** A key pair that signs linkage files: Ed25519 (RFC 8032) or ECDSA P-256. The public key as PEM SPKI, for jpki.linkageSigners. */
export function generateLinkageSigner(kind: 'ed25519' | 'p256' = 'ed25519'): { privateKey: KeyObject; publicKeyPem: string } {
  const { privateKey, publicKey } = kind === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** The detached signature of a linkage file's exact bytes, as the base64 text the hub reads. */
export function signLinkageBytes(bytes: Uint8Array, privateKey: KeyObject): string {
  // Ed25519 signs the message itself; ECDSA P-256 signs SHA-256 of it (DER ECDSA-Sig-Value).
  return sign(privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256', bytes, privateKey).toString('base64');
}

/** One linkage: the renewed certificate (or its serial) and the certificate it was renewed into. */
export interface Linkage {
  old: IssuedCert | { serialHex: string };
  next: { serialHex: string; certDer: Uint8Array };
}

/**
 * Writes a signed linkage file: the header names the CA key that issued the old certificates (its
 * subjectKeyIdentifier), each record the old serial, the new serial and the new certificate.
 */
export function writeLinkageFile(opts: { issuer: TestCa; records: readonly Linkage[]; signer: KeyObject; created?: Date }): { bytes: Uint8Array; signature: string; records: LinkageRecord[] } {
  const records: LinkageRecord[] = opts.records.map((r) => ({ old: r.old.serialHex, new: r.next.serialHex, cert: Buffer.from(r.next.certDer).toString('base64') }));
  const bytes = serializeLinkageFile({ issuer: Buffer.from(opts.issuer.subjectKeyId).toString('hex'), created: (opts.created ?? new Date()).toISOString() }, records);
  return { bytes, signature: signLinkageBytes(bytes, opts.signer), records };
}
