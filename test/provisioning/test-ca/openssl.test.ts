import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate, createPrivateKey, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { JPKI_AUTH_POLICY_OID, JPKI_SIGN_POLICY_OID } from '../../../shared/card.ts';
import { crlReasonFromCode } from '../../../shared/revocation.ts';
import { OID, createTestCa, integerValue, parseSerialHex } from '../../../provisioning/test-ca/ca.ts';
import {
  opensslCreateCa,
  opensslGenCrl,
  opensslGenRsaKey,
  opensslIssueCert,
  opensslIssueUserAuthCert,
  opensslRevoke,
  type OpensslCa,
  type OpensslCert,
} from '../../../provisioning/test-ca/openssl.ts';

const tmp = mkdtempSync(join(tmpdir(), 'test-ca-openssl-'));
let userKeyPem: string;
let ca: OpensslCa;
let auth: OpensslCert;

test.before(async () => {
  userKeyPem = await opensslGenRsaKey();
  ca = await opensslCreateCa(join(tmp, 'ca'));
  auth = await opensslIssueUserAuthCert(ca, { keyPem: userKeyPem });
});
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const parse = (der: Uint8Array) => pkijs.Certificate.fromBER(der.slice().buffer);
const extOf = (c: pkijs.Certificate, oid: string) => c.extensions?.find((e) => e.extnID === oid);

test('the OpenSSL CA has byte-for-byte the DN of a test CA and the CA profile', async () => {
  const testCa = await createTestCa();
  assert.equal(ca.nameDer, testCa.nameDer);
  const c = parse(ca.certDer);
  assert.ok(await c.verify());
  assert.ok(extOf(c, OID.basicConstraints)!.critical);
  assert.ok((extOf(c, OID.basicConstraints)!.parsedValue as pkijs.BasicConstraints).cA);
  assert.ok(extOf(c, OID.keyUsage)!.critical);
  assert.ok(extOf(c, OID.subjectKeyIdentifier));
  const dp = extOf(c, OID.cRLDistributionPoints)!.parsedValue as pkijs.CRLDistributionPoints;
  const dn = (dp.distributionPoints[0].distributionPoint as pkijs.GeneralName[])[0].value as pkijs.RelativeDistinguishedNames;
  assert.equal(new Uint8Array(dn.toSchema().toBER(false)), ca.nameDer);
  assert.ok(new X509Certificate(ca.certDer).ca);
});

