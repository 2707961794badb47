// The device CA's files in <dataDir>/device-ca/ (listed in device-ca.ts): creating the CA on first
// use, loading it, and rotating it (rotateDeviceCa, `tsx hub/cli.ts device-ca rotate`) so that a
// power cut at any point leaves either the old or the new CA in place (finishRotation).
import * as pkijs from 'pkijs';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromPem, toPem } from '../../shared/asn1/pem.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { DAY_MS, EC_P256, certFingerprint, OID, SKEW_MS, ab, buildName, caCertificate, generateKeyPair, keyIdOf, pkcs8Pem, subtle, type CryptoKey } from './device-ca-x509.ts';

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

export function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export interface CaState {
  cert: pkijs.Certificate;
  certDer: Uint8Array;
  privateKey: CryptoKey;
  keyId: Uint8Array;
}

export async function createCaFiles(dir: string, now: Date): Promise<void> {
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
        !!c &&
        typeof c === 'object' &&
        typeof c.fingerprint === 'string' &&
        typeof c.certPem === 'string' &&
        typeof c.crossPem === 'string' &&
        typeof c.reversePem === 'string' &&
        Number.isFinite(c.trustUntil) &&
        Number.isFinite(c.retiredAt),
    );
  } catch {
    return [];
  }
}

/** The latest notAfter the CA with this fingerprint signed (ca-issued.json), or 0. */
export function issuedUntil(dir: string, fingerprint: string): number {
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
export function finishRotation(dir: string): void {
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

export async function loadCa(dir: string, extractable = false): Promise<CaState> {
  const certDer = fromPem(readFileSync(join(dir, 'ca-cert.pem'), 'utf8'), 'CERTIFICATE');
  const keyDer = fromPem(readFileSync(join(dir, 'ca-key.pem'), 'utf8'), 'PRIVATE KEY');
  const privateKey = await subtle.importKey('pkcs8', keyDer, EC_P256, extractable, ['sign']);
  const cert = pkijs.Certificate.fromBER(ab(certDer));
  return { cert, certDer, privateKey, keyId: keyIdOf(cert.subjectPublicKeyInfo) };
}
