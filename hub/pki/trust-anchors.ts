// JPKI trust anchors: the self-signed CA certificates the hub accepts user-authentication
// certificates from. Several may be live at once (CA key rollover), possibly with the same DN.
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { MyKeyError } from '../../shared/errors.ts';
import { issuerKeyOf } from '../../shared/cert-identity.ts';
import { certificatesFromPem, digestForSignatureOid, parseCertificate, type ParsedCertificate } from './certificate.ts';
import { issuerKeyIdOf } from './crl/issuer.ts';

/** A configured trust anchor. */
export interface TrustAnchor {
  /** Where it came from (file name), for logs and the console. */
  label: string;
  cert: ParsedCertificate;
  publicKey: KeyObject;
  /**
   * sha256 of the subject Name DER, hex: the name part of a bound certificate's identity (edges key
   * certificate-mode touches with it). Shared by every key of a CA that rolled its key over.
   */
  issuerKey: string;
  /**
   * The anchor's key identifier, hex (subjectKeyIdentifier, else SHA-1 of the public key bits; see
   * issuerKeyIdOf): what CRLs and bound certificates are filed under, so each CRL applies only to
   * certificates signed by its own key.
   */
  keyId: string;
}

export { issuerKeyOf };

/** Builds a trust anchor from a CA certificate's DER, checking it is a self-signed CA. */
export function trustAnchorFromDer(der: Uint8Array, label: string): TrustAnchor {
  const parsed = parseCertificate(der);
  if (!parsed.ok) throw new MyKeyError('config_invalid', `trust anchor ${label}: ${parsed.message}`);
  const cert = parsed.value;
  if (!cert.basicConstraintsCa) throw new MyKeyError('config_invalid', `trust anchor ${label} is not a CA certificate`);
  if (cert.keyUsage && !cert.keyUsage.has('keyCertSign')) {
    throw new MyKeyError('config_invalid', `trust anchor ${label} may not sign certificates (keyUsage lacks keyCertSign)`);
  }
  const publicKey = createPublicKey({ key: Buffer.from(cert.spkiDer), format: 'der', type: 'spki' });
  const digest = digestForSignatureOid(cert.signatureAlgorithmOid);
  if (!digest || !cryptoVerify(digest, cert.tbs, publicKey, cert.signature)) {
    throw new MyKeyError('config_invalid', `trust anchor ${label} is not a valid self-signed certificate`);
  }
  return { label, cert, publicKey, issuerKey: issuerKeyOf(cert.subjectDer), keyId: issuerKeyIdOf(publicKey, cert.subjectKeyId) };
}

/** Loads trust anchors from PEM (bundles allowed) or DER files. */
export function loadTrustAnchors(paths: string[]): TrustAnchor[] {
  const out: TrustAnchor[] = [];
  for (const path of paths) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      throw new MyKeyError('config_invalid', `trust anchor ${path} cannot be read`, { cause: e });
    }
    const text = bytes.toString('latin1');
    let ders: Uint8Array[];
    try {
      ders = text.includes('-----BEGIN CERTIFICATE-----') ? certificatesFromPem(text) : [new Uint8Array(bytes)];
    } catch (e) {
      throw new MyKeyError('config_invalid', `trust anchor ${path} holds a malformed PEM block`, { cause: e });
    }
    if (ders.length === 0) throw new MyKeyError('config_invalid', `trust anchor ${path} holds no certificate`);
    ders.forEach((der, i) => out.push(trustAnchorFromDer(der, ders.length > 1 ? `${path}#${i + 1}` : path)));
  }
  return out;
}
