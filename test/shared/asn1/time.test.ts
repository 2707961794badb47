import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TAG } from '../../../shared/asn1/der.ts';
import { decodeTime, isValidTime, timeToMs } from '../../../shared/asn1/time.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const ms = (tag: number, s: string, fraction = false) => timeToMs(enc(s), tag, 0, s.length, fraction);

test('reads UTCTime and GeneralizedTime as RFC 5280 profiles them', () => {
  assert.is(ms(TAG.UTCTime, '491231235959Z'), Date.UTC(2049, 11, 31, 23, 59, 59));
  assert.is(ms(TAG.UTCTime, '500101000000Z'), Date.UTC(1950, 0, 1));
  assert.is(ms(TAG.GeneralizedTime, '20500101000000Z'), Date.UTC(2050, 0, 1));
  assert.is(ms(TAG.GeneralizedTime, '20240229120000Z'), Date.UTC(2024, 1, 29, 12));
});

test('refuses times that Date.UTC would roll over, and any non-Zulu or fractional form', () => {
  for (const [tag, s] of [
    [TAG.UTCTime, '240230000000Z'], // 30 February
    [TAG.UTCTime, '230229000000Z'], // not a leap year
    [TAG.UTCTime, '241301000000Z'],
    [TAG.UTCTime, '240101240000Z'],
    [TAG.UTCTime, '240101000060Z'], // second 60
    [TAG.UTCTime, '2401010000Z'], // no seconds
    [TAG.UTCTime, '240101000000+0900'],
    [TAG.GeneralizedTime, '20240101000000.5Z'], // fraction where none is allowed
    [TAG.GeneralizedTime, '2024010100000aZ'],
    [TAG.OCTET_STRING, '240101000000Z'],
  ] as const) {
    assert.ok(Number.isNaN(ms(tag, s)), s);
    assert.not.ok(isValidTime(enc(s), tag, 0, s.length), s);
  }
});

test('an OCSP reader may ask for fractions of a second (X.690 11.7)', () => {
  assert.is(ms(TAG.GeneralizedTime, '20240101000000.5Z', true), Date.UTC(2024, 0, 1, 0, 0, 0, 500));
  assert.is(ms(TAG.GeneralizedTime, '20240101000000.123456789Z', true), Date.UTC(2024, 0, 1, 0, 0, 0, 123));
  assert.ok(Number.isNaN(ms(TAG.GeneralizedTime, '20240101000000.Z', true)));
  assert.ok(Number.isNaN(ms(TAG.GeneralizedTime, '20240101000000.5', true)));
  assert.ok(Number.isNaN(ms(TAG.GeneralizedTime, '20240101000000,5Z', true)));
  assert.ok(Number.isNaN(ms(TAG.UTCTime, '240101000000.5Z', true)));
  const b = enc('\x18\x0f20240101000000Z');
  assert.is(decodeTime(b, { tag: 0x18, start: 0, valueStart: 2, end: 17 }).getTime(), Date.UTC(2024, 0, 1));
  assert.throws(() => decodeTime(enc('\x17\x0d240230000000Z'), { tag: 0x17, start: 0, valueStart: 2, end: 15 }), /bad UTCTime at byte 0/);
});

test.run();
