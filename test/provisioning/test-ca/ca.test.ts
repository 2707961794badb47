import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate, createHash, verify as nodeVerify } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { JPKI_AUTH_POLICY_OID, JPKI_SIGN_POLICY_OID, SHA256_DIGEST_INFO_PREFIX } from '../../../shared/card.ts';
import {
  OID,
  createTestCa,
  fromPem,
  generateRsaKeyPair,
  integerValue,
  issueOcspResponderCert,
  issueSigningCert,
  issueUserAuthCert,
  parseSerialHex,
  serialToHex,
  signDigestInfo,
  signLikeCard,
  toPem,
  type CryptoKeyPair,
  type TestCa,
} from '../../../provisioning/test-ca/ca.ts';

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'test-ca-'));
let kp: CryptoKeyPair;
let ca: TestCa;

test.before(async () => {
  // One key pair serves wherever the key itself is not under test (RSA keygen is slow-ish).
  kp = await generateRsaKeyPair();
  ca = await createTestCa({ keyPair: kp });
});
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const buf = (u: Uint8Array) => u.slice().buffer;
const parse = (der: Uint8Array) => pkijs.Certificate.fromBER(buf(der));
const extOf = (c: pkijs.Certificate, oid: string) => c.extensions?.find((e) => e.extnID === oid);
const dnOf = (n: pkijs.RelativeDistinguishedNames) => n.typesAndValues.map((tv) => `${tv.type}=${tv.value.valueBlock.value}`);
const keyUsageBits = (c: pkijs.Certificate): string => {
  const bs = extOf(c, OID.keyUsage)!.parsedValue as asn1js.BitString;
  const bytes = bs.valueBlock.valueHexView;
  let bits = '';
  for (const b of bytes) bits += b.toString(2).padStart(8, '0');
  return bits.slice(0, bits.length - bs.valueBlock.unusedBits);
};

const CA_DN = ['2.5.4.6=JP', '2.5.4.10=JPKI', '2.5.4.11=JPKI for user authentication', '2.5.4.11=Japan Agency for Local Authority Information Systems'];

