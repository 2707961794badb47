// The hub's own device CA: issues the client certificates edges authenticate with on the broker's
// TLS listener, and the broker's server certificate. Built with PKI.js over WebCrypto.
//
// Key type: ECDSA P-256 with SHA-256 for the CA, the broker and (preferably) the edges. On a
// Raspberry Pi an ECDSA P-256 signature costs well under a millisecond against several milliseconds
// for RSA-2048, the certificates are a third of the size, and every TLS stack an edge or a stock
// broker (Mosquitto, EMQX) uses accepts it. Edges may still send an RSA (2048 bits or more) CSR.
//
// Files, created once in <dataDir>/device-ca/ (directory 0700):
//   ca-key.pem       the CA private key, PKCS#8 PEM, mode 0600
//   ca-cert.pem      the self-signed CA certificate (edges pin it to verify the broker)
//   server-key.pem   the broker's TLS key, PKCS#8 PEM, mode 0600
//   server-cert.pem  the broker's TLS certificate, reissued when its names change or it nears expiry
//   ca-issued.json   the latest notAfter this CA has signed (how long it must stay trusted once retired)
//   retired.json     CAs retired by `rotateDeviceCa`: their certificates (never their keys), the
//                    certificate of the successor's key signed by them (the "cross" certificate), and
//                    until when they stay trusted (the last notAfter they signed)
//   retired/         the retired CA keys, 0600, for the operator to archive offline and delete
//
// Rotation (`rotateDeviceCa`, `tsx hub/cli.ts device-ca rotate`): a new key under the SAME name, so
// the cross certificate (new key, signed by the old key) is self-issued (RFC 5280 3.2, 6.1.4 (l)) and
// does not count against the old root's pathLenConstraint 0; the authority key identifier tells the
// two keys apart when a chain is built. The hub presents server certificate, cross certificates and
// the current CA: an edge that trusts only the old CA reaches it through the cross certificate, one
// that trusts the new CA stops at it (trusted first). Certificates of a retired CA stay accepted
// until they expire; the device config answer asks their edges to renew (POST /v1/device/rotate).
//
// Device certificate profile (RFC 5280):
//   subject      O=MyKey Platform devices, OU=<serviceId>, CN=<edgeId>
//                CN is the edge id (the MQTT client id must equal it); OU names the edge's service.
//                The device repo is the authority on both; the broker checks the certificate agrees.
//   extensions   basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
//                extKeyUsage id-kp-clientAuth, subjectKeyIdentifier, authorityKeyIdentifier.
//   validity     notBefore five minutes back (clock skew of boards without an RTC), notAfter
//                `validityDays` ahead.
// The subject and extensions of the CSR are ignored: the hub decides what a device is.
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { createHash, randomBytes, X509Certificate, type webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { fromPem, toPem } from '../../shared/asn1/pem.ts';
import { fail, MyKeyError, ok, type Result } from '../../shared/errors.ts';
import { isEdgeId, isServiceId } from '../../shared/ids.ts';

type CryptoKey = webcrypto.CryptoKey;
const subtle: webcrypto.SubtleCrypto = globalThis.crypto.subtle;

/** ECDSA P-256 (FIPS 186-4, RFC 5480). */
export const EC_P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

const OID = {
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

/** The organization every device certificate names. */
export const DEVICE_ORGANIZATION = 'MyKey Platform devices';

const DAY_MS = 24 * 3600_000;
const SKEW_MS = 5 * 60_000;

/** A device certificate issued by the hub. */
export interface IssuedDeviceCertificate {
  certDer: Uint8Array;
  certPem: string;
  /** Serial, lowercase hex without a sign byte. */
  serialHex: string;
  /** SHA-256 of the certificate DER, lowercase hex. */
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
}

export interface DeviceCertRequest {
  edgeId: string;
  serviceId: string;
  validityDays: number;
}

/** The broker's TLS key and certificate (PEM). */
export interface ServerCredentials {
  keyPem: string;
  certPem: string;
  notAfter: Date;
  names: string[];
}

export interface DeviceCa {
  /** The CA certificate, DER and PEM: what edges (and Mosquitto's `cafile`) trust. */
  readonly certDer: Uint8Array;
  readonly certPem: string;
  /** Verifies a PKCS#10 CSR (RFC 2986) and issues a client certificate for the edge. */
  issueDeviceCertificate(csrDer: Uint8Array, req: DeviceCertRequest): Promise<Result<IssuedDeviceCertificate, 'csr_invalid' | 'validation_failed' | 'device_ca_retired'>>;
  /**
   * The broker's server certificate for these names (SAN always has 127.0.0.1, ::1 and localhost),
   * kept in the CA directory and reissued when the names change or fewer than 30 days are left.
   */
  serverCredentials(names?: string[], validityDays?: number): Promise<ServerCredentials>;
  /** The CA certificates TLS trusts for client certificates: the current one and the retired ones still in their window. */
  trustedPems(): string[];
  /** What the TLS listeners present after their server certificate: cross certificates, then the current CA. */
  chainPem(): string;
  /** True when the certificate (DER) was signed by the current CA's key: false means renew it. */
  issuedByCurrent(certDer: Uint8Array): boolean;
}

/** A CA retired by a rotation (retired.json). */
export interface RetiredCa {
  /** SHA-256 of the retired CA certificate, lowercase hex. */
  fingerprint: string;
  certPem: string;
  /** The successor's key certified by this CA (self-issued: same name); RFC 4210 5.3.13 "newWithOld". */
  crossPem: string;
  /** This CA's key certified by the successor ("oldWithNew"): lets a chain walk from the cross certificate reach the new CA. */
  reversePem: string;
  retiredAt: number;
  /** ms since the epoch: the last notAfter this CA signed; trusted for verification until then. */
  trustUntil: number;
}

/** PEM text of DER bytes, and the DER of the first block with a label (RFC 7468): the shared toolkit's. */
export { toPem as derToPem, fromPem as pemToDer };

/** SHA-256 of DER bytes, lowercase hex: the fingerprint the device repo files certificates under. */
export function certFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

function ab(u: Uint8Array): ArrayBuffer {
  return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
}

/** A positive 128-bit serial (RFC 5280 4.1.2.2: unique, at most 20 octets); first byte below 0x80. */
function randomSerialBytes(): Uint8Array {
  const b = randomBytes(16);
  b[0] = 0x01 + (b[0] % 0x7f);
  return new Uint8Array(b);
}

/** Certificate times have whole seconds; RFC 5280 4.1.2.5: UTCTime through 2049, then GeneralizedTime. */
function certTime(d: Date): pkijs.Time {
  const value = new Date(Math.floor(d.getTime() / 1000) * 1000);
  return new pkijs.Time({ type: value.getUTCFullYear() < 2050 ? 0 : 1, value });
}

/** A Name with one attribute per RDN, in order; UTF8String values (RFC 5280 4.1.2.4). */
function buildName(rdns: ReadonlyArray<readonly [string, string]>): pkijs.RelativeDistinguishedNames {
  const seq = new asn1js.Sequence({
    value: rdns.map(
      ([type, v]) =>
        new asn1js.Set({ value: [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: type }), new asn1js.Utf8String({ value: v })] })] }),
    ),
  });
  return pkijs.RelativeDistinguishedNames.fromBER(seq.toBER(false));
}

