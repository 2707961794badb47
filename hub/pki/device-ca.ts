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
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { fromPem, toPem } from '../../shared/asn1/pem.ts';
import { fail, MyKeyError, ok, type Result } from '../../shared/errors.ts';
import { isEdgeId, isServiceId } from '../../shared/ids.ts';
import { createCaFiles, finishRotation, issuedUntil, loadCa, readRetiredCas, writeAtomic } from './device-ca-rotation.ts';
import {
  DAY_MS,
  KU_DIGITAL_SIGNATURE,
  certFingerprint,
  OID,
  SKEW_MS,
  ab,
  buildName,
  certTime,
  ext,
  generateKeyPair,
  ipv6Bytes,
  keyAcceptable,
  keyIdOf,
  keyUsage,
  pkcs8Pem,
  randomSerialBytes,
  serialHexOf,
} from './device-ca-x509.ts';

// The device CA's parts (certificate building, files and rotation), importable from here.
export { EC_P256, certFingerprint, createDeviceCsr } from './device-ca-x509.ts';
export { readRetiredCas, rotateDeviceCa, type DeviceCaRotation, type RetiredCa } from './device-ca-rotation.ts';

/** The organization every device certificate names. */
export const DEVICE_ORGANIZATION = 'MyKey Platform devices';

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

/** PEM text of DER bytes, and the DER of the first block with a label (RFC 7468): the shared toolkit's. */
export { toPem as derToPem, fromPem as pemToDer };

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

  async function issue(subject: pkijs.RelativeDistinguishedNames, spki: pkijs.PublicKeyInfo, notBefore: Date, notAfter: Date, extra: pkijs.Extension[], eku: string): Promise<IssuedDeviceCertificate> {
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
