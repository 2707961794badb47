import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes, webcrypto } from 'node:crypto';
import { MyKeyError } from '../../../shared/errors.ts';
import { CRL_REASONS, type CrlReason } from '../../../shared/revocation.ts';
import { writeCrl, type CrlWriterEntry } from '../../../provisioning/test-ca/crl-writer.ts';
import { crlIssuerFromCertificate, indexCrl, keyIdOf, loadCrl, parseCrl } from '../../../hub/pki/crl/index.ts';
import { makeOpensslCa, readOpensslCrlText } from '../../hub/pki/crl/helpers/openssl-ca.ts';

const ca = makeOpensslCa({ subject: '/C=JP/O=JPKI/OU=JPKI for user authentication/OU=Japan Agency for Local Authority Information Systems' });
const key = await ca.webCryptoKey();
const issuerResult = crlIssuerFromCertificate(ca.caPem, 'test CA');
if (!issuerResult.ok) throw new Error(issuerResult.message);
const issuer = issuerResult.value;
const aki = keyIdOf(issuer.publicKey)!;
const reasons = Object.keys(CRL_REASONS) as CrlReason[];
const base = { issuerNameDer: issuer.nameDer, signingKey: key, crlNumber: 77n, authorityKeyId: aki };

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex').toUpperCase();
}

test('writes a CRL that openssl verifies and that parses back to the same entries', async () => {
  const entries: CrlWriterEntry[] = Array.from({ length: 500 }, (_, i) => ({
    serial: BigInt('0x' + randomBytes(16).toString('hex')) | (i % 2 ? 1n << 127n : 0n),
    revokedAt: new Date(Date.UTC(2026, 5, 1, 0, 0, i)),
    reason: reasons[i % reasons.length],
  }));
  entries.push({ serial: 1n, revokedAt: new Date(Date.UTC(2026, 0, 1)) });
  const thisUpdate = new Date(Date.UTC(2026, 10, 25, 9, 0, 0));
  const nextUpdate = new Date(Date.UTC(2026, 10, 26, 9, 0, 0));
  const der = await writeCrl({ ...base, thisUpdate, nextUpdate, entries });
  assert.ok(ca.opensslVerifies(der), 'openssl crl -CAfile says verify OK');

  const text = readOpensslCrlText(ca.crlText(der));
  assert.is(text.crlNumber, 77n);
  assert.is(text.authorityKeyId, hex(aki));
  assert.equal(text.lastUpdate, thisUpdate);
  assert.equal(text.nextUpdate, nextUpdate);
  assert.is(text.entries.length, entries.length);

  const r = loadCrl(der, [issuer]);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.is(r.value.crl.crlNumber, 77n);
  assert.is(hex(r.value.crl.authorityKeyId!), hex(aki));
  assert.equal(r.value.crl.thisUpdate, thisUpdate);
  assert.is(r.value.crl.isDelta, false);
  const got = [...r.value.index.entries()];
  assert.equal(
    got,
    text.entries.map(({ serialHex, revokedAt, reason }) => ({ serialHex, revokedAt, reason })),
  );
  for (const e of entries) {
    assert.equal(r.value.index.lookup(e.serial), { revokedAt: e.revokedAt, reason: e.reason ?? 'unspecified' });
  }
});

test('writes no reasonCode for unspecified (RFC 5280 5.3.1)', async () => {
  const der = await writeCrl({
    ...base,
    thisUpdate: new Date(),
    entries: [
      { serial: 5n, revokedAt: new Date(), reason: 'unspecified' },
      { serial: 6n, revokedAt: new Date() },
    ],
  });
  assert.ok(ca.opensslVerifies(der));
  assert.not.match(ca.crlText(der), /Reason Code/);
});

test('uses UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 5.1.2.4)', async () => {
  const in2049 = new Date(Date.UTC(2049, 11, 31, 23, 59, 59));
  const in2050 = new Date(Date.UTC(2050, 0, 1, 0, 0, 0));
  const der = await writeCrl({ ...base, thisUpdate: in2049, nextUpdate: in2050, entries: [{ serial: 9n, revokedAt: in2050, reason: 'keyCompromise' }] });
  const b = Buffer.from(der);
  assert.ok(b.includes(Buffer.from('\x17\x0d491231235959Z', 'latin1')));
  assert.ok(b.includes(Buffer.from('\x18\x0f20500101000000Z', 'latin1')));
  assert.ok(ca.opensslVerifies(der));
  const r = loadCrl(der, [issuer]);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.value.crl.thisUpdate, in2049);
  assert.equal(r.value.crl.nextUpdate, in2050);
  assert.equal(r.value.index.lookup(9n), { revokedAt: in2050, reason: 'keyCompromise' });
});

test('writes an empty CRL without a revokedCertificates field', async () => {
  const der = await writeCrl({ ...base, thisUpdate: new Date(), entries: [] });
  assert.ok(ca.opensslVerifies(der));
  assert.match(ca.crlText(der), /No Revoked Certificates/);
  const p = parseCrl(der);
  assert.ok(p.ok && p.value.entryCount === 0);
});

test('writes a delta CRL', async () => {
  const der = await writeCrl({ ...base, crlNumber: 80n, baseCrlNumber: 77n, thisUpdate: new Date(), entries: [{ serial: 3n, revokedAt: new Date(), reason: 'removeFromCRL' }] });
  assert.ok(ca.opensslVerifies(der));
  assert.is(readOpensslCrlText(ca.crlText(der)).deltaCrlIndicator, 77n);
  // A delta CRL is never taken for a full one (RFC 5280 5.2.4): loadCrl refuses it with its own code.
  const r = loadCrl(der, [issuer]);
  assert.is(r.ok ? 'ok' : r.code, 'crl_delta_unsupported');
  const p = parseCrl(der);
  assert.ok(p.ok);
  if (!p.ok) return;
  assert.is(p.value.isDelta, true);
  assert.is(p.value.baseCrlNumber, 77n);
  const idx = indexCrl(p.value);
  assert.is(idx.ok && idx.value.lookup(3n)?.reason, 'removeFromCRL');
});

