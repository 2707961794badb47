// Certificate mode: the key of a touched card is its certificate's identity, hash of the issuer Name
// DER and the serial (shared/cert-identity.ts), the same the hub files the binding under. This walks
// just far enough into the DER to find those two fields, checking every length against the bytes
// it has (X.690 8.1 and 10.1, with the platform's one DER reader, shared/asn1). Pure; no certificate
// is verified here (the hub did that when the link was made, and the cache only answers for
// certificates the hub put in it).
import { DerError, TAG, readTlv, type Tlv } from '../../shared/asn1/der.ts';
import { certIdentity, issuerKeyOf } from '../../shared/cert-identity.ts';
import { fail, ok, type Result } from '../../shared/errors.ts';

/** One TLV at `at`, wholly inside [at, limit) and DER (shared/asn1); undefined when it is not. */
function tlvAt(buf: Uint8Array, at: number, limit: number): Tlv | undefined {
  try {
    return readTlv(buf, at, limit);
  } catch (e) {
    if (e instanceof DerError) return undefined;
    throw e;
  }
}

/** Issuer key and serial of a DER certificate, or cert_malformed. */
export function certFields(der: Uint8Array): Result<{ issuerKey: string; serialHex: string }, 'cert_malformed'> {
  const bad = (what: string) => fail('cert_malformed', `certificate: ${what}`);
  // RFC 5280 4.1: Certificate ::= SEQUENCE { tbsCertificate TBSCertificate, ... }
  const cert = tlvAt(der, 0, der.length);
  if (!cert || cert.tag !== TAG.SEQUENCE || cert.end !== der.length) return bad('not one DER SEQUENCE');
  const tbs = tlvAt(der, cert.valueStart, cert.end);
  if (!tbs || tbs.tag !== TAG.SEQUENCE) return bad('no TBSCertificate');
  // TBSCertificate ::= SEQUENCE { version [0] EXPLICIT OPTIONAL, serialNumber, signature, issuer, ... }
  let f = tlvAt(der, tbs.valueStart, tbs.end);
  if (f?.tag === TAG.ctx(0)) f = tlvAt(der, f.end, tbs.end);
  if (!f || f.tag !== TAG.INTEGER || f.end === f.valueStart) return bad('no serialNumber');
  const serial = der.subarray(f.valueStart, f.end);
  const alg = tlvAt(der, f.end, tbs.end);
  if (!alg || alg.tag !== TAG.SEQUENCE) return bad('no signature AlgorithmIdentifier');
  const issuer = tlvAt(der, alg.end, tbs.end);
  if (!issuer || issuer.tag !== TAG.SEQUENCE) return bad('no issuer Name');
  return ok({ issuerKey: issuerKeyOf(der.subarray(issuer.start, issuer.end)), serialHex: Buffer.from(serial).toString('hex') });
}

/** The canonical certificate identity (`<issuerKey>:<serial>`) of a DER certificate, or cert_malformed. */
export function certIdentityOf(der: Uint8Array): Result<string, 'cert_malformed'> {
  const r = certFields(der);
  return r.ok ? ok(certIdentity(r.value.issuerKey, r.value.serialHex)) : r;
}
