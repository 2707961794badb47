// X.509 certificate parsing for the checks the hub makes (RFC 5280 4.1), without copying.
//
// Certificate  ::=  SEQUENCE  {
//      tbsCertificate       TBSCertificate,
//      signatureAlgorithm   AlgorithmIdentifier,
//      signatureValue       BIT STRING  }
// TBSCertificate  ::=  SEQUENCE  {
//      version         [0]  EXPLICIT Version DEFAULT v1,
//      serialNumber         CertificateSerialNumber,
//      signature            AlgorithmIdentifier,
//      issuer               Name,
//      validity             Validity,
//      subject              Name,
//      subjectPublicKeyInfo SubjectPublicKeyInfo,
//      issuerUniqueID  [1]  IMPLICIT UniqueIdentifier OPTIONAL,
//      subjectUniqueID [2]  IMPLICIT UniqueIdentifier OPTIONAL,
//      extensions      [3]  EXPLICIT Extensions OPTIONAL }
import { DerError, TAG, bytesEqual, bytesOf, children, expectTlv, readTlv, valueBytes, type Tlv } from '../../shared/asn1/der.ts';
import { serialHexOf } from '../../shared/asn1/integer.ts';
import { oidToString } from '../../shared/asn1/oid.ts';
import { pemBlocks } from '../../shared/asn1/pem.ts';
import { decodeTime } from '../../shared/asn1/time.ts';
import { fail, ok, type Result } from '../../shared/errors.ts';

/** RFC 5280 4.2.1.3 KeyUsage bit names, in bit order. */
export const KEY_USAGE_BITS = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'] as const;
export type KeyUsage = (typeof KEY_USAGE_BITS)[number];

export const OID = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  sha384WithRSAEncryption: '1.2.840.113549.1.1.12',
  sha512WithRSAEncryption: '1.2.840.113549.1.1.13',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  issuerAltName: '2.5.29.18',
  basicConstraints: '2.5.29.19',
  crlDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  commonName: '2.5.4.3',
} as const;

/** Extensions this hub understands; an unknown critical extension makes a certificate unusable (RFC 5280 4.2). */
const KNOWN_EXTENSIONS = new Set<string>([
  OID.subjectKeyIdentifier,
  OID.keyUsage,
  OID.subjectAltName,
  OID.issuerAltName,
  OID.basicConstraints,
  OID.crlDistributionPoints,
  OID.certificatePolicies,
  OID.authorityKeyIdentifier,
  OID.extKeyUsage,
  OID.authorityInfoAccess,
]);

/** A parsed certificate: views into the DER plus the decoded fields the checks need. */
export interface ParsedCertificate {
  der: Uint8Array;
  tbs: Uint8Array;
  serial: Uint8Array;
  /** Canonical lower-case hex of the serial (leading zero padding removed). */
  serialHex: string;
  issuerDer: Uint8Array;
  subjectDer: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  spkiDer: Uint8Array;
  publicKeyAlgorithmOid: string;
  /** For RSA keys: the RSAPublicKey (PKCS#1) DER inside the SPKI, and the modulus size in bits. */
  rsaPublicKeyDer?: Uint8Array;
  rsaModulusBits?: number;
  signatureAlgorithmOid: string;
  signature: Uint8Array;
  keyUsage?: Set<KeyUsage>;
  policies: string[];
  basicConstraintsCa: boolean;
  subjectKeyId?: Uint8Array;
  authorityKeyId?: Uint8Array;
  /** RFC 5280 4.2.1.12 extKeyUsage purposes (OIDs), when the extension is present. */
  extKeyUsage?: string[];
  /** OIDs of critical extensions this hub does not understand. */
  unknownCriticalExtensions: string[];
  /** Subject common name, when present (JPKI puts the opaque issuance serial there). */
  subjectCn?: string;
}

function parseAlgorithmOid(buf: Uint8Array, t: Tlv): string {
  if (t.tag !== TAG.SEQUENCE) throw new DerError('bad AlgorithmIdentifier', t.start);
  const seq = children(buf, t);
  if (seq.length < 1 || seq[0].tag !== TAG.OID) throw new DerError('bad AlgorithmIdentifier', t.start);
  return oidToString(buf, seq[0].valueStart, seq[0].end);
}

