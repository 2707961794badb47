// A JPKI-like test CA: a self-signed CA and user-authentication / signing certificates with the
// profile of ../../shared/CARD.md, built with PKI.js over WebCrypto. For tests, the virtual card and
// the dev hub only; nothing here is a production CA (keys are extractable on purpose).
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { createHash, randomBytes } from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import { JPKI_AUTH_CA_DN, JPKI_AUTH_POLICY_OID, JPKI_SIGN_POLICY_OID } from '../../shared/card.ts';
import { generateRsaKeyPair, type CryptoKeyPair } from './keys.ts';
import { integerBytes, randomSerial, serialToHex } from './encoding.ts';

// Keys and encodings live beside this file; importers of the CA find them here too.
export * from './keys.ts';
export * from './encoding.ts';

const subtle: webcrypto.SubtleCrypto = globalThis.crypto.subtle;

/** OIDs this CA writes (RFC 5280 4.2.1, X.520). */
export const OID = {
  countryName: '2.5.4.6',
  organizationName: '2.5.4.10',
  organizationalUnitName: '2.5.4.11',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  issuerAltName: '2.5.29.18',
  basicConstraints: '2.5.29.19',
  crlNumber: '2.5.29.20',
  crlReason: '2.5.29.21',
  cRLDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  ocspSigning: '1.3.6.1.5.5.7.3.9',
  ocspNoCheck: '1.3.6.1.5.5.7.48.1.5',
  ocspNonce: '1.3.6.1.5.5.7.48.1.2',
} as const;

/** The issuer alternative name JPKI certificates carry: directoryName C=JP, O=公的個人認証サービス. */
export const JPKI_ISSUER_ALT_NAME: ReadonlyArray<readonly [string, string]> = [
  ['C', 'JP'],
  ['O', '公的個人認証サービス'],
];

export interface TestCa {
  /** A label for logs and file names, e.g. 'jpki-auth'. */
  label: string;
  /** The self-signed CA certificate (DER). */
  certDer: Uint8Array;
  /** DER of the CA subject Name (= issuer Name of its certificates and CRLs). */
  nameDer: Uint8Array;
  /** RSA-2048, RSASSA-PKCS1-v1_5 / SHA-256, extractable. */
  keyPair: CryptoKeyPair;
  /** The CA's subject key identifier (RFC 5280 4.2.1.2 method 1: SHA-1 of the public key bits). */
  subjectKeyId: Uint8Array;
}

export interface IssuedCert {
  certDer: Uint8Array;
  serial: bigint;
  /** The serial as lowercase hex, even length, no sign byte (see serialToHex). */
  serialHex: string;
  keyPair: CryptoKeyPair;
  cn: string;
  notBefore: Date;
  notAfter: Date;
}

export type KeyUsageName = 'digitalSignature' | 'nonRepudiation' | 'keyEncipherment' | 'keyCertSign';

export interface IssueOptions {
  keyPair?: CryptoKeyPair;
  serial?: bigint;
  cn?: string;
  notBefore?: Date;
  notAfter?: Date;
  // Overrides for negative tests:
  /** Key usage bits instead of the profile's. */
  keyUsage?: KeyUsageName[];
  /** Policy OID instead of the profile's; null leaves certificatePolicies out. */
  policyOid?: string | null;
  /** Key size of a generated key pair (ignored when keyPair is given). */
  modulusBits?: 1024 | 2048;
}

// RFC 5280 4.2.1.3: KeyUsage bit positions.
const KEY_USAGE_BIT = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

const ATTR_OID: Record<string, string> = { C: OID.countryName, O: OID.organizationName, OU: OID.organizationalUnitName, CN: OID.commonName };

/**
 * A Name from (type, value) pairs, one attribute per RDN in order. C is PrintableString (RFC 5280
 * appendix A); other values are PrintableString when they fit it, UTF8String otherwise.
 */
