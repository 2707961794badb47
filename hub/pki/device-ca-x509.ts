// Building blocks of the device CA's certificates, with PKI.js over WebCrypto: the names, extensions
// and times of RFC 5280, key generation and PKCS#8 export, the CA certificate (self-signed, or the
// cross certificate of a rotation) and an edge-style CSR. The profiles themselves are decided in
// device-ca.ts; the files on disk and their rotation in device-ca-rotation.ts.
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { createHash, randomBytes, type webcrypto } from 'node:crypto';
import { toPem } from '../../shared/asn1/pem.ts';

export type CryptoKey = webcrypto.CryptoKey;
export const subtle: webcrypto.SubtleCrypto = globalThis.crypto.subtle;

/** ECDSA P-256 (FIPS 186-4, RFC 5480). */
export const EC_P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

export const OID = {
  organizationName: '2.5.4.10',
  organizationalUnitName: '2.5.4.11',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  rsaEncryption: '1.2.840.113549.1.1.1',
} as const;

export const DAY_MS = 24 * 3600_000;
export const SKEW_MS = 5 * 60_000;

/** SHA-256 of DER bytes, lowercase hex: the fingerprint the device repo files certificates under. */
export function certFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

export function ab(u: Uint8Array): ArrayBuffer {
  return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
}

/** A positive 128-bit serial (RFC 5280 4.1.2.2: unique, at most 20 octets); first byte below 0x80. */
export function randomSerialBytes(): Uint8Array {
  const b = randomBytes(16);
  b[0] = 0x01 + (b[0] % 0x7f);
  return new Uint8Array(b);
}

/** Certificate times have whole seconds; RFC 5280 4.1.2.5: UTCTime through 2049, then GeneralizedTime. */
export function certTime(d: Date): pkijs.Time {
  const value = new Date(Math.floor(d.getTime() / 1000) * 1000);
  return new pkijs.Time({ type: value.getUTCFullYear() < 2050 ? 0 : 1, value });
}

/** A Name with one attribute per RDN, in order; UTF8String values (RFC 5280 4.1.2.4). */
export function buildName(rdns: ReadonlyArray<readonly [string, string]>): pkijs.RelativeDistinguishedNames {
  const seq = new asn1js.Sequence({
    value: rdns.map(([type, v]) => new asn1js.Set({ value: [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: type }), new asn1js.Utf8String({ value: v })] })] })),
  });
  return pkijs.RelativeDistinguishedNames.fromBER(seq.toBER(false));
}

export function ext(extnID: string, critical: boolean, value: asn1js.AsnType): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) });
}

/** RFC 5280 4.2.1.3 KeyUsage as a DER named bit list (trailing zero bits dropped, X.690 11.2.2). */
export function keyUsage(bits: number[]): asn1js.BitString {
  let byte = 0;
  for (const b of bits) byte |= 0x80 >> b;
  const highest = Math.max(...bits);
  return new asn1js.BitString({ valueHex: Uint8Array.from([byte]).buffer, unusedBits: 7 - highest });
}
export const KU_DIGITAL_SIGNATURE = 0;
const KU_KEY_CERT_SIGN = 5;
const KU_CRL_SIGN = 6;

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value. */
export function keyIdOf(spki: pkijs.PublicKeyInfo): Uint8Array {
  return new Uint8Array(createHash('sha1').update(spki.subjectPublicKey.valueBlock.valueHexView).digest());
}

export function serialHexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes)
    .toString('hex')
    .replace(/^(00)+(?=.)/, '');
}

export async function generateKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return subtle.generateKey(EC_P256, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
}

export async function pkcs8Pem(key: CryptoKey): Promise<string> {
  return toPem(new Uint8Array(await subtle.exportKey('pkcs8', key)), 'PRIVATE KEY');
}

/** Checks that a CSR's key is ECDSA P-256 or RSA of at least 2048 bits. */
export function keyAcceptable(spki: pkijs.PublicKeyInfo): boolean {
  const alg = spki.algorithm.algorithmId;
  const parsed = spki.parsedKey;
  if (alg === OID.ecPublicKey) return parsed instanceof pkijs.ECPublicKey && (parsed.namedCurve === 'P-256' || parsed.namedCurve === OID.prime256v1);
  if (alg === OID.rsaEncryption && parsed instanceof pkijs.RSAPublicKey) {
    const n = parsed.modulus.valueBlock.valueHexView;
    const bytes = n[0] === 0 ? n.length - 1 : n.length;
    return bytes * 8 >= 2048;
  }
  return false;
}

/**
 * A CA certificate for `publicKey` under `name`, signed by `signer` (its own key: self-signed; the
 * retiring CA's key: the cross certificate of a rotation).
 */
export async function caCertificate(
  name: pkijs.RelativeDistinguishedNames,
  publicKey: CryptoKey,
  signer: { privateKey: CryptoKey; keyId?: Uint8Array },
  notBefore: Date,
  notAfter: Date,
): Promise<Uint8Array> {
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ valueHex: ab(randomSerialBytes()) });
  cert.issuer = name;
  cert.subject = name;
  cert.notBefore = certTime(notBefore);
  cert.notAfter = certTime(notAfter);
  await cert.subjectPublicKeyInfo.importKey(publicKey);
  cert.extensions = [
    // RFC 5280 4.2.1.9: CA:TRUE, pathLen 0 (it issues end entities only); 4.2.1.3 keyCertSign, cRLSign.
    ext(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: true, pathLenConstraint: 0 }).toSchema()),
    ext(OID.keyUsage, true, keyUsage([KU_KEY_CERT_SIGN, KU_CRL_SIGN])),
    ext(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: ab(keyIdOf(cert.subjectPublicKeyInfo)) })),
    // RFC 5280 4.2.1.1: the cross certificate names its signer's key; chain building needs it, as
    // the old and the new CA carry the same name.
    ...(signer.keyId ? [ext(OID.authorityKeyIdentifier, false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: ab(signer.keyId) }) }).toSchema())] : []),
  ];
  await cert.sign(signer.privateKey, 'SHA-256');
  return new Uint8Array(cert.toSchema(true).toBER(false));
}

/** The 16 bytes of an IPv6 address in text form (RFC 4291 2.2, with `::`). */
export function ipv6Bytes(text: string): Uint8Array {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/**
 * Makes a key pair and a PKCS#10 CSR the way an edge's enrollment does (ECDSA P-256 by default).
 * For provisioning scripts and tests; the hub itself never needs an edge's private key.
 */
export async function createDeviceCsr(edgeId: string, opts: { keyPair?: webcrypto.CryptoKeyPair } = {}): Promise<{ csrDer: Uint8Array; keyPair: webcrypto.CryptoKeyPair; keyPem: string }> {
  const keyPair = opts.keyPair ?? (await generateKeyPair());
  const csr = new pkijs.CertificationRequest();
  csr.subject = buildName([[OID.commonName, edgeId]]);
  await csr.subjectPublicKeyInfo.importKey(keyPair.publicKey);
  await csr.sign(keyPair.privateKey, 'SHA-256');
  return { csrDer: new Uint8Array(csr.toSchema(true).toBER(false)), keyPair, keyPem: await pkcs8Pem(keyPair.privateKey) };
}