function bitStringBytes(buf: Uint8Array, t: Tlv): Uint8Array {
  if (t.tag !== TAG.BIT_STRING || t.end - t.valueStart < 1) throw new DerError('bad BIT STRING', t.start);
  // X.690 8.6.2.2: the first octet counts unused bits in the last octet.
  return buf.subarray(t.valueStart + 1, t.end);
}

function parseKeyUsage(buf: Uint8Array, octets: Tlv): Set<KeyUsage> {
  const bs = expectTlv(buf, octets.valueStart, TAG.BIT_STRING, octets.end, 'KeyUsage');
  const bytes = bitStringBytes(buf, bs);
  const out = new Set<KeyUsage>();
  KEY_USAGE_BITS.forEach((name, i) => {
    const byte = bytes[i >> 3];
    if (byte !== undefined && byte & (0x80 >> (i & 7))) out.add(name);
  });
  return out;
}

function parsePolicies(buf: Uint8Array, octets: Tlv): string[] {
  // certificatePolicies ::= SEQUENCE SIZE (1..MAX) OF PolicyInformation
  // PolicyInformation ::= SEQUENCE { policyIdentifier CertPolicyId, policyQualifiers ... OPTIONAL }
  const seq = expectTlv(buf, octets.valueStart, TAG.SEQUENCE, octets.end, 'certificatePolicies');
  return children(buf, seq).map((pi) => {
    const first = readTlv(buf, pi.valueStart, pi.end);
    if (pi.tag !== TAG.SEQUENCE || first.tag !== TAG.OID) throw new DerError('bad PolicyInformation', pi.start);
    return oidToString(buf, first.valueStart, first.end);
  });
}

function parseBasicConstraintsCa(buf: Uint8Array, octets: Tlv): boolean {
  const seq = expectTlv(buf, octets.valueStart, TAG.SEQUENCE, octets.end, 'BasicConstraints');
  if (seq.end === seq.valueStart) return false;
  const first = readTlv(buf, seq.valueStart, seq.end);
  return first.tag === TAG.BOOLEAN && buf[first.valueStart] !== 0;
}

function parseAuthorityKeyId(buf: Uint8Array, octets: Tlv): Uint8Array | undefined {
  const seq = expectTlv(buf, octets.valueStart, TAG.SEQUENCE, octets.end, 'AuthorityKeyIdentifier');
  for (const c of children(buf, seq)) if (c.tag === 0x80) return valueBytes(buf, c);
  return undefined;
}

function parseExtKeyUsage(buf: Uint8Array, octets: Tlv): string[] {
  // ExtKeyUsageSyntax ::= SEQUENCE SIZE (1..MAX) OF KeyPurposeId (OBJECT IDENTIFIER)
  const seq = expectTlv(buf, octets.valueStart, TAG.SEQUENCE, octets.end, 'ExtKeyUsageSyntax');
  return children(buf, seq).map((p) => {
    if (p.tag !== TAG.OID) throw new DerError('bad KeyPurposeId', p.start);
    return oidToString(buf, p.valueStart, p.end);
  });
}

function parseCommonName(buf: Uint8Array, name: Tlv): string | undefined {
  for (const rdn of children(buf, name)) {
    for (const atv of children(buf, rdn)) {
      const [type, value] = children(buf, atv);
      if (type && value && type.tag === TAG.OID && oidToString(buf, type.valueStart, type.end) === OID.commonName) {
        return Buffer.from(valueBytes(buf, value)).toString('utf8');
      }
    }
  }
  return undefined;
}