export function buildName(rdns: ReadonlyArray<readonly [string, string]>): pkijs.RelativeDistinguishedNames {
  // PKI.js would put every attribute into one multi-valued RDN, so the SEQUENCE OF SET is built
  // here and parsed back; PKI.js then re-emits exactly these bytes.
  const seq = new asn1js.Sequence({
    value: rdns.map(([t, v]) => {
      const type = ATTR_OID[t];
      if (!type) throw new TypeError(`unsupported attribute ${t}`);
      const printable = /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(v);
      const value = printable ? new asn1js.PrintableString({ value: v }) : new asn1js.Utf8String({ value: v });
      return new asn1js.Set({ value: [new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: type }), value] })] });
    }),
  });
  return pkijs.RelativeDistinguishedNames.fromBER(seq.toBER(false));
}

/** The DN of the test CA: the JPKI user-authentication CA's, with `ouSuffix` appended to its first OU. */
export function testCaDn(ouSuffix = ''): Array<[string, string]> {
  let firstOu = true;
  return JPKI_AUTH_CA_DN.map(([t, v]) => {
    if (t === 'OU' && firstOu) {
      firstOu = false;
      return [t, v + ouSuffix];
    }
    return [t, v];
  });
}

function toArrayBuffer(u: Uint8Array): ArrayBuffer {
  return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
}

/** Drops milliseconds: certificate times have whole seconds, and DER GeneralizedTime must not carry zero fractions. */
function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
export function certTime(d: Date): pkijs.Time {
  const value = wholeSeconds(d);
  return new pkijs.Time({ type: value.getUTCFullYear() < 2050 ? 0 : 1, value });
}

function keyUsageBitString(names: ReadonlyArray<keyof typeof KEY_USAGE_BIT>): asn1js.BitString {
  let byte = 0;
  let highest = -1;
  for (const n of names) {
    const bit = KEY_USAGE_BIT[n];
    byte |= 0x80 >> bit;
    highest = Math.max(highest, bit);
  }
  // DER (X.690 11.2.2): named bit lists drop trailing zero bits.
  if (highest < 0) return new asn1js.BitString({ valueHex: new ArrayBuffer(0), unusedBits: 0 });
  return new asn1js.BitString({ valueHex: Uint8Array.from([byte]).buffer, unusedBits: 7 - highest });
}

function ext(extnID: string, critical: boolean, value: { toSchema(): asn1js.AsnType } | asn1js.AsnType): pkijs.Extension {
  const asn = 'toSchema' in value && typeof value.toSchema === 'function' ? value.toSchema() : (value as asn1js.AsnType);
  return new pkijs.Extension({ extnID, critical, extnValue: asn.toBER(false) });
}

function directoryNameGeneralName(name: pkijs.RelativeDistinguishedNames): pkijs.GeneralName {
  return new pkijs.GeneralName({ type: 4, value: name });
}