test('writes long lists with long-form lengths that openssl accepts', async () => {
  const entries = Array.from({ length: 20_000 }, (_, i) => ({ serial: BigInt(i + 1) << 64n, revokedAt: new Date(Date.UTC(2026, 0, 1) + i * 1000), reason: 'superseded' as const }));
  const der = await writeCrl({ ...base, thisUpdate: new Date(), entries });
  assert.ok(ca.opensslVerifies(der));
  const r = loadCrl(der, [issuer]);
  assert.ok(r.ok && r.value.index.size === 20_000);
});

test('writes serials of any length, from 0 to 120 bytes (long-form entry lengths)', async () => {
  const serials = [0n, 1n, 0x7fn, 0x80n, 0xffn, 0x100n, (1n << 159n) + 12345n, (1n << 959n) | 1n];
  const der = await writeCrl({ ...base, thisUpdate: new Date(), entries: serials.map((serial) => ({ serial, revokedAt: new Date(Date.UTC(2030, 0, 1)), reason: 'keyCompromise' as const })) });
  assert.ok(ca.opensslVerifies(der));
  const r = loadCrl(der, [issuer]);
  assert.ok(r.ok);
  if (!r.ok) return;
  for (const s of serials) assert.is(r.value.index.lookup(s)?.reason, 'keyCompromise', s.toString(16));
  assert.equal(
    [...r.value.index.entries()].map((e) => BigInt('0x' + e.serialHex)),
    serials,
  );
});

test('refuses negative serials, invalid dates and keys that are not RSA PKCS#1 v1.5', async () => {
  const bad: [string, Parameters<typeof writeCrl>[0]][] = [
    ['negative serial', { ...base, thisUpdate: new Date(), entries: [{ serial: -1n, revokedAt: new Date() }] }],
    ['invalid revokedAt', { ...base, thisUpdate: new Date(), entries: [{ serial: 1n, revokedAt: new Date(NaN) }] }],
    ['invalid thisUpdate', { ...base, thisUpdate: new Date(NaN), entries: [] }],
    ['negative crlNumber', { ...base, crlNumber: -5n, thisUpdate: new Date(), entries: [] }],
  ];
  const ec = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  bad.push(['an ECDSA key', { ...base, signingKey: ec.privateKey, thisUpdate: new Date(), entries: [] }]);
  for (const [name, opts] of bad) {
    try {
      await writeCrl(opts);
      assert.unreachable(name);
    } catch (err) {
      assert.instance(err, MyKeyError, name);
      assert.is((err as MyKeyError).code, 'validation_failed', name);
    }
  }
});

test.after(() => ca.cleanup());

test('writes scoped, critical-extension and entry-extension CRLs that openssl reads as such, and the hub refuses each with its code', async () => {
  const thisUpdate = new Date(Date.now() - 60_000);
  const cases: [string, Parameters<typeof writeCrl>[0], RegExp[], string][] = [
    [
      'IDP with a distribution point, user certificates, some reasons',
      {
        ...base,
        thisUpdate,
        crlNumber: 90n,
        entries: [],
        issuingDistributionPoint: { distributionPointUri: 'http://crl.example/part1.crl', onlyContainsUserCerts: true, onlySomeReasons: [1, 3] },
      },
      [/Issuing Distribution Point: critical/, /URI:http:\/\/crl\.example\/part1\.crl/, /Only User Certificates/, /Only Some Reasons:\s*\n?\s*Key Compromise, Affiliation Changed/],
      'crl_scope_unsupported',
    ],
    [
      'IDP indirect and CA-only',
      { ...base, thisUpdate, crlNumber: 91n, entries: [], issuingDistributionPoint: { onlyContainsCACerts: true, indirectCRL: true } },
      [/Only CA Certificates/, /Indirect CRL/],
      'crl_scope_unsupported',
    ],
    [
      'an unknown critical CRL extension',
      { ...base, thisUpdate, crlNumber: 92n, entries: [], extensions: [{ oid: '1.3.6.1.4.1.99999.1', critical: true, value: Uint8Array.of(5, 0) }] },
      [/1\.3\.6\.1\.4\.1\.99999\.1: critical/],
      'crl_critical_extension',
    ],
    [
      'an entry with an unknown critical extension',
      {
        ...base,
        thisUpdate,
        crlNumber: 93n,
        entries: [{ serial: 5n, revokedAt: thisUpdate, reason: 'keyCompromise', extensions: [{ oid: '1.3.6.1.4.1.99999.2', critical: true, value: Uint8Array.of(5, 0) }] }],
      },
      [/Key Compromise/, /1\.3\.6\.1\.4\.1\.99999\.2: critical/],
      'crl_critical_extension',
    ],
  ];
  for (const [what, opts, patterns, code] of cases) {
    const der = await writeCrl(opts);
    assert.ok(ca.opensslVerifies(der), `${what}: openssl verifies`);
    const text = ca.crlText(der);
    for (const p of patterns) assert.match(text, p, `${what}: ${p}`);
    const r = loadCrl(der, [issuer]);
    assert.is(r.ok ? 'ok' : r.code, code, what);
  }
});

test.run();