function parseRsaPublicKey(buf: Uint8Array, spki: Tlv): { der: Uint8Array; bits: number } {
  const [, bitString] = children(buf, spki);
  if (!bitString) throw new DerError('bad SubjectPublicKeyInfo', spki.start);
  const key = bitStringBytes(buf, bitString);
  // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 A.1.1)
  const seq = expectTlv(key, 0, TAG.SEQUENCE, key.length, 'RSAPublicKey');
  const mod = expectTlv(key, seq.valueStart, TAG.INTEGER, seq.end, 'modulus');
  let i = mod.valueStart;
  while (i < mod.end && key[i] === 0) i++;
  const bits = i < mod.end ? (mod.end - i - 1) * 8 + (32 - Math.clz32(key[i])) : 0;
  return { der: bytesOf(key, seq), bits };
}

/** Parses a DER certificate. Malformed input is a cert_malformed result with the offset. */
export function parseCertificate(der: Uint8Array): Result<ParsedCertificate, 'cert_malformed'> {
  try {
    return ok(parseCertificateOrThrow(der));
  } catch (e) {
    if (e instanceof DerError) return fail('cert_malformed', `certificate is not valid DER: ${e.message}`);
    // Input from outside never turns into a 500: a parser bug is still a malformed certificate here.
    // The fuzz test (test/hub/pki/fuzz.test.ts) calls parseCertificateOrThrow to catch such bugs.
    return fail('cert_malformed', 'certificate could not be parsed');
  }
}

