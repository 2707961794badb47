import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crlIssuerFromCertificate, loadCrl, namesMatch, type CrlIssuer } from '../../../../hub/pki/crl/index.ts';
import { makeOpensslCa } from './helpers/openssl-ca.ts';
import { oid, seq, set, tlv } from './helpers/der-build.ts';

const DN = '/C=JP/O=JPKI/OU=JPKI for user authentication';
// Two CAs with one name and two keys: a CA key rollover.
const oldCa = makeOpensslCa({ subject: DN });
const newCa = makeOpensslCa({ subject: DN });
const otherCa = makeOpensslCa({ subject: '/C=JP/O=Another CA' });
newCa.revoke('80AA', 'keyCompromise');
oldCa.revoke('11', 'superseded');
const newCrl = newCa.genCrl();
const oldCrl = oldCa.genCrl();
for (const ca of [oldCa, newCa, otherCa]) ca.cleanup();

function issuer(pem: string, label: string): CrlIssuer {
  const r = crlIssuerFromCertificate(pem, label);
  if (!r.ok) throw new Error(r.message);
  return r.value;
}
const oldIssuer = issuer(oldCa.caPem, 'old');
const newIssuer = issuer(newCa.caPem, 'new');
const otherIssuer = issuer(otherCa.caPem, 'other');

test('loads a CRL signed by a configured issuer', () => {
  const r = loadCrl(newCrl, [otherIssuer, newIssuer]);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.is(r.value.issuer.label, 'new');
  assert.is(r.value.index.lookup('80AA')?.reason, 'keyCompromise');
  assert.is(r.value.crl.entryCount, 1);
});

test('picks the issuer whose key verifies when two share the name (rollover)', () => {
  for (const issuers of [
    [oldIssuer, newIssuer],
    [newIssuer, oldIssuer],
  ]) {
    const a = loadCrl(newCrl, issuers);
    const b = loadCrl(oldCrl, issuers);
    assert.ok(a.ok && b.ok);
    if (!a.ok || !b.ok) return;
    assert.is(a.value.issuer.label, 'new');
    assert.is(b.value.issuer.label, 'old');
    assert.is(b.value.index.lookup(0x11n)?.reason, 'superseded');
  }
});

test('a CRL whose issuer name no configured issuer has is crl_unknown_issuer', () => {
  for (const issuers of [[otherIssuer], []]) {
    const r = loadCrl(newCrl, issuers);
    assert.is(r.ok, false);
    if (!r.ok) assert.is(r.code, 'crl_unknown_issuer');
  }
});

test('a CRL whose name matches but whose key does not is crl_signature_invalid', () => {
  const r = loadCrl(newCrl, [oldIssuer]);
  assert.is(r.ok, false);
  if (!r.ok) assert.is(r.code, 'crl_signature_invalid');
});

test('a CRL changed after signing is crl_signature_invalid', () => {
  const d = new Uint8Array(newCrl);
  // The last byte of the entry's serial: still well-formed, no longer what was signed.
  const i = Buffer.from(d).indexOf(Buffer.from([0x02, 0x03, 0x00, 0x80, 0xaa])) + 4;
  d[i] = 0xab;
  const r = loadCrl(d, [oldIssuer, newIssuer]);
  assert.is(r.ok, false);
  if (!r.ok) assert.is(r.code, 'crl_signature_invalid');
});

test('malformed input is crl_malformed before any issuer is looked at', () => {
  const r = loadCrl(newCrl.subarray(0, 100), [newIssuer]);
  assert.is(r.ok, false);
  if (!r.ok) assert.is(r.code, 'crl_malformed');
});

test('matches an issuer name written with other string types and case (RFC 5280 7.1)', () => {
  const utf8 = (s: string) => tlv(0x0c, Buffer.from(s));
  const printable = (s: string) => tlv(0x13, Buffer.from(s));
  const atv = (o: Uint8Array, v: Uint8Array) => set(seq(o, v));
  const C = oid(0x55, 0x04, 0x06);
  const O = oid(0x55, 0x04, 0x0a);
  const OU = oid(0x55, 0x04, 0x0b);
  const folded = seq(atv(C, printable('jp')), atv(O, printable('jpki')), atv(OU, utf8('  JPKI  for USER authentication ')));
  assert.ok(namesMatch(folded, newIssuer.nameDer));
  const r = loadCrl(newCrl, [{ ...newIssuer, nameDer: folded, label: 'folded' }]);
  assert.ok(r.ok);
  if (r.ok) assert.is(r.value.issuer.label, 'folded');
  // An exact match is preferred over a folded one.
  const both = loadCrl(newCrl, [{ ...newIssuer, nameDer: folded, label: 'folded' }, newIssuer]);
  assert.ok(both.ok && both.value.issuer.label === 'new');
  // A different value is a different name.
  const other = seq(atv(C, printable('JP')), atv(O, printable('JPKJ')), atv(OU, utf8('JPKI for user authentication')));
  assert.not.ok(namesMatch(other, newIssuer.nameDer));
});

test('passes indexing progress through', () => {
  const calls: number[][] = [];
  const r = loadCrl(newCrl, [newIssuer], { onProgress: (d, t) => calls.push([d, t]) });
  assert.ok(r.ok);
  assert.equal(calls, [[1, 1]]);
});

test('crlIssuerFromCertificate refuses what is not a certificate', () => {
  const r = crlIssuerFromCertificate(new Uint8Array([0x30, 0x00]));
  assert.is(r.ok, false);
  if (!r.ok) assert.is(r.code, 'cert_malformed');
});

test('an issuer is keyed by its subjectKeyIdentifier, the same for the CRL engine and the trust anchors; a CRL is filed under the key that verified it', async () => {
  const { createTestCa, rollOverTestCa } = await import('../../../../provisioning/test-ca/ca.ts');
  const { writeCrl } = await import('../../../../provisioning/test-ca/crl-writer.ts');
  const { trustAnchorFromDer } = await import('../../../../hub/pki/trust-anchors.ts');
  const a = await createTestCa({ label: 'a' });
  const b = await rollOverTestCa(a, { label: 'b' });
  const issuers = [a, b].map((ca) => {
    const i = crlIssuerFromCertificate(ca.certDer, ca.label);
    if (!i.ok) throw new Error(i.message);
    assert.is(i.value.keyId, Buffer.from(ca.subjectKeyId).toString('hex'));
    assert.is(trustAnchorFromDer(ca.certDer, ca.label).keyId, i.value.keyId);
    return i.value;
  });
  // b's CRL, without an authorityKeyIdentifier: found by trying both keys of the name; filed under b's.
  const der = await writeCrl({ issuerNameDer: b.nameDer, signingKey: b.keyPair.privateKey, thisUpdate: new Date(), crlNumber: 1n, entries: [] });
  const r = loadCrl(der, issuers);
  assert.ok(r.ok && r.value.issuer.keyId === issuers[1].keyId);
  // With an authorityKeyIdentifier naming a's key but signed by b: b's, by the signature.
  const lying = await writeCrl({ issuerNameDer: b.nameDer, signingKey: b.keyPair.privateKey, thisUpdate: new Date(), crlNumber: 2n, authorityKeyId: a.subjectKeyId, entries: [] });
  const r2 = loadCrl(lying, issuers);
  assert.ok(r2.ok && r2.value.issuer.keyId === issuers[1].keyId);
});

test.run();