function ext(extnID: string, critical: boolean, value: asn1js.AsnType): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) });
}

/** RFC 5280 4.2.1.3 KeyUsage as a DER named bit list (trailing zero bits dropped, X.690 11.2.2). */
function keyUsage(bits: number[]): asn1js.BitString {
  let byte = 0;
  for (const b of bits) byte |= 0x80 >> b;
  const highest = Math.max(...bits);
  return new asn1js.BitString({ valueHex: Uint8Array.from([byte]).buffer, unusedBits: 7 - highest });
}
const KU_DIGITAL_SIGNATURE = 0;
const KU_KEY_CERT_SIGN = 5;
const KU_CRL_SIGN = 6;

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value. */
function keyIdOf(spki: pkijs.PublicKeyInfo): Uint8Array {
  return new Uint8Array(createHash('sha1').update(spki.subjectPublicKey.valueBlock.valueHexView).digest());
}

function serialHexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex').replace(/^(00)+(?=.)/, '');
}

function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

async function generateKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return subtle.generateKey(EC_P256, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  return toPem(new Uint8Array(await subtle.exportKey('pkcs8', key)), 'PRIVATE KEY');
}

/** Checks that a CSR's key is ECDSA P-256 or RSA of at least 2048 bits. */
function keyAcceptable(spki: pkijs.PublicKeyInfo): boolean {
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

interface CaState {
  cert: pkijs.Certificate;
  certDer: Uint8Array;
  privateKey: CryptoKey;
  keyId: Uint8Array;
}

/**
 * A CA certificate for `publicKey` under `name`, signed by `signer` (its own key: self-signed; the
 * retiring CA's key: the cross certificate of a rotation).
 */
async function caCertificate(
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
    ...(signer.keyId
      ? [ext(OID.authorityKeyIdentifier, false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: ab(signer.keyId) }) }).toSchema())]
      : []),
  ];
  await cert.sign(signer.privateKey, 'SHA-256');
  return new Uint8Array(cert.toSchema(true).toBER(false));
}