/** Parses a DER certificate; every malformation throws DerError (anything else is a bug). */
export function parseCertificateOrThrow(der: Uint8Array): ParsedCertificate {
  const cert = expectTlv(der, 0, TAG.SEQUENCE, der.length, 'Certificate');
  if (cert.end !== der.length) throw new DerError('trailing bytes after the certificate', cert.end);
  const [tbsT, algT, sigT, ...rest] = children(der, cert);
  if (!tbsT || !algT || !sigT || rest.length) throw new DerError('Certificate must have 3 elements', cert.start);
  if (tbsT.tag !== TAG.SEQUENCE) throw new DerError('bad TBSCertificate', tbsT.start);
  const f = children(der, tbsT);
  let i = 0;
  if (f[i]?.tag === TAG.ctx(0)) i++; // version
  const [serialT, sigAlgT, issuerT, validityT, subjectT, spkiT] = f.slice(i, i + 6);
  if (!spkiT) throw new DerError('TBSCertificate is missing fields', tbsT.start);
  if (serialT.tag !== TAG.INTEGER || serialT.end === serialT.valueStart) throw new DerError('bad serialNumber', serialT.start);
  if (issuerT.tag !== TAG.SEQUENCE || subjectT.tag !== TAG.SEQUENCE) throw new DerError('bad Name', issuerT.start);
  if (validityT.tag !== TAG.SEQUENCE || spkiT.tag !== TAG.SEQUENCE) throw new DerError('bad Validity or SPKI', validityT.start);
  const [nb, na] = children(der, validityT);
  if (!nb || !na) throw new DerError('bad Validity', validityT.start);
  const innerAlg = parseAlgorithmOid(der, sigAlgT);
  const outerAlg = parseAlgorithmOid(der, algT);
  // RFC 5280 4.1.1.2: signatureAlgorithm "MUST contain the same algorithm identifier as the signature
  // field": the whole AlgorithmIdentifier, parameters included, so nothing outside the signed bytes
  // can be altered and still make a certificate with another fingerprint.
  if (innerAlg !== outerAlg || !bytesEqual(bytesOf(der, sigAlgT), bytesOf(der, algT))) {
    throw new DerError('signature algorithm mismatch between TBS and certificate', algT.start);
  }
  // X.690 8.6.2.2: a signature is a whole number of octets; unused bits would be unsigned malleability.
  if (sigT.tag === TAG.BIT_STRING && sigT.end > sigT.valueStart && der[sigT.valueStart] !== 0) throw new DerError('signature BIT STRING with unused bits', sigT.start);
  const [spkiAlgT] = children(der, spkiT);
  if (!spkiAlgT) throw new DerError('bad SubjectPublicKeyInfo', spkiT.start);
  const publicKeyAlgorithmOid = parseAlgorithmOid(der, spkiAlgT);
  const serial = valueBytes(der, serialT);

  const out: ParsedCertificate = {
    der,
    tbs: bytesOf(der, tbsT),
    serial,
    serialHex: serialHexOf(serial),
    issuerDer: bytesOf(der, issuerT),
    subjectDer: bytesOf(der, subjectT),
    notBefore: decodeTime(der, nb),
    notAfter: decodeTime(der, na),
    spkiDer: bytesOf(der, spkiT),
    publicKeyAlgorithmOid,
    signatureAlgorithmOid: outerAlg,
    signature: bitStringBytes(der, sigT),
    policies: [],
    basicConstraintsCa: false,
    unknownCriticalExtensions: [],
    subjectCn: parseCommonName(der, subjectT),
  };
  if (publicKeyAlgorithmOid === OID.rsaEncryption) {
    const k = parseRsaPublicKey(der, spkiT);
    out.rsaPublicKeyDer = k.der;
    out.rsaModulusBits = k.bits;
  }
  const extsT = f.slice(i + 6).find((t) => t.tag === TAG.ctx(3));
  if (extsT) {
    const seq = expectTlv(der, extsT.valueStart, TAG.SEQUENCE, extsT.end, 'Extensions');
    const seen = new Set<string>();
    for (const ext of children(der, seq)) {
      // Extension ::= SEQUENCE { extnID OBJECT IDENTIFIER, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
      if (ext.tag !== TAG.SEQUENCE) throw new DerError('bad Extension', ext.start);
      const parts = children(der, ext);
      if (parts.length < 2 || parts.length > 3 || parts[0].tag !== TAG.OID) throw new DerError('bad Extension', ext.start);
      if (parts.length === 3 && (parts[1].tag !== TAG.BOOLEAN || parts[1].end - parts[1].valueStart !== 1)) throw new DerError('bad Extension critical flag', parts[1].start);
      const oid = oidToString(der, parts[0].valueStart, parts[0].end);
      // RFC 5280 4.2: a certificate must not include more than one instance of an extension.
      if (seen.has(oid)) throw new DerError(`duplicate extension ${oid}`, ext.start);
      seen.add(oid);
      const critical = parts.length === 3 && parts[1].tag === TAG.BOOLEAN && der[parts[1].valueStart] !== 0;
      const octets = parts[parts.length - 1];
      if (octets.tag !== TAG.OCTET_STRING) throw new DerError('bad extnValue', octets.start);
      switch (oid) {
        case OID.keyUsage:
          out.keyUsage = parseKeyUsage(der, octets);
          break;
        case OID.certificatePolicies:
          out.policies = parsePolicies(der, octets);
          break;
        case OID.basicConstraints:
          out.basicConstraintsCa = parseBasicConstraintsCa(der, octets);
          break;
        case OID.subjectKeyIdentifier:
          out.subjectKeyId = valueBytes(der, expectTlv(der, octets.valueStart, TAG.OCTET_STRING, octets.end, 'SKI'));
          break;
        case OID.authorityKeyIdentifier:
          out.authorityKeyId = parseAuthorityKeyId(der, octets);
          break;
        case OID.extKeyUsage:
          out.extKeyUsage = parseExtKeyUsage(der, octets);
          break;
        default:
          if (critical && !KNOWN_EXTENSIONS.has(oid)) out.unknownCriticalExtensions.push(oid);
      }
    }
  }
  return out;
}

/** Node's digest name for a signature algorithm OID, or undefined when the hub does not accept it. */
export function digestForSignatureOid(oid: string): 'sha256' | 'sha384' | 'sha512' | undefined {
  switch (oid) {
    case OID.sha256WithRSAEncryption:
    case OID.ecdsaWithSHA256:
      return 'sha256';
    case OID.sha384WithRSAEncryption:
    case OID.ecdsaWithSHA384:
      return 'sha384';
    case OID.sha512WithRSAEncryption:
      return 'sha512';
    default:
      return undefined;
  }
}

/** Splits a PEM bundle into DER certificates; throws DerError on a malformed block. */
export function certificatesFromPem(text: string): Uint8Array[] {
  return pemBlocks(text, 'CERTIFICATE');
}
