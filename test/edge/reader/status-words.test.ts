import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MyKeyError } from '../../../shared/errors.ts';
import { bytesAvailable, correctLe, isOk, isWellFormedStatus, responseData, sw, swError, swHex, swMeaning, triesLeft } from '../../../edge/reader/status-words.ts';

test('sw reads the last two bytes of a response', () => {
  const cases: [number[], number][] = [
    [[0x90, 0x00], 0x9000],
    [[0x01, 0x02, 0x6a, 0x82], 0x6a82],
    [[0x63, 0xc2], 0x63c2],
  ];
  for (const [bytes, want] of cases) assert.is(sw(Uint8Array.from(bytes)), want, bytes.join(','));
  assert.equal([...responseData(Uint8Array.of(1, 2, 0x90, 0))], [1, 2]);
});

test('a response without room for a status word is card_response_malformed', () => {
  for (const bytes of [[], [0xff]]) {
    try {
      sw(Uint8Array.from(bytes));
      assert.unreachable();
    } catch (e) {
      assert.instance(e, MyKeyError);
      assert.is((e as MyKeyError).code, 'card_response_malformed');
    }
  }
});

test('isOk is true only for 90 00', () => {
  const cases: [number, boolean][] = [
    [0x9000, true],
    [0x6100, false],
    [0x9001, false],
    [0x6a82, false],
  ];
  for (const [s, want] of cases) assert.is(isOk(s), want, swHex(s));
});

test('63Cx is parsed as x tries left, and nothing else is', () => {
  const cases: [number, number | undefined][] = [
    [0x63c3, 3],
    [0x63c2, 2],
    [0x63c1, 1],
    [0x63c0, 0],
    [0x63cf, 15],
    [0x6300, undefined],
    [0x6983, undefined],
    [0x9000, undefined],
    [0x64c2, undefined],
  ];
  for (const [s, want] of cases) assert.is(triesLeft(s), want, swHex(s));
});

test('61xx and 6Cxx give the byte counts, 00 meaning 256', () => {
  const cases: [number, number | undefined, number | undefined][] = [
    [0x6110, 16, undefined],
    [0x6100, 256, undefined],
    [0x6c08, undefined, 8],
    [0x6c00, undefined, 256],
    [0x9000, undefined, undefined],
  ];
  for (const [s, more, le] of cases) {
    assert.is(bytesAvailable(s), more, swHex(s));
    assert.is(correctLe(s), le, swHex(s));
  }
});

test('meanings name the ISO 7816-4 condition', () => {
  const cases: [number, RegExp][] = [
    [0x9000, /success/],
    [0x6a82, /not found/],
    [0x6982, /security status/],
    [0x63c2, /2 tries left/],
    [0x63c0, /no tries left/],
    [0x6984, /not usable/],
    [0x6c10, /exact length is 16/],
    [0x6115, /21 response bytes/],
    [0x6d00, /instruction/],
    [0x36ed, /not an ISO/],
  ];
  for (const [s, re] of cases) assert.match(swMeaning(s), re, swHex(s));
});

test('an unexpected status becomes card_error, a non-ISO one card_response_malformed', () => {
  assert.is(swError(0x6a82, 'SELECT').code, 'card_error');
  assert.match(swError(0x6a82, 'SELECT').message, /6A 82/);
  assert.is(swError(0x36ed, 'READ').code, 'card_response_malformed');
  assert.ok(isWellFormedStatus(0x6f00));
  assert.not.ok(isWellFormedStatus(0x7000));
});

test.run();
