import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromHex } from '../../../edge/reader/apdu.ts';
import { hasCertificateShape, parseSequenceHeader } from '../../../edge/reader/der.ts';

test('reads the length header of a DER SEQUENCE', () => {
  const cases: [string, number | string][] = [
    ['30 82 04 6D', 4 + 0x46d],
    ['30 82 01 00', 4 + 256],
    ['30 81 80 00', 3 + 128],
    ['30 10 00 00', 2 + 16],
    ['31 82 04 6D', 'not SEQUENCE'],
    ['30 80 00 00', 'indefinite'],
    ['30 83 01 00', 'more than 2'],
    ['30 82 00 10', 'non-minimal'],
    ['30 81 10 00', 'non-minimal'],
    ['30', 'fewer'],
  ];
  for (const [hex, want] of cases) {
    const r = parseSequenceHeader(fromHex(hex));
    if (typeof want === 'number') {
      assert.ok(r.ok, hex);
      if (r.ok) assert.is(r.header.totalLength, want, hex);
    } else {
      assert.not.ok(r.ok, hex);
      if (!r.ok) assert.match(r.reason, want, hex);
    }
  }
});

test('knows the outer shape of a certificate', () => {
  // SEQUENCE { SEQUENCE {}, SEQUENCE {}, BIT STRING {00} }
  const good = fromHex('30 07 30 00 30 00 03 01 00');
  assert.ok(hasCertificateShape(good));
  const cases = [
    '30 08 30 00 30 00 03 01 00 00', // trailing byte inside
    '30 07 30 00 30 00 04 01 00', // OCTET STRING, not BIT STRING
    '30 05 30 00 30 00 03', // truncated TLV
    '30 07 30 00 30 00 03 01 00 FF', // trailing byte outside
    '30 04 30 00 30 00', // two elements
    '30 07 30 00 30 05 03 01 00', // inner length overruns
  ];
  for (const hex of cases) assert.not.ok(hasCertificateShape(fromHex(hex)), hex);
});

test.run();
