// Facts of a device certificate for the technician. The key and CSR code lives in shared/device-csr.ts
// (the edge agent renews its own certificate with it) and is re-exported here for the enrollment tool.
import { X509Certificate } from 'node:crypto';
import { MyKeyError } from '../../shared/errors.ts';

// The key and CSR code is shared with the edge agent's self-renewal (edge/renew).
export { certMatchesKey, createCsr, generateDeviceKey, importDeviceKey, issuedBy, toPem } from '../../shared/device-csr.ts';

/** The facts of a device certificate a technician needs, read with node:crypto. */
export interface DeviceCertFacts {
  commonName: string | undefined;
  notBefore: Date;
  notAfter: Date;
  fingerprint256: string;
  serialNumber: string;
}

/** Reads a device certificate; throws validation_failed when it is not a certificate. */
export function certFacts(certPem: string): DeviceCertFacts {
  let c: X509Certificate;
  try {
    c = new X509Certificate(certPem);
  } catch (e) {
    throw new MyKeyError('validation_failed', 'not a PEM certificate', { cause: e });
  }
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(c.subject)?.[1];
  return { commonName: cn, notBefore: new Date(c.validFrom), notAfter: new Date(c.validTo), fingerprint256: c.fingerprint256, serialNumber: c.serialNumber };
}
