// Certificate mode: the key of a touched card is its certificate's identity, hash of the issuer Name
// DER, the authorityKeyIdentifier keyIdentifier (from key scheme scrypt-v3 on) and the serial
// (shared/cert-identity.ts), the same the hub derives from the certificate it registered. This walks
// just far enough into the DER to find those fields, checking every length against the bytes
// it has (X.690 8.1 and 10.1, with the platform's one DER reader, shared/asn1). Pure; no certificate
// is verified here (the hub did that when the link was made, and the cache only answers for
// certificates the hub put in it).
import { DerError, TAG, readTlv, type Tlv } from '../../shared/asn1/der.ts';
import { certIdentity, certIdentityWithKey, issuerKeyOf } from '../../shared/cert-identity.ts';
import { fail, ok, type Result } from '../../shared/errors.ts';
import { schemeKeysCertIssuer, type KeyScheme } from '../../shared/sync.ts';

/** One TLV at `at`, wholly inside [at, limit) and DER (shared/asn1); undefined when it is not. */
function tlvAt(buf: Uint8Array, at: number, limit: number): Tlv | undefined {
  try {
    return readTlv(buf, at, limit);
  } catch (e) {
    if (e instanceof DerError) return undefined;
    throw e;
  }
}

// id-ce-authorityKeyIdentifier 2.5.29.35, DER of the OBJECT IDENTIFIER value.
const OID_AKI = [0x55, 0x1d, 0x23];

/**
 * The keyIdentifier of the authorityKeyIdentifier extension in `extensions` ([3] EXPLICIT Extensions,
 * RFC 5280 4.1), lower-case hex; '' when there is no such extension or it has no keyIdentifier (the
 * hub's parser, hub/pki/certificate.ts, reads the same). undefined when the structure is broken.
 */
function akiOf(der: Uint8Array, extensions: Tlv): string | undefined {
  const seq = tlvAt(der, extensions.valueStart, extensions.end);
  if (!seq || seq.tag !== 0x30 || seq.end !== extensions.end) return undefined;
  // Extension ::= SEQUENCE { extnID OBJECT IDENTIFIER, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
  for (let at = seq.valueStart; at < seq.end; ) {
    const ext = tlvAt(der, at, seq.end);
    if (!ext || ext.tag !== 0x30) return undefined;
    at = ext.end;
    const oid = tlvAt(der, ext.valueStart, ext.end);
    if (!oid || oid.tag !== 0x06) return undefined;
    if (oid.end - oid.valueStart !== OID_AKI.length || OID_AKI.some((b, i) => der[oid.valueStart + i] !== b)) continue;
    let value = tlvAt(der, oid.end, ext.end);
    if (value?.tag === 0x01) value = tlvAt(der, value.end, ext.end);
    if (!value || value.tag !== 0x04) return undefined;
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT KeyIdentifier OPTIONAL, ... } (RFC 5280 4.2.1.1)
    const aki = tlvAt(der, value.valueStart, value.end);
    if (!aki || aki.tag !== 0x30) return undefined;
    for (let p = aki.valueStart; p < aki.end; ) {
      const c = tlvAt(der, p, aki.end);
      if (!c) return undefined;
      if (c.tag === 0x80) return Buffer.from(der.subarray(c.valueStart, c.end)).toString('hex');
      p = c.end;
    }
    return '';
  }
  return '';
}

/** Issuer key, serial and AKI keyIdentifier ('' when none) of a DER certificate, or cert_malformed. */
export function certFields(der: Uint8Array): Result<{ issuerKey: string; serialHex: string; aki: string }, 'cert_malformed'> {
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
  // ... validity, subject, subjectPublicKeyInfo, issuerUniqueID [1] OPTIONAL, subjectUniqueID [2]
  // OPTIONAL, extensions [3] EXPLICIT OPTIONAL (RFC 5280 4.1)
  let at = issuer.end;
  for (const what of ['validity', 'subject', 'subjectPublicKeyInfo']) {
    const t = tlvAt(der, at, tbs.end);
    if (!t || t.tag !== 0x30) return bad(`no ${what}`);
    at = t.end;
  }
  let aki = '';
  while (at < tbs.end) {
    const t = tlvAt(der, at, tbs.end);
    if (!t) return bad('broken TBSCertificate tail');
    if (t.tag === 0xa3) {
      const found = akiOf(der, t);
      if (found === undefined) return bad('broken extensions');
      aki = found;
    }
    at = t.end;
  }
  return ok({ issuerKey: issuerKeyOf(der.subarray(issuer.start, issuer.end)), serialHex: Buffer.from(serial).toString('hex'), aki });
}

/**
 * The certificate identity of a DER certificate as keyed identities under `scheme` use it: with the
 * issuing key (AKI) from scrypt-v3 on, the old `<issuerKey>:<serial>` before. Or cert_malformed.
 */
export function certIdentityOf(der: Uint8Array, scheme: KeyScheme): Result<string, 'cert_malformed'> {
  const r = certFields(der);
  if (!r.ok) return r;
  return ok(schemeKeysCertIssuer(scheme) ? certIdentityWithKey(r.value) : certIdentity(r.value.issuerKey, r.value.serialHex));
}