test('an OpenSSL user-authentication certificate parses with PKI.js and node and has the JPKI profile', async () => {
  const c = parse(auth.certDer);
  assert.is(integerValue(c.serialNumber), auth.serial);
  assert.ok(await c.verify(parse(ca.certDer)));
  assert.ok(extOf(c, OID.keyUsage)!.critical);
  const ku = extOf(c, OID.keyUsage)!.parsedValue as asn1js.BitString;
  assert.equal([...ku.valueBlock.valueHexView], [0x80]);
  assert.is((extOf(c, OID.certificatePolicies)!.parsedValue as pkijs.CertificatePolicies).certificatePolicies[0].policyIdentifier, JPKI_AUTH_POLICY_OID);
  const ian = (extOf(c, OID.issuerAltName)!.parsedValue as pkijs.AltName).altNames[0].value as pkijs.RelativeDistinguishedNames;
  assert.is(ian.typesAndValues[1].value.valueBlock.value, '公的個人認証サービス');
  assert.ok(extOf(c, OID.authorityKeyIdentifier));
  assert.is(extOf(c, OID.subjectKeyIdentifier), undefined);

  const x = new X509Certificate(auth.certDer);
  assert.is(x.subject, `C=JP\nCN=${auth.cn}`);
  assert.ok(x.checkIssued(new X509Certificate(ca.certDer)));
  assert.ok(x.verify(new X509Certificate(ca.certDer).publicKey));
  assert.is(x.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  // Its key signs like the card does.
  const msg = Buffer.from('challenge');
  const sig = nodeSign('sha256', msg, createPrivateKey(auth.keyPem));
  assert.ok(nodeVerify('sha256', msg, x.publicKey, sig));
});

test('an OpenSSL signing certificate has nonRepudiation and the signing policy', async () => {
  const s = await opensslIssueCert(ca, { profile: 'sign', keyPem: userKeyPem });
  const c = parse(s.certDer);
  assert.equal([...(extOf(c, OID.keyUsage)!.parsedValue as asn1js.BitString).valueBlock.valueHexView], [0x40]);
  assert.is((extOf(c, OID.certificatePolicies)!.parsedValue as pkijs.CertificatePolicies).certificatePolicies[0].policyIdentifier, JPKI_SIGN_POLICY_OID);
});

test('a given serial and validity are used', async () => {
  const notBefore = new Date('2026-01-01T00:00:00Z');
  const notAfter = new Date('2031-01-01T00:00:00Z');
  const c = await opensslIssueUserAuthCert(ca, { keyPem: userKeyPem, serial: 0x1234567890abcdefn, notBefore, notAfter, cn: 'JPKI-AUTH-OSSL' });
  const x = new X509Certificate(c.certDer);
  assert.is(x.serialNumber.toLowerCase(), '1234567890abcdef');
  assert.is(new Date(x.validFrom).toISOString(), notBefore.toISOString());
  assert.is(new Date(x.validTo).toISOString(), notAfter.toISOString());
  assert.is(c.cn, 'JPKI-AUTH-OSSL');
});

test('an OpenSSL CRL lists revoked serials with their reasons and verifies with PKI.js', async () => {
  const crlCa = await opensslCreateCa(join(tmp, 'crl-ca'), { keyPem: ca.keyPem });
  const a = await opensslIssueUserAuthCert(crlCa, { keyPem: userKeyPem });
  const b = await opensslIssueUserAuthCert(crlCa, { keyPem: userKeyPem });
  const at = new Date('2026-03-04T05:06:07Z');
  opensslRevoke(crlCa, a.serialHex, 'keyCompromise', at);
  opensslRevoke(crlCa, b.serialHex, 'superseded');
  opensslRevoke(crlCa, '0a0b', 'cACompromise'); // never issued by this CA: still listed
  const der = await opensslGenCrl(crlCa);
  const crl = pkijs.CertificateRevocationList.fromBER(der.slice().buffer);
  assert.ok(await crl.verify({ issuerCertificate: parse(crlCa.certDer) }));
  assert.equal(new Uint8Array(crl.issuer.toSchema().toBER(false)), crlCa.nameDer);
  const got = new Map<bigint, { reason?: string; at: Date }>();
  for (const e of crl.revokedCertificates ?? []) {
    const reasonExt = e.crlEntryExtensions?.extensions.find((x) => x.extnID === OID.crlReason);
    const code = reasonExt ? (asn1js.fromBER(reasonExt.extnValue.valueBlock.valueHexView).result as asn1js.Enumerated).valueBlock.valueDec : undefined;
    got.set(integerValue(e.userCertificate), { reason: code === undefined ? undefined : crlReasonFromCode(code), at: e.revocationDate.value });
  }
  assert.is(got.size, 3);
  assert.is(got.get(a.serial)?.reason, 'keyCompromise');
  assert.is(got.get(a.serial)?.at.toISOString(), at.toISOString());
  assert.is(got.get(b.serial)?.reason, 'superseded');
  assert.is(got.get(parseSerialHex('0a0b')!)?.reason, 'cACompromise');
  const number = crl.crlExtensions?.extensions.find((x) => x.extnID === OID.crlNumber);
  assert.ok(number, 'CRL number present');
  // A second CRL gets the next number.
  const next = pkijs.CertificateRevocationList.fromBER((await opensslGenCrl(crlCa)).slice().buffer);
  const n1 = integerValue(asn1js.fromBER(number!.extnValue.valueBlock.valueHexView).result as asn1js.Integer);
  const n2Ext = next.crlExtensions!.extensions.find((x) => x.extnID === OID.crlNumber)!;
  assert.is(integerValue(asn1js.fromBER(n2Ext.extnValue.valueBlock.valueHexView).result as asn1js.Integer), n1 + 1n);
});

test('a reason openssl ca cannot write is refused up front', () => {
  assert.throws(() => opensslRevoke(ca, '01', 'privilegeWithdrawn'), /cannot write/);
  assert.throws(() => opensslRevoke(ca, 'zz', 'keyCompromise'), /positive hex/);
});

test.run();
