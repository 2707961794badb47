import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { certIdentity, certIdentityWithKey, issuerKeyOf } from '../../../shared/cert-identity.ts';
import { createTestCa, issueUserAuthCert } from '../../../provisioning/test-ca/ca.ts';
import { certFields, certIdentityOf } from '../../../edge/lookup/cert-key.ts';

const ca = await createTestCa({ label: 'cert-key' });
const certs = [await issueUserAuthCert(ca), await issueUserAuthCert(ca, { serial: 0x80n }), await issueUserAuthCert(ca)];

test('finds the issuer Name and serial the hub files the certificate under', () => {
  for (const c of certs) {
    const r = certFields(c.certDer);
    assert.ok(r.ok);
    if (!r.ok) return;
    assert.is(r.value.issuerKey, issuerKeyOf(ca.nameDer));
    const serialFromNode = new X509Certificate(c.certDer).serialNumber.toLowerCase();
    assert.is(certIdentity(r.value.issuerKey, r.value.serialHex), certIdentity(issuerKeyOf(ca.nameDer), serialFromNode));
    const id = certIdentityOf(c.certDer, 'scrypt-v2');
    assert.ok(id.ok && id.value === certIdentity(issuerKeyOf(ca.nameDer), c.serialHex));
  }
});

test('reads the authorityKeyIdentifier keyIdentifier: from scrypt-v3 on, the identity names the issuing key', () => {
  const ski = Buffer.from(ca.subjectKeyId).toString('hex');
  for (const c of certs) {
    const r = certFields(c.certDer);
    assert.ok(r.ok && r.value.aki === ski);
    const v3 = certIdentityOf(c.certDer, 'scrypt-v3');
    assert.ok(v3.ok && v3.value === certIdentityWithKey({ issuerKey: issuerKeyOf(ca.nameDer), serialHex: c.serialHex, aki: ski }));
    assert.ok(v3.ok && v3.value.split(':').length === 3);
  }
});

test('refuses every truncation of a certificate without throwing', () => {
  const der = certs[0].certDer;
  for (let n = 0; n < der.length; n++) {
    const r = certFields(der.subarray(0, n));
    assert.is(r.ok, false, `prefix of ${n} bytes`);
  }
});

test('refuses trailing bytes, wrong tags and indefinite lengths', () => {
  const der = certs[0].certDer;
  const cases: Uint8Array[] = [Uint8Array.from([...der, 0]), Uint8Array.from([0x31, ...der.subarray(1)]), Uint8Array.from([0x30, 0x80, 0x00, 0x00]), new Uint8Array(0)];
  for (const c of cases) {
    const r = certFields(c);
    assert.is(r.ok, false);
    if (!r.ok) assert.is(r.code, 'cert_malformed');
  }
});

test('never throws on corrupted bytes', () => {
  const der = certs[2].certDer;
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  for (let i = 0; i < 2000; i++) {
    const copy = Uint8Array.from(der);
    for (let j = 0; j < 3; j++) copy[Math.floor(rnd() * 64)] = Math.floor(rnd() * 256);
    certFields(copy); // ok or cert_malformed, never an exception
  }
});

test.run();