async function createCaFiles(dir: string, now: Date): Promise<void> {
  const keys = await generateKeyPair();
  const name = buildName([
    [OID.organizationName, 'MyKey Platform'],
    [OID.commonName, `MyKey Device CA ${randomBytes(4).toString('hex')}`],
  ]);
  const certDer = await caCertificate(name, keys.publicKey, keys, new Date(now.getTime() - SKEW_MS), new Date(now.getTime() + CA_VALIDITY_MS));
  // The key goes first: a certificate without its key would be useless, a key without a
  // certificate is simply replaced on the next start.
  writeAtomic(join(dir, 'ca-key.pem'), await pkcs8Pem(keys.privateKey), 0o600);
  writeAtomic(join(dir, 'ca-cert.pem'), toPem(certDer, 'CERTIFICATE'), 0o644);
}

const CA_VALIDITY_MS = 20 * 365 * DAY_MS;

/** retired.json, newest first; unreadable or absent: none. */
export function readRetiredCas(dir: string): RetiredCa[] {
  try {
    const v = JSON.parse(readFileSync(join(dir, 'retired.json'), 'utf8')) as { cas?: unknown };
    if (!Array.isArray(v.cas)) return [];
    return v.cas.filter(
      (c): c is RetiredCa =>
        !!c && typeof c === 'object' && typeof c.fingerprint === 'string' && typeof c.certPem === 'string' && typeof c.crossPem === 'string' && typeof c.reversePem === 'string' && Number.isFinite(c.trustUntil) && Number.isFinite(c.retiredAt),
    );
  } catch {
    return [];
  }
}

/** The latest notAfter the CA with this fingerprint signed (ca-issued.json), or 0. */
function issuedUntil(dir: string, fingerprint: string): number {
  try {
    const v = JSON.parse(readFileSync(join(dir, 'ca-issued.json'), 'utf8')) as { fingerprint?: unknown; notAfter?: unknown };
    return v.fingerprint === fingerprint && typeof v.notAfter === 'number' ? v.notAfter : 0;
  } catch {
    return 0;
  }
}

/**
 * Completes a rotation cut short (a power cut): `ca-cert.pem.next` is written last, after the
 * successor's key and retired.json, so its presence means the rotation was decided.
 */
function finishRotation(dir: string): void {
  const certNext = join(dir, 'ca-cert.pem.next');
  const keyNext = join(dir, 'ca-key.pem.next');
  if (existsSync(certNext)) {
    if (existsSync(keyNext)) renameSync(keyNext, join(dir, 'ca-key.pem'));
    renameSync(certNext, join(dir, 'ca-cert.pem'));
  } else if (existsSync(keyNext)) {
    rmSync(keyNext, { force: true });
  }
}

export interface DeviceCaRotation {
  /** SHA-256 (lowercase hex) of the retired and of the new CA certificate. */
  retiredFingerprint: string;
  fingerprint: string;
  /** The retired CA stays trusted for verification until then (the last notAfter it signed). */
  trustUntil: Date;
  /** Where the retired key was moved: archive it offline, then delete it. */
  retiredKeyPath: string;
  certPem: string;
}

/**
 * Rotates the device CA in `dir`: a new key and self-signed certificate under the same name become
 * the issuer of every new certificate; the old certificate is kept as trusted (retired.json) until
 * the last certificate it signed expires, with a cross certificate of the new key signed by the old
 * one; the old key leaves ca-key.pem for retired/ (0600). The server certificate is reissued by the
 * new CA at the next start. A hub running meanwhile refuses to issue with the retired key
 * (device_ca_retired) until it is restarted.
 */
