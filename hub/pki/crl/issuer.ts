// CRL issuers: the CA name and public key a CRL must name and verify against.
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { fail, ok, type Result } from '../../../shared/errors.ts';
import { DerError as CrlDerError, DerCursor, TAG as T } from '../../../shared/asn1/der.ts';

/** A CA that may sign CRLs. Several issuers may share one name (key rollover). */
export interface CrlIssuer {
  /** The CA's subject Name, full DER TLV. */
  nameDer: Uint8Array;
  publicKey: KeyObject;
  /**
   * The issuer's key identifier, hex (see issuerKeyIdOf): what CRLs and bound certificates are filed
   * under, so two live keys under one name (a rollover) never share a CRL.
   */
  keyId: string;
  /** For logs and reports, e.g. "JPKI user authentication CA (2024)". */
  label?: string;
}

/**
 * The key identifier of a public key by RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey
 * BIT STRING value (without the unused-bits byte). Used only to try the likeliest issuer first.
 */
export function keyIdOf(publicKey: KeyObject): Uint8Array | undefined {
  try {
    const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
    const c = new DerCursor(spki);
    c.expect(T.SEQUENCE, 0, spki.length, 'SubjectPublicKeyInfo');
    const end = c.end;
    c.expect(T.SEQUENCE, c.body, end, 'algorithm');
    c.expect(T.BIT_STRING, c.end, end, 'subjectPublicKey');
    return new Uint8Array(
      createHash('sha1')
        .update(spki.subarray(c.body + 1, c.end))
        .digest(),
    );
  } catch {
    return undefined;
  }
}

/**
 * The key identifier the hub files an issuer's CRLs and certificates under, hex: the CA certificate's
 * subjectKeyIdentifier when it has one (RFC 5280 4.2.1.2; what certificates and CRLs name in their
 * authorityKeyIdentifier, 4.2.1.1 and 5.2.1), else the SHA-1 of its public key bits (method 1).
 */
export function issuerKeyIdOf(publicKey: KeyObject, subjectKeyId?: Uint8Array): string {
  const id = subjectKeyId ?? keyIdOf(publicKey);
  if (id === undefined) throw new CrlDerError('issuer public key cannot be exported', 0);
  return Buffer.from(id).toString('hex');
}

/**
 * A CrlIssuer from a CA certificate (DER or PEM): its subject Name bytes and public key.
 *   Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
 *     signature, issuer, validity, subject, ... }, ... }   (RFC 5280 4.1)
 */
export function crlIssuerFromCertificate(cert: Uint8Array | string, label?: string): Result<CrlIssuer, 'cert_malformed'> {
  try {
    const x = new X509Certificate(typeof cert === 'string' ? cert : Buffer.from(cert.buffer, cert.byteOffset, cert.byteLength));
    const der = new Uint8Array(x.raw);
    const c = new DerCursor(der);
    c.expect(T.SEQUENCE, 0, der.length, 'Certificate');
    c.expect(T.SEQUENCE, c.body, c.end, 'tbsCertificate');
    const te = c.end;
    let p = c.body;
    c.read(p, te);
    if (c.tag === 0xa0) p = c.end;
    for (const what of ['serialNumber', 'signature', 'issuer', 'validity']) {
      c.read(p, te);
      if (what !== 'serialNumber' && c.tag !== T.SEQUENCE) throw new CrlDerError(`certificate ${what}`, p);
      p = c.end;
    }
    c.expect(T.SEQUENCE, p, te, 'subject');
    const subjectStart = c.start;
    const subjectEnd = c.end;
    const ski = subjectKeyIdIn(c, c.end, te);
    const issuer: CrlIssuer = { nameDer: der.slice(subjectStart, subjectEnd), publicKey: x.publicKey, keyId: issuerKeyIdOf(x.publicKey, ski) };
    if (label !== undefined) issuer.label = label;
    return ok(issuer);
  } catch (err) {
    return fail('cert_malformed', `CA certificate: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * The subjectKeyIdentifier in the rest of a tbsCertificate, from subjectPublicKeyInfo on (RFC 5280
 * 4.1: ... subjectPublicKeyInfo, issuerUniqueID [1] OPTIONAL, subjectUniqueID [2] OPTIONAL,
 * extensions [3] EXPLICIT Extensions OPTIONAL; 4.2.1.2 SubjectKeyIdentifier ::= OCTET STRING).
 */
function subjectKeyIdIn(c: DerCursor, from: number, te: number): Uint8Array | undefined {
  const b = c.buf;
  c.expect(T.SEQUENCE, from, te, 'subjectPublicKeyInfo');
  let p = c.end;
  while (p < te) {
    const tg = c.read(p, te);
    if (tg === 0xa3) {
      c.expect(T.SEQUENCE, c.body, c.end, 'extensions');
      const xe = c.end;
      for (let q = c.body; q < xe; ) {
        c.expect(T.SEQUENCE, q, xe, 'extension');
        const ee = c.end;
        c.expect(T.OID, c.body, ee, 'extnID');
        const isSki = c.end - c.body === 3 && b[c.body] === 0x55 && b[c.body + 1] === 0x1d && b[c.body + 2] === 0x0e;
        let r = c.end;
        if (c.read(r, ee) === T.BOOLEAN) r = c.end;
        c.expect(T.OCTET_STRING, r, ee, 'extnValue');
        if (isSki) {
          c.expect(T.OCTET_STRING, c.body, c.end, 'subjectKeyIdentifier');
          return b.slice(c.body, c.end);
        }
        q = ee;
      }
      return undefined;
    }
    p = c.end;
  }
  return undefined;
}