/** The CRL distribution point JPKI uses: a directoryName equal to the CA's own DN. */
function crlDpExtension(caName: pkijs.RelativeDistinguishedNames): pkijs.Extension {
  return ext(
    OID.cRLDistributionPoints,
    false,
    new pkijs.CRLDistributionPoints({
      distributionPoints: [new pkijs.DistributionPoint({ distributionPoint: [directoryNameGeneralName(caName)] })],
    }),
  );
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 over the subjectPublicKey BIT STRING value. */
export function keyIdOf(spki: pkijs.PublicKeyInfo): Uint8Array {
  return new Uint8Array(createHash('sha1').update(spki.subjectPublicKey.valueBlock.valueHexView).digest());
}

function parseName(der: Uint8Array): pkijs.RelativeDistinguishedNames {
  return pkijs.RelativeDistinguishedNames.fromBER(toArrayBuffer(der));
}

/** Creates a self-signed JPKI-like CA (RFC 5280 profile of CARD.md). */
export async function createTestCa(opts: { label?: string; ouSuffix?: string; notBefore?: Date; notAfter?: Date; keyPair?: CryptoKeyPair; nameDer?: Uint8Array } = {}): Promise<TestCa> {
  const label = opts.label ?? 'jpki-auth';
  const keyPair = opts.keyPair ?? (await generateRsaKeyPair(2048));
  const notBefore = opts.notBefore ?? new Date(Date.now() - 24 * 3600_000);
  const notAfter = opts.notAfter ?? new Date(notBefore.getTime() + 20 * 365.25 * 24 * 3600_000);
  const name = opts.nameDer ? parseName(opts.nameDer) : buildName(testCaDn(opts.ouSuffix));

  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ valueHex: toArrayBuffer(integerBytes(randomSerial())) });
  cert.issuer = name;
  cert.subject = name;
  cert.notBefore = certTime(notBefore);
  cert.notAfter = certTime(notAfter);
  await cert.subjectPublicKeyInfo.importKey(keyPair.publicKey);
  const ski = keyIdOf(cert.subjectPublicKeyInfo);
  cert.extensions = [
    ext(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: true })),
    ext(OID.keyUsage, true, keyUsageBitString(['keyCertSign', 'cRLSign'])),
    ext(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: toArrayBuffer(ski) })),
    crlDpExtension(name),
  ];
  await cert.sign(keyPair.privateKey, 'SHA-256');
  return {
    label,
    certDer: new Uint8Array(cert.toSchema(true).toBER(false)),
    nameDer: new Uint8Array(name.toSchema().toBER(false)),
    keyPair,
    subjectKeyId: ski,
  };
}

/**
 * A CA key rollover: a new self-signed CA certificate with a fresh key under exactly the same subject
 * Name bytes as `ca`. Both stay live (as JPKI's do while old certificates run out); certificates and
 * CRLs of each are told apart only by key (authorityKeyIdentifier, signature).
 */
export async function rollOverTestCa(ca: TestCa, opts: { label?: string; keyPair?: CryptoKeyPair } = {}): Promise<TestCa> {
  const next = await createTestCa({ label: opts.label ?? `${ca.label}-next`, keyPair: opts.keyPair, nameDer: ca.nameDer });
  if (Buffer.compare(Buffer.from(next.nameDer), Buffer.from(ca.nameDer)) !== 0) throw new Error('rolled-over CA name differs');
  return next;
}

interface Profile {
  cnPrefix: string;
  keyUsage: Array<keyof typeof KEY_USAGE_BIT>;
  policyOid: string | null;
  /** Extra extensions after the profile's (e.g. extKeyUsage of an OCSP responder). */
  extra?: pkijs.Extension[];
  /** Leave out issuerAltName and the CRL DP (OCSP responder certificates). */
  bare?: boolean;
}

const FIVE_YEARS_MS = 5 * 365.25 * 24 * 3600_000;

/** Issues an end-entity certificate under `ca` with a profile; the common path of the issue* functions. */
export async function issueWithProfile(ca: TestCa, profile: Profile, opts: IssueOptions = {}): Promise<IssuedCert> {
  const keyPair = opts.keyPair ?? (await generateRsaKeyPair(opts.modulusBits ?? 2048));
  const serial = opts.serial ?? randomSerial();
  if (serial <= 0n) throw new RangeError('serial must be positive');
  const cn = opts.cn ?? `${profile.cnPrefix}${randomBytes(8).toString('hex').toUpperCase()}`;
  const notBefore = wholeSeconds(opts.notBefore ?? new Date(Date.now() - 3600_000));
  const notAfter = wholeSeconds(opts.notAfter ?? new Date(notBefore.getTime() + FIVE_YEARS_MS));
  const caName = parseName(ca.nameDer);

  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ valueHex: toArrayBuffer(integerBytes(serial)) });
  cert.issuer = caName;
  cert.subject = buildName([
    ['C', 'JP'],
    ['CN', cn],
  ]);
  cert.notBefore = certTime(notBefore);
  cert.notAfter = certTime(notAfter);
  await cert.subjectPublicKeyInfo.importKey(keyPair.publicKey);

  const keyUsage = opts.keyUsage ?? profile.keyUsage;
  const policyOid = opts.policyOid === undefined ? profile.policyOid : opts.policyOid;
  const extensions = [ext(OID.keyUsage, true, keyUsageBitString(keyUsage))];
  if (policyOid !== null) {
    extensions.push(ext(OID.certificatePolicies, false, new pkijs.CertificatePolicies({ certificatePolicies: [new pkijs.PolicyInformation({ policyIdentifier: policyOid })] })));
  }
  if (!profile.bare) {
    extensions.push(ext(OID.issuerAltName, false, new pkijs.AltName({ altNames: [directoryNameGeneralName(buildName(JPKI_ISSUER_ALT_NAME))] })), crlDpExtension(caName));
  }
  extensions.push(
    ext(OID.authorityKeyIdentifier, false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: toArrayBuffer(ca.subjectKeyId) }) })),
    ...(profile.extra ?? []),
  );
  cert.extensions = extensions;
  await cert.sign(ca.keyPair.privateKey, 'SHA-256');
  return {
    certDer: new Uint8Array(cert.toSchema(true).toBER(false)),
    serial,
    serialHex: serialToHex(serial),
    keyPair,
    cn,
    notBefore,
    notAfter,
  };
}