export async function rotateDeviceCa(dir: string, opts: { now?: () => Date; leaked?: boolean } = {}): Promise<DeviceCaRotation> {
  const now = (opts.now ?? (() => new Date()))();
  if (!existsSync(join(dir, 'ca-cert.pem')) || !existsSync(join(dir, 'ca-key.pem'))) {
    throw new MyKeyError('device_ca_rotation_invalid', `no device CA in ${dir}: start the hub once to create it`);
  }
  finishRotation(dir);
  const old = await loadCa(dir, true);
  const oldFp = certFingerprint(old.certDer);
  const keys = await generateKeyPair();
  const name = old.cert.subject;
  const notBefore = new Date(now.getTime() - SKEW_MS);
  const certDer = await caCertificate(name, keys.publicKey, keys, notBefore, new Date(now.getTime() + CA_VALIDITY_MS));
  // The old CA stays trusted as long as something it signed may still be presented.
  const trustUntil = Math.min(Math.max(issuedUntil(dir, oldFp), now.getTime()), old.cert.notAfter.value.getTime());
  const crossUntil = new Date(Math.max(trustUntil, now.getTime() + DAY_MS));
  const crossDer = await caCertificate(name, keys.publicKey, old, notBefore, crossUntil);
  const newKeyId = keyIdOf(pkijs.Certificate.fromBER(ab(certDer)).subjectPublicKeyInfo);
  const oldPublic = await old.cert.getPublicKey();
  const reverseDer = await caCertificate(name, oldPublic, { privateKey: keys.privateKey, keyId: newKeyId }, notBefore, crossUntil);
  const retired: RetiredCa = {
    fingerprint: oldFp,
    certPem: toPem(old.certDer, 'CERTIFICATE'),
    crossPem: toPem(crossDer, 'CERTIFICATE'),
    reversePem: toPem(reverseDer, 'CERTIFICATE'),
    retiredAt: now.getTime(),
    trustUntil,
  };
  // A leaked key is not trusted a moment longer: no entry, no cross certificates (every device must enroll again).
  const others = opts.leaked ? [] : readRetiredCas(dir).filter((c) => c.fingerprint !== oldFp && c.trustUntil > now.getTime());
  const entries = opts.leaked ? [] : [retired, ...others];
  const retiredDir = join(dir, 'retired');
  mkdirSync(retiredDir, { recursive: true, mode: 0o700 });
  const retiredKeyPath = join(retiredDir, `ca-key-${oldFp.slice(0, 16)}.pem`);
  writeAtomic(retiredKeyPath, readFileSync(join(dir, 'ca-key.pem'), 'utf8'), 0o600);
  // Order for a power cut: the new key, the trust list, then the certificate as the commit mark
  // (finishRotation); an entry in retired.json for the still-current CA is ignored until then.
  writeAtomic(join(dir, 'ca-key.pem.next'), await pkcs8Pem(keys.privateKey), 0o600);
  writeAtomic(join(dir, 'retired.json'), JSON.stringify({ version: 1, cas: entries }, null, 2) + '\n', 0o644);
  writeAtomic(join(dir, 'ca-cert.pem.next'), toPem(certDer, 'CERTIFICATE'), 0o644);
  finishRotation(dir);
  for (const f of ['server-names.json', 'server-cert.pem', 'server-key.pem', 'ca-issued.json']) rmSync(join(dir, f), { force: true });
  return { retiredFingerprint: oldFp, fingerprint: certFingerprint(certDer), trustUntil: new Date(opts.leaked ? now.getTime() : trustUntil), retiredKeyPath, certPem: toPem(certDer, 'CERTIFICATE') };
}

async function loadCa(dir: string, extractable = false): Promise<CaState> {
  const certDer = fromPem(readFileSync(join(dir, 'ca-cert.pem'), 'utf8'), 'CERTIFICATE');
  const keyDer = fromPem(readFileSync(join(dir, 'ca-key.pem'), 'utf8'), 'PRIVATE KEY');
  const privateKey = await subtle.importKey('pkcs8', keyDer, EC_P256, extractable, ['sign']);
  const cert = pkijs.Certificate.fromBER(ab(certDer));
  return { cert, certDer, privateKey, keyId: keyIdOf(cert.subjectPublicKeyInfo) };
}

/**
 * Opens the device CA in `dir` (normally `<dataDir>/device-ca`), creating it on first use.
 * `now` is passed in for tests (issuing expired certificates, clock checks).
 */
