import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DerError } from '../../../shared/asn1/der.ts';
import { decodeOid, encodeOid, oidToString } from '../../../shared/asn1/oid.ts';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

test('decodes OIDs as openssl names them', () => {
  const cases: [string, string][] = [
    ['55 1d 13', '2.5.29.19'],
    ['2a 86 48 86 f7 0d 01 01 0b', '1.2.840.113549.1.1.11'],
    ['2b 06 01 05 05 07 30 01 02', '1.3.6.1.5.5.7.48.1.2'],
    ['00', '0.0'],
    ['27', '0.39'],
    ['28', '1.0'],
    ['4f', '1.39'],
    ['50', '2.0'],
    ['88 37', '2.999'],
    // 2.25 with a 128-bit UUID arc: exact, not rounded through a double.
    ['69 82' + ' 80'.repeat(17) + ' 00', '2.25.' + (1n << 127n).toString()],
  ];
  for (const [h, dotted] of cases) {
    assert.is(decodeOid(hex(h)), dotted, h);
    assert.is(Buffer.from(encodeOid(dotted)).toString('hex'), h.replace(/\s+/g, ''), dotted);
  }
});

test('refuses a non-minimal arc (X.690 8.19.2), a truncated arc and an empty OID', () => {
  const cases: [string, RegExp][] = [
    ['80 55 1d 13', /non-minimal OID arc at byte 0/], // first subidentifier padded
    ['55 80 1d 13', /non-minimal OID arc at byte 1/], // 2.5.29.19 with a padded arc reads as 2.5.29.19 otherwise
    ['2a 86 48 80 86 f7 0d 01', /non-minimal OID arc at byte 3/],
    ['55 1d 93', /truncated OID/],
    ['', /empty OID/],
  ];
  for (const [h, why] of cases) {
    const b = hex(h);
    try {
      oidToString(b, 0, b.length);
      assert.unreachable(h);
    } catch (e) {
      assert.instance(e, DerError, h);
      assert.match((e as Error).message, why, h);
    }
  }
});

test.run();