/** A JPKI user-authentication certificate: digitalSignature only, policy 1.2.392.200149.8.5.1.3.30. */
export async function issueUserAuthCert(ca: TestCa, opts: IssueOptions = {}): Promise<IssuedCert> {
  return issueWithProfile(ca, { cnPrefix: 'JPKI-AUTH-', keyUsage: ['digitalSignature'], policyOid: JPKI_AUTH_POLICY_OID }, opts);
}

/** A JPKI signing certificate: nonRepudiation, policy 1.2.392.200149.8.5.1.1.20 (subject kept opaque here). */
export async function issueSigningCert(ca: TestCa, opts: IssueOptions = {}): Promise<IssuedCert> {
  return issueWithProfile(ca, { cnPrefix: 'JPKI-SIGN-', keyUsage: ['nonRepudiation'], policyOid: JPKI_SIGN_POLICY_OID }, opts);
}

/**
 * A delegated OCSP responder certificate (RFC 6960 4.2.2.2): issued by the CA, extKeyUsage
 * id-kp-OCSPSigning, and id-pkix-ocsp-nocheck so clients do not check its own status.
 */
export async function issueOcspResponderCert(ca: TestCa, opts: IssueOptions = {}): Promise<IssuedCert> {
  return issueWithProfile(
    ca,
    {
      cnPrefix: 'JPKI-OCSP-',
      keyUsage: ['digitalSignature'],
      policyOid: null,
      bare: true,
      extra: [ext(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID.ocspSigning] })), ext(OID.ocspNoCheck, false, new asn1js.Null())],
    },
    { notAfter: new Date(Date.now() + 365 * 24 * 3600_000), ...opts },
  );
}

/**
 * Rebuilds a TestCa from its certificate and private key (as kept on disk). The certificate is
 * checked to carry the key's public half.
 */
export async function testCaFromParts(label: string, certDer: Uint8Array, keyPair: CryptoKeyPair): Promise<TestCa> {
  const cert = pkijs.Certificate.fromBER(toArrayBuffer(certDer));
  const spki = new Uint8Array(await subtle.exportKey('spki', keyPair.publicKey));
  const certSpki = new Uint8Array(cert.subjectPublicKeyInfo.toSchema().toBER(false));
  if (Buffer.compare(Buffer.from(spki), Buffer.from(certSpki)) !== 0) throw new Error('CA certificate does not match its private key');
  const skiExt = cert.extensions?.find((e) => e.extnID === OID.subjectKeyIdentifier);
  const ski = skiExt ? new Uint8Array((asn1js.fromBER(skiExt.extnValue.valueBlock.valueHexView).result as asn1js.OctetString).valueBlock.valueHexView) : keyIdOf(cert.subjectPublicKeyInfo);
  return { label, certDer, nameDer: new Uint8Array(cert.subject.toSchema().toBER(false)), keyPair, subjectKeyId: ski };
}