export async function openDeviceCa(dir: string, opts: { now?: () => Date } = {}): Promise<DeviceCa> {
  const now = opts.now ?? (() => new Date());
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  finishRotation(dir);
  if (!existsSync(join(dir, 'ca-cert.pem')) || !existsSync(join(dir, 'ca-key.pem'))) await createCaFiles(dir, now());
  const ca = await loadCa(dir);
  const certPem = toPem(ca.certDer, 'CERTIFICATE');
  const fingerprint = certFingerprint(ca.certDer);
  const caX509 = new X509Certificate(ca.certDer);
  const retired = readRetiredCas(dir).filter((c) => c.fingerprint !== fingerprint);
  const inWindow = () => retired.filter((c) => c.trustUntil > now().getTime());
  let lastIssued = issuedUntil(dir, fingerprint);
  /** False once ca-cert.pem is no longer this CA (rotated under a running hub): nothing more is signed with this key. */
  const stillCurrent = (): boolean => {
    try {
      return readFileSync(join(dir, 'ca-cert.pem'), 'utf8') === certPem;
    } catch {
      return false;
    }
  };

  async function issue(
    subject: pkijs.RelativeDistinguishedNames,
    spki: pkijs.PublicKeyInfo,
    notBefore: Date,
    notAfter: Date,
    extra: pkijs.Extension[],
    eku: string,
  ): Promise<IssuedDeviceCertificate> {
    if (!stillCurrent()) throw new MyKeyError('device_ca_retired', 'the device CA was rotated: restart the hub to issue with the new key');
    const serial = randomSerialBytes();
    const cert = new pkijs.Certificate();
    cert.version = 2;
    cert.serialNumber = new asn1js.Integer({ valueHex: ab(serial) });
    cert.issuer = ca.cert.subject;
    cert.subject = subject;
    cert.notBefore = certTime(notBefore);
    cert.notAfter = certTime(notAfter);
    cert.subjectPublicKeyInfo = spki;
    cert.extensions = [
      ext(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: false }).toSchema()),
      ext(OID.keyUsage, true, keyUsage([KU_DIGITAL_SIGNATURE])),
      ext(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [eku] }).toSchema()),
      ext(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: ab(keyIdOf(spki)) })),
      ext(OID.authorityKeyIdentifier, false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: ab(ca.keyId) }) }).toSchema()),
      ...extra,
    ];
    await cert.sign(ca.privateKey, 'SHA-256');
    const certDer = new Uint8Array(cert.toSchema(true).toBER(false));
    // How long this CA must stay trusted if it is retired: the last notAfter it signed.
    if (cert.notAfter.value.getTime() > lastIssued) {
      lastIssued = cert.notAfter.value.getTime();
      writeAtomic(join(dir, 'ca-issued.json'), JSON.stringify({ fingerprint, notAfter: lastIssued }), 0o644);
    }
    return {
      certDer,
      certPem: toPem(certDer, 'CERTIFICATE'),
      serialHex: serialHexOf(serial),
      fingerprint: certFingerprint(certDer),
      notBefore: cert.notBefore.value,
      notAfter: cert.notAfter.value,
    };
  }

  async function serverCredentials(names: string[] = [], validityDays = 825): Promise<ServerCredentials> {
    const all = [...new Set(['localhost', '127.0.0.1', '::1', ...names])].sort();
    const keyPath = join(dir, 'server-key.pem');
    const certPath = join(dir, 'server-cert.pem');
    const namesPath = join(dir, 'server-names.json');
    if (existsSync(keyPath) && existsSync(certPath) && existsSync(namesPath)) {
      const saved = JSON.parse(readFileSync(namesPath, 'utf8')) as { names: string[]; notAfter: number };
      if (JSON.stringify(saved.names) === JSON.stringify(all) && saved.notAfter - now().getTime() > 30 * DAY_MS && new X509Certificate(readFileSync(certPath)).checkIssued(caX509)) {
        return { keyPem: readFileSync(keyPath, 'utf8'), certPem: readFileSync(certPath, 'utf8'), notAfter: new Date(saved.notAfter), names: all };
      }
    }
    const keys = await generateKeyPair();
    const spki = new pkijs.PublicKeyInfo();
    await spki.importKey(keys.publicKey);
    // RFC 5280 4.2.1.6: addresses as iPAddress (4 or 16 octets), everything else as dNSName.
    const san = new pkijs.AltName({
      altNames: all.map((n) => {
        const v = isIP(n);
        if (v === 4) return new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ab(Uint8Array.from(n.split('.').map(Number))) }) });
        if (v === 6) return new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ab(ipv6Bytes(n)) }) });
        return new pkijs.GeneralName({ type: 2, value: n });
      }),
    });
    const t = now();
    const issued = await issue(
      buildName([
        [OID.organizationName, 'MyKey Platform'],
        [OID.commonName, 'MyKey hub broker'],
      ]),
      spki,
      new Date(t.getTime() - SKEW_MS),
      new Date(t.getTime() + validityDays * DAY_MS),
      [ext(OID.subjectAltName, false, san.toSchema())],
      OID.serverAuth,
    );
    const keyPem = await pkcs8Pem(keys.privateKey);
    writeAtomic(keyPath, keyPem, 0o600);
    writeAtomic(certPath, issued.certPem, 0o644);
    writeAtomic(namesPath, JSON.stringify({ names: all, notAfter: issued.notAfter.getTime() }), 0o644);
    return { keyPem, certPem: issued.certPem, notAfter: issued.notAfter, names: all };
  }

  return {
    certDer: ca.certDer,
    certPem,
    async issueDeviceCertificate(csrDer, req) {
      if (!isEdgeId(req.edgeId)) return fail('validation_failed', 'edgeId is not a valid edge id');
      if (!isServiceId(req.serviceId)) return fail('validation_failed', 'serviceId is not a valid service id');
      if (!Number.isInteger(req.validityDays) || req.validityDays < 1 || req.validityDays > 3650) {
        return fail('validation_failed', 'validityDays must be an integer from 1 to 3650');
      }
      let csr: pkijs.CertificationRequest;
      try {
        const asn = asn1js.fromBER(ab(csrDer));
        // A CSR is exactly one BER/DER structure: nothing before or after it.
        if (asn.offset !== csrDer.byteLength) return fail('csr_invalid', 'not a single DER structure');
        csr = new pkijs.CertificationRequest({ schema: asn.result });
      } catch {
        return fail('csr_invalid', 'not a DER PKCS#10 certification request');
      }
      let acceptable = false;
      try {
        // PKI.js decodes the key lazily (parsedKey): a malformed key throws here, and is refused.
        acceptable = keyAcceptable(csr.subjectPublicKeyInfo);
      } catch {
        acceptable = false;
      }
      if (!acceptable) return fail('csr_invalid', 'the key must be ECDSA P-256 or RSA of at least 2048 bits');
      let signed = false;
      try {
        // RFC 2986 3: the signature over certificationRequestInfo proves possession of the key.
        signed = await csr.verify();
      } catch {
        signed = false;
      }
      if (!signed) return fail('csr_invalid', 'the CSR signature does not verify with its own key');
      if (!stillCurrent()) return fail('device_ca_retired');
      const t = now();
      return ok(
        await issue(
          buildName([
            [OID.organizationName, DEVICE_ORGANIZATION],
            [OID.organizationalUnitName, req.serviceId],
            [OID.commonName, req.edgeId],
          ]),
          csr.subjectPublicKeyInfo,
          new Date(t.getTime() - SKEW_MS),
          new Date(t.getTime() + req.validityDays * DAY_MS),
          [],
          OID.clientAuth,
        ),
      );
    },
    serverCredentials,
    trustedPems: () => [certPem, ...inWindow().map((c) => c.certPem)],
    // Order matters to OpenSSL (the first matching issuer is taken): newWithOld first, so an edge
    // trusting only the retired CA goes server -> newWithOld -> retired CA; then oldWithNew and the new
    // CA, so a walk of the chain (the enrollment tool's fingerprint pin) reaches the new CA. Only the
    // latest retired CA gets this path: rotate again only after its edges have renewed.
    chainPem: () => {
      const last = inWindow()[0];
      return [...(last ? [last.crossPem.trim(), last.reversePem.trim()] : []), certPem.trim()].join('\n') + '\n';
    },
    issuedByCurrent(certDer) {
      try {
        const c = new X509Certificate(certDer);
        return c.checkIssued(caX509) && c.verify(caX509.publicKey);
      } catch {
        return false;
      }
    },
  };
}

/** The 16 bytes of an IPv6 address in text form (RFC 4291 2.2, with `::`). */
function ipv6Bytes(text: string): Uint8Array {
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
export async function createDeviceCsr(
  edgeId: string,
  opts: { keyPair?: webcrypto.CryptoKeyPair } = {},
): Promise<{ csrDer: Uint8Array; keyPair: webcrypto.CryptoKeyPair; keyPem: string }> {
  const keyPair = opts.keyPair ?? (await generateKeyPair());
  const csr = new pkijs.CertificationRequest();
  csr.subject = buildName([[OID.commonName, edgeId]]);
  await csr.subjectPublicKeyInfo.importKey(keyPair.publicKey);
  await csr.sign(keyPair.privateKey, 'SHA-256');
  return { csrDer: new Uint8Array(csr.toSchema(true).toBER(false)), keyPair, keyPem: await pkcs8Pem(keyPair.privateKey) };
}
