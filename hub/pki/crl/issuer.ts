// CRL issuers: the CA name and public key a CRL must name and verify against.
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { fail, ok, type Result } from '../../../shared/errors.ts';
import { CrlDerError, DerCursor, T } from './der-cursor.ts';

/** A CA that may sign CRLs. Several issuers may share one name (key rollover). */
export interface CrlIssuer {
  /** The CA's subject Name, full DER TLV. */
  nameDer: Uint8Array;
  publicKey: KeyObject;
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
    return new Uint8Array(createHash('sha1').update(spki.subarray(c.body + 1, c.end)).digest());
  } catch {
    return undefined;
  }
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
    const issuer: CrlIssuer = { nameDer: der.slice(c.start, c.end), publicKey: x.publicKey };
    if (label !== undefined) issuer.label = label;
    return ok(issuer);
  } catch (err) {
    return fail('cert_malformed', `CA certificate: ${err instanceof Error ? err.message : String(err)}`);
  }
}
