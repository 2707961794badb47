import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { DerError } from '../../../shared/asn1/der.ts';
import { fromPem, looksLikePem, pemBlocks, toPem } from '../../../shared/asn1/pem.ts';

test('round-trips DER through PEM in 64-character lines', () => {
  for (const n of [1, 47, 48, 49, 1000]) {
    const der = new Uint8Array(randomBytes(n));
    const pem = toPem(der, 'CERTIFICATE');
    assert.ok(
      pem.split('\n').every((l) => l.length <= 64),
      `${n}`,
    );
    assert.ok(pem.endsWith('-----END CERTIFICATE-----\n'));
    assert.equal(fromPem(pem, 'CERTIFICATE'), der);
    assert.ok(looksLikePem(new TextEncoder().encode('\ufeff \n' + pem)));
  }
  assert.not.ok(looksLikePem(Uint8Array.from([0x30, 0x03])));
});

test('splits a bundle and ignores explanatory text between blocks (RFC 7468 5.2)', () => {
  const a = Uint8Array.from([1, 2, 3]);
  const b = Uint8Array.from([4, 5, 6, 7]);
  const text = `Subject: one\n${toPem(a, 'CERTIFICATE')}junk between\n${toPem(b, 'CERTIFICATE')}${toPem(a, 'X509 CRL')}`;
  assert.equal(pemBlocks(text, 'CERTIFICATE'), [a, b]);
  assert.equal(pemBlocks(text, 'X509 CRL'), [a]);
  assert.equal(pemBlocks('nothing here', 'CERTIFICATE'), []);
});

test('refuses base64 that Node would silently skip over', () => {
  const wrap = (body: string) => `-----BEGIN X509 CRL-----\n${body}\n-----END X509 CRL-----\n`;
  const cases: [string, RegExp][] = [
    [wrap('AQID!AQID'), /outside the alphabet/],
    [wrap('AQ==AQID'), /after padding/],
    [wrap('A==='), /padding/],
    [wrap('AQI'), /multiple of 4/],
    [wrap(''), /multiple of 4/],
    ['-----BEGIN X509 CRL-----\nAQID\n', /without "-----END X509 CRL-----"/],
    ['-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n', /without "-----BEGIN X509 CRL-----"/],
  ];
  for (const [text, why] of cases) {
    try {
      fromPem(text, 'X509 CRL');
      assert.unreachable(text);
    } catch (e) {
      assert.instance(e, DerError);
      assert.match((e as Error).message, why);
    }
  }
});

test.run();
