import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromHex } from '../../../edge/reader/apdu.ts';
import { hasCertificateShape, parseSequenceHeader } from '../../../edge/reader/der.ts';
import { children, readTlv } from '../../../shared/asn1/der.ts';

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

/** The outer shape by the shared DER reader: the reference the reader layer's own loop must agree with. */
function shapeByDerReader(der: Uint8Array): boolean {
  try {
    const outer = readTlv(der, 0);
    if (outer.tag !== 0x30 || outer.end !== der.length) return false;
    const kids = children(der, outer);
    return kids.length === 3 && kids[0].tag === 0x30 && kids[1].tag === 0x30 && kids[2].tag === 0x03;
  } catch {
    return false;
  }
}

test('the certificate shape check agrees with the shared DER reader on mutated certificates', () => {
  // Short, one-octet and two-octet lengths: SEQUENCE { SEQUENCE {200 bytes}, SEQUENCE {5}, BIT STRING {300} }.
  const tbs = [0x30, 0x81, 200, ...new Array(200).fill(0x11)];
  const alg = [0x30, 0x05, 0x06, 0x03, 0x2a, 0x03, 0x04];
  const sig = [0x03, 0x82, 0x01, 0x2c, ...new Array(300).fill(0x22)];
  const body = [...tbs, ...alg, ...sig];
  const good = Uint8Array.from([0x30, 0x82, body.length >> 8, body.length & 0xff, ...body]);
  assert.ok(hasCertificateShape(good));
  assert.ok(shapeByDerReader(good));
  // Every header byte (and a few value bytes) set to values that matter to the rules, and every cut.
  const positions = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    4 + tbs.length,
    5 + tbs.length,
    6 + tbs.length,
    4 + tbs.length + alg.length,
    5 + tbs.length + alg.length,
    6 + tbs.length + alg.length,
    7 + tbs.length + alg.length,
  ];
  const values = [0x00, 0x01, 0x03, 0x05, 0x1f, 0x30, 0x31, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0xc8, 0xff];
  let cases = 0;
  for (const at of positions) {
    for (const v of values) {
      const der = good.slice();
      der[at] = v;
      assert.is(hasCertificateShape(der), shapeByDerReader(der), `byte ${at} = ${v.toString(16)}`);
      cases++;
    }
  }
  for (let cut = 0; cut < good.length; cut += 7) assert.is(hasCertificateShape(good.subarray(0, cut)), shapeByDerReader(good.subarray(0, cut)), `cut at ${cut}`);
  const longer = new Uint8Array(good.length + 1);
  longer.set(good);
  assert.is(hasCertificateShape(longer), false);
  assert.ok(cases > 200);
});

test.run();
