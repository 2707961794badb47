import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JPKI_AID } from '../../../shared/card.ts';
import { buildApdu, fromHex, jpkiSign, parseApdu, readBinary, selectByName, selectEf, sha256DigestInfo, toHex, verify } from '../../../edge/reader/apdu.ts';

test('parses the four short APDU cases of ISO 7816-4', () => {
  const cases: [string, { data: string; le: number | undefined }][] = [
    ['00 20 00 80', { data: '', le: undefined }],
    ['00 B0 00 00 04', { data: '', le: 4 }],
    ['00 B0 00 00 00', { data: '', le: 256 }],
    ['00 A4 02 0C 02 00 0A', { data: '00 0A', le: undefined }],
    ['80 2A 00 80 02 AA BB 00', { data: 'AA BB', le: 256 }],
  ];
  for (const [hex, want] of cases) {
    const r = parseApdu(fromHex(hex));
    assert.ok(r.ok, hex);
    if (r.ok) {
      assert.is(toHex(r.apdu.data), want.data, hex);
      assert.is(r.apdu.le, want.le, hex);
    }
  }
});

test('refuses APDUs that are not well-formed short APDUs', () => {
  const bad = ['', '00', '00 A4 04', '00 A4 04 0C 05 01 02', '00 A4 04 0C 02 01 02 03 04', '00 B0 00 00 00 01 00', '00 A4 04 0C 00 00 0A'];
  for (const hex of bad) assert.not.ok(parseApdu(fromHex(hex)).ok, hex);
});

test('builders produce the CARD.md command forms', () => {
  assert.is(toHex(selectByName(JPKI_AID)), '00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01');
  assert.is(toHex(selectEf(0x000a)), '00 A4 02 0C 02 00 0A');
  assert.is(toHex(readBinary(0x0104, 256)), '00 B0 01 04 00');
  assert.is(toHex(verify()), '00 20 00 80');
  assert.is(toHex(verify(Uint8Array.from([0x31, 0x32, 0x33, 0x34]))), '00 20 00 80 04 31 32 33 34');
  const di = sha256DigestInfo(new Uint8Array(32));
  assert.is(di.length, 51);
  assert.is(toHex(jpkiSign(di)).slice(0, 14), '80 2A 00 80 33');
  assert.is(toHex(jpkiSign(di)).slice(-2), '00');
});

test('builders refuse values outside the short form', () => {
  assert.throws(() => readBinary(0x8000, 1), RangeError);
  assert.throws(() => buildApdu(0, 0, 0, 0, new Uint8Array(256)), RangeError);
  assert.throws(() => buildApdu(0, 0, 0, 0, undefined, 0), RangeError);
  assert.throws(() => sha256DigestInfo(new Uint8Array(20)), RangeError);
  assert.throws(() => fromHex('0g'), RangeError);
});

test.run();