test('the CA certificate is self-signed with the JPKI CA DN, CA:TRUE and keyCertSign+cRLSign, both critical', async () => {
  const c = parse(ca.certDer);
  assert.equal(dnOf(c.subject), CA_DN);
  assert.equal(dnOf(c.issuer), CA_DN);
  // Each attribute is its own RDN (four SETs), as `openssl` prints with commas.
  assert.is(c.subject.toSchema().valueBlock.value.length, 4);
  assert.ok(await c.verify());
  const bc = extOf(c, OID.basicConstraints)!;
  assert.ok(bc.critical);
  assert.ok((bc.parsedValue as pkijs.BasicConstraints).cA);
  assert.ok(extOf(c, OID.keyUsage)!.critical);
  assert.is(keyUsageBits(c), '0000011');
  const ski = (extOf(c, OID.subjectKeyIdentifier)!.parsedValue as asn1js.OctetString).valueBlock.valueHexView;
  assert.equal(new Uint8Array(ski), ca.subjectKeyId);
  assert.equal(new Uint8Array(c.subject.toSchema().toBER(false)), ca.nameDer);

  const x = new X509Certificate(ca.certDer);
  assert.ok(x.ca);
  assert.ok(x.checkIssued(x));
  assert.ok(x.verify(x.publicKey));
  assert.is(x.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
});

test('the CA names its own DN as the CRL distribution point (directoryName)', () => {
  const c = parse(ca.certDer);
  const dp = extOf(c, OID.cRLDistributionPoints)!.parsedValue as pkijs.CRLDistributionPoints;
  const names = dp.distributionPoints[0].distributionPoint as pkijs.GeneralName[];
  assert.is(names[0].type, 4);
  assert.equal(new Uint8Array((names[0].value as pkijs.RelativeDistinguishedNames).toSchema().toBER(false)), ca.nameDer);
});

test('a user-authentication certificate has the JPKI profile', async () => {
  const u = await issueUserAuthCert(ca, { keyPair: kp });
  const c = parse(u.certDer);
  assert.is(c.version, 2);
  assert.equal(dnOf(c.issuer), CA_DN);
  assert.equal(dnOf(c.subject), ['2.5.4.6=JP', `2.5.4.3=${u.cn}`]);
  assert.match(u.cn, /^JPKI-AUTH-[0-9A-F]{16}$/);
  assert.is(c.signatureAlgorithm.algorithmId, '1.2.840.113549.1.1.11'); // sha256WithRSAEncryption
  assert.ok(await c.verify(parse(ca.certDer)));

  const ku = extOf(c, OID.keyUsage)!;
  assert.ok(ku.critical);
  assert.is(keyUsageBits(c), '1'); // digitalSignature only

  const pol = extOf(c, OID.certificatePolicies)!.parsedValue as pkijs.CertificatePolicies;
  assert.equal(
    pol.certificatePolicies.map((p) => p.policyIdentifier),
    [JPKI_AUTH_POLICY_OID],
  );

  const ian = extOf(c, OID.issuerAltName)!.parsedValue as pkijs.AltName;
  assert.is(ian.altNames[0].type, 4);
  const ianName = ian.altNames[0].value as pkijs.RelativeDistinguishedNames;
  assert.equal(dnOf(ianName), ['2.5.4.6=JP', '2.5.4.10=公的個人認証サービス']);
  assert.instance(ianName.typesAndValues[1].value, asn1js.Utf8String);

  const aki = extOf(c, OID.authorityKeyIdentifier)!.parsedValue as pkijs.AuthorityKeyIdentifier;
  assert.equal(new Uint8Array(aki.keyIdentifier!.valueBlock.valueHexView), ca.subjectKeyId);

  const dp = extOf(c, OID.cRLDistributionPoints)!.parsedValue as pkijs.CRLDistributionPoints;
  const dpName = (dp.distributionPoints[0].distributionPoint as pkijs.GeneralName[])[0].value as pkijs.RelativeDistinguishedNames;
  assert.equal(new Uint8Array(dpName.toSchema().toBER(false)), ca.nameDer);

  const x = new X509Certificate(u.certDer);
  assert.not.ok(x.ca);
  assert.ok(x.checkIssued(new X509Certificate(ca.certDer)));
  assert.ok(x.verify(new X509Certificate(ca.certDer).publicKey));
  assert.is(x.subject, `C=JP\nCN=${u.cn}`);
  assert.is(x.serialNumber.toLowerCase().replace(/^0+/, ''), u.serialHex.replace(/^0+/, ''));
  assert.is(x.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  assert.is(x.publicKey.asymmetricKeyDetails?.publicExponent, 65537n);
  assert.is(new Date(x.validFrom).getTime(), u.notBefore.getTime());
  assert.is(new Date(x.validTo).getTime(), u.notAfter.getTime());
  const years = (u.notAfter.getTime() - u.notBefore.getTime()) / (365.25 * 86400_000);
  assert.ok(years > 4.9 && years < 5.1, `valid ${years} years`);
});

test('serials are positive, 8 to 16 bytes, and match the certificate', async () => {
  for (let i = 0; i < 4; i++) {
    const u = await issueUserAuthCert(ca, { keyPair: kp });
    const raw = parse(u.certDer).serialNumber.valueBlock.valueHexView;
    assert.ok(raw.length >= 8 && raw.length <= 16, `length ${raw.length}`);
    assert.ok(raw[0] > 0 && raw[0] < 0x80);
    assert.is(integerValue(parse(u.certDer).serialNumber), u.serial);
    assert.is(parseSerialHex(u.serialHex), u.serial);
  }
});

test('a given serial, CN and validity are used as they are', async () => {
  const notBefore = new Date('2030-01-01T00:00:00Z');
  const notAfter = new Date('2055-06-01T12:00:00Z'); // after 2049: GeneralizedTime (RFC 5280 4.1.2.5)
  const u = await issueUserAuthCert(ca, { keyPair: kp, serial: 0x80n, cn: 'JPKI-AUTH-FIXED', notBefore, notAfter });
  const c = parse(u.certDer);
  assert.is(u.serialHex, '80');
  assert.equal([...c.serialNumber.valueBlock.valueHexView], [0x00, 0x80]); // sign byte keeps it positive
  assert.is(u.cn, 'JPKI-AUTH-FIXED');
  assert.is(c.notAfter.type, 1);
  assert.is(c.notBefore.type, 0);
  const x = new X509Certificate(u.certDer);
  assert.is(new Date(x.validTo).toISOString(), notAfter.toISOString());
});

test('overrides make the certificates negative tests need', async () => {
  const ku = await issueUserAuthCert(ca, { keyPair: kp, keyUsage: ['digitalSignature', 'keyEncipherment'] });
  assert.is(keyUsageBits(parse(ku.certDer)), '101');
  const noPolicy = await issueUserAuthCert(ca, { keyPair: kp, policyOid: null });
  assert.is(extOf(parse(noPolicy.certDer), OID.certificatePolicies), undefined);
  const otherPolicy = await issueUserAuthCert(ca, { keyPair: kp, policyOid: '1.2.3.4' });
  assert.is((extOf(parse(otherPolicy.certDer), OID.certificatePolicies)!.parsedValue as pkijs.CertificatePolicies).certificatePolicies[0].policyIdentifier, '1.2.3.4');
  const small = await issueUserAuthCert(ca, { modulusBits: 1024 });
  assert.is(new X509Certificate(small.certDer).publicKey.asymmetricKeyDetails?.modulusLength, 1024);
});

test('a signing certificate carries nonRepudiation and the signing policy', async () => {
  const s = await issueSigningCert(ca, { keyPair: kp });
  const c = parse(s.certDer);
  assert.is(keyUsageBits(c), '01');
  assert.ok(extOf(c, OID.keyUsage)!.critical);
  assert.is((extOf(c, OID.certificatePolicies)!.parsedValue as pkijs.CertificatePolicies).certificatePolicies[0].policyIdentifier, JPKI_SIGN_POLICY_OID);
  assert.match(s.cn, /^JPKI-SIGN-/);
});

test('openssl verify accepts the chain for every profile', async () => {
  const caPem = join(tmp, 'ca.pem');
  writeFileSync(caPem, toPem(ca.certDer, 'CERTIFICATE'));
  const files: string[] = [];
  for (const [name, cert] of [
    ['auth', await issueUserAuthCert(ca, { keyPair: kp })],
    ['sign', await issueSigningCert(ca, { keyPair: kp })],
    ['ocsp', await issueOcspResponderCert(ca, { keyPair: kp })],
  ] as const) {
    const f = join(tmp, `${name}.pem`);
    writeFileSync(f, toPem(cert.certDer, 'CERTIFICATE'));
    files.push(f);
  }
  const { stdout } = await run('openssl', ['verify', '-x509_strict', '-CAfile', caPem, ...files]);
  assert.is(
    stdout
      .trim()
      .split('\n')
      .filter((l) => l.endsWith(': OK')).length,
    3,
    stdout,
  );
});

test('signLikeCard output verifies with node crypto.verify and equals the raw DigestInfo signature', async () => {
  const u = await issueUserAuthCert(ca, { keyPair: kp });
  const msg = new TextEncoder().encode('challenge 0123456789');
  const sig = await signLikeCard(u.keyPair.privateKey, msg);
  assert.is(sig.length, 256);
  assert.ok(nodeVerify('sha256', msg, new X509Certificate(u.certDer).publicKey, sig));
  // The card signs the DigestInfo it is sent (CARD.md SIGN): same bytes for the same message.
  const digestInfo = new Uint8Array([...SHA256_DIGEST_INFO_PREFIX, ...createHash('sha256').update(msg).digest()]);
  assert.equal(await signDigestInfo(u.keyPair.privateKey, digestInfo), sig);
  assert.not.ok(nodeVerify('sha256', new TextEncoder().encode('other'), new X509Certificate(u.certDer).publicKey, sig));
});

test('two CAs with the same DN and different keys are told apart only by key', async () => {
  const rollover = await createTestCa({ label: 'jpki-auth-next' });
  assert.equal(rollover.nameDer, ca.nameDer);
  assert.not.equal(rollover.subjectKeyId, ca.subjectKeyId);
  const u = await issueUserAuthCert(rollover, { keyPair: kp });
  assert.ok(new X509Certificate(u.certDer).verify(new X509Certificate(rollover.certDer).publicKey));
  assert.not.ok(new X509Certificate(u.certDer).verify(new X509Certificate(ca.certDer).publicKey));
  const other = await createTestCa({ keyPair: kp, ouSuffix: ' (test 2)' });
  assert.equal(dnOf(parse(other.certDer).subject)[2], '2.5.4.11=JPKI for user authentication (test 2)');
});

test('PEM round-trips and bad PEM is refused', () => {
  const pem = toPem(ca.certDer, 'CERTIFICATE');
  assert.match(pem, /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n$/);
  assert.equal(fromPem(`junk before\n${pem}`), ca.certDer);
  assert.throws(() => fromPem('no pem here'));
  assert.throws(() => fromPem('-----BEGIN X-----\n***\n-----END X-----\n'));
});

test('serial hex is lowercase, even length, and parses back from common spellings', () => {
  assert.is(serialToHex(0xabcn), '0abc');
  assert.is(parseSerialHex('0A:BC'), 0xabcn);
  assert.is(parseSerialHex('0x0abc'), 0xabcn);
  assert.is(parseSerialHex('00'), undefined);
  assert.is(parseSerialHex('xyz'), undefined);
});

test.run();
