// Certificate mode: the key of a touched card is its certificate's identity, hash of the issuer Name
// DER and the serial (shared/cert-identity.ts), the same the hub files the binding under. This walks
// just far enough into the DER to find those two fields, checking every length against the bytes
// it has (X.690 8.1, definite lengths only). Pure; no certificate is verified here (the hub did that
// when the link was made, and the cache only answers for certificates the hub put in it).
import { certIdentity, issuerKeyOf } from '../../shared/cert-identity.ts';
import { fail, ok, type Result } from '../../shared/errors.ts';

interface Tlv {
  tag: number;
  start: number;
  valueStart: number;
  end: number;
}

/** One TLV at `at`, wholly inside [at, limit); undefined when it is not. */
function tlvAt(buf: Uint8Array, at: number, limit: number): Tlv | undefined {
  if (at + 2 > limit) return undefined;
  const tag = buf[at];
  if ((tag & 0x1f) === 0x1f) return undefined; // multi-byte tags never occur in these fields
  const l0 = buf[at + 1];
  let len = 0;
  let hdr = 2;
  if (l0 < 0x80) len = l0;
  else {
    const n = l0 & 0x7f;
    // 0x80 is the indefinite form (not DER); more than 3 length octets is far beyond a certificate.
    if (n === 0 || n > 3 || at + 2 + n > limit) return undefined;
    for (let i = 0; i < n; i++) len = len * 256 + buf[at + 2 + i];
    hdr += n;
  }
  const end = at + hdr + len;
  return end <= limit ? { tag, start: at, valueStart: at + hdr, end } : undefined;
}

/** Issuer key and serial of a DER certificate, or cert_malformed. */
export function certFields(der: Uint8Array): Result<{ issuerKey: string; serialHex: string }, 'cert_malformed'> {
  const bad = (what: string) => fail('cert_malformed', `certificate: ${what}`);
  // RFC 5280 4.1: Certificate ::= SEQUENCE { tbsCertificate TBSCertificate, ... }
  const cert = tlvAt(der, 0, der.length);
  if (!cert || cert.tag !== 0x30 || cert.end !== der.length) return bad('not one DER SEQUENCE');
  const tbs = tlvAt(der, cert.valueStart, cert.end);
  if (!tbs || tbs.tag !== 0x30) return bad('no TBSCertificate');
  // TBSCertificate ::= SEQUENCE { version [0] EXPLICIT OPTIONAL, serialNumber, signature, issuer, ... }
  let f = tlvAt(der, tbs.valueStart, tbs.end);
  if (f?.tag === 0xa0) f = tlvAt(der, f.end, tbs.end);
  if (!f || f.tag !== 0x02 || f.end === f.valueStart) return bad('no serialNumber');
  const serial = der.subarray(f.valueStart, f.end);
  const alg = tlvAt(der, f.end, tbs.end);
  if (!alg || alg.tag !== 0x30) return bad('no signature AlgorithmIdentifier');
  const issuer = tlvAt(der, alg.end, tbs.end);
  if (!issuer || issuer.tag !== 0x30) return bad('no issuer Name');
  return ok({ issuerKey: issuerKeyOf(der.subarray(issuer.start, issuer.end)), serialHex: Buffer.from(serial).toString('hex') });
}

/** The canonical certificate identity (`<issuerKey>:<serial>`) of a DER certificate, or cert_malformed. */
export function certIdentityOf(der: Uint8Array): Result<string, 'cert_malformed'> {
  const r = certFields(der);
  return r.ok ? ok(certIdentity(r.value.issuerKey, r.value.serialHex)) : r;
}
