// The hub's one name-comparison rule (RFC 5280 7.1): PrintableString and UTF8String values compare
// case-insensitively with white space normalised; every other string type compares exactly. Shown
// as a table, then through the real stack: certificate issuer to trust anchor, CRL issuer to anchor.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestCa, type TestCa } from '../../../../provisioning/test-ca/ca.ts';
import { writeCrl } from '../../../../provisioning/test-ca/crl-writer.ts';
import { crlIssuerFromCertificate, loadCrl, namesMatch } from '../../../../hub/pki/crl/index.ts';
import { issue, startTestHub } from '../../../helpers/hub.ts';
import { oid, seq, set, tlv } from './helpers/der-build.ts';

const C = oid(0x55, 0x04, 0x06);
const O = oid(0x55, 0x04, 0x0a);
const OU = oid(0x55, 0x04, 0x0b);
const str = (tag: number, s: string) => tlv(tag, Buffer.from(s, tag === 0x1e ? 'utf16le' : 'utf8'));
const P = (s: string) => str(0x13, s); // PrintableString
const U = (s: string) => str(0x0c, s); // UTF8String
const IA5 = (s: string) => str(0x16, s);
const rdn = (...atvs: Uint8Array[][]) => set(...atvs.map(([t, v]) => seq(t, v)));
const name = (...rdns: Uint8Array[]) => seq(...rdns);

const ref = name(rdn([C, P('JP')]), rdn([O, P('JPKI')]), rdn([OU, U('JPKI for user authentication')]));
const table: [string, Uint8Array, boolean][] = [
  ['the same bytes', ref, true],
  ['PrintableString in another case', name(rdn([C, P('jp')]), rdn([O, P('jpki')]), rdn([OU, U('JPKI for user authentication')])), true],
  ['UTF8String with other case and extra white space', name(rdn([C, P('JP')]), rdn([O, P('JPKI')]), rdn([OU, U('  jpki   FOR user\tauthentication ')])), true],
  ['PrintableString against UTF8String of the same text', name(rdn([C, U('JP')]), rdn([O, U('JPKI')]), rdn([OU, P('JPKI for user authentication')])), true],
  ['an IA5String value (compared exactly, even if only the case differs)', name(rdn([C, P('JP')]), rdn([O, IA5('JPKI')]), rdn([OU, U('JPKI for user authentication')])), false],
  ['a different value', name(rdn([C, P('JP')]), rdn([O, P('JPKJ')]), rdn([OU, U('JPKI for user authentication')])), false],
  ['RDNs in another order', name(rdn([O, P('JPKI')]), rdn([C, P('JP')]), rdn([OU, U('JPKI for user authentication')])), false],
  ['one RDN fewer', name(rdn([C, P('JP')]), rdn([O, P('JPKI')])), false],
  ['two attributes in one RDN instead of two RDNs', name(rdn([C, P('JP')], [O, P('JPKI')]), rdn([OU, U('JPKI for user authentication')])), false],
  ['inner white space removed (not just collapsed)', name(rdn([C, P('JP')]), rdn([O, P('JPKI')]), rdn([OU, U('JPKIfor user authentication')])), false],
  ['malformed DER', Uint8Array.of(0x30, 0x05, 0x31), false],
];
for (const [what, der, same] of table) {
  test(`names: ${what} ${same ? 'matches' : 'does not match'}`, () => {
    assert.is(namesMatch(der, ref), same);
    assert.is(namesMatch(ref, der), same);
  });
}
test('names: a multi-valued RDN matches whatever the order of its attributes', () => {
  assert.ok(namesMatch(name(rdn([C, P('JP')], [O, P('JPKI')])), name(rdn([O, P('jpki')], [C, P('JP')]))));
});

/** The same CA key under a variant of its name: what a CA writing its name differently would sign. */
function withName(ca: TestCa, nameDer: Uint8Array): TestCa {
  return { ...ca, nameDer };
}
const folded = (ca: TestCa) => {
  // The test CA's DN (shared/card.ts JPKI_AUTH_CA_DN) in other case and spacing, UTF8String throughout.
  const d = name(rdn([C, U('jp')]), rdn([O, U('jpki')]), rdn([OU, U('JPKI  FOR user authentication')]), rdn([OU, U('Japan Agency for Local Authority Information Systems ')]));
  assert.ok(namesMatch(d, ca.nameDer), 'the folded name matches the CA name');
  return d;
};

test('a certificate and a CRL whose issuer name differs from the anchor only as RFC 5280 7.1 allows are accepted; an exact-only difference is not', async () => {
  const ca = await createTestCa();
  const h = await startTestHub({ ca });
  try {
    const alias = withName(ca, folded(ca));
    const cert = await issue(alias);
    const res = await h.request('/v1/mykey-ids', { proof: await h.proof(cert) });
    assert.is(res.status, 201, await res.clone().text());
    // IA5String is compared exactly: a case difference there is another issuer.
    const ia5 = withName(ca, name(rdn([C, P('JP')]), rdn([O, IA5('jpki')]), rdn([OU, P('JPKI for user authentication')]), rdn([OU, P('Japan Agency for Local Authority Information Systems')])));
    const other = await issue(ia5);
    const r2 = await h.request('/v1/mykey-ids', { proof: await h.proof(other) });
    assert.is(((await r2.json()) as { code: string }).code, 'cert_unknown_issuer');
    // The CRL engine applies the same rule.
    const issuer = crlIssuerFromCertificate(ca.certDer);
    assert.ok(issuer.ok);
    if (!issuer.ok) return;
    const crlOf = (n: Uint8Array) =>
      writeCrl({ issuerNameDer: n, signingKey: ca.keyPair.privateKey, thisUpdate: new Date(Date.now() - 60_000), crlNumber: 1n, authorityKeyId: ca.subjectKeyId, entries: [] });
    assert.ok(loadCrl(await crlOf(folded(ca)), [issuer.value]).ok);
    const r = loadCrl(await crlOf(ia5.nameDer), [issuer.value]);
    assert.is(r.ok ? 'ok' : r.code, 'crl_unknown_issuer');
  } finally {
    await h.close();
  }
});

test.run();
