// Times in X.509, CRLs and OCSP. RFC 5280 4.1.2.5 / 5.1.2.4: UTCTime `YYMMDDHHMMSSZ` (YY >= 50 means
// 19YY, else 20YY) or GeneralizedTime `YYYYMMDDHHMMSSZ`, always UTC (Z), with seconds, no fraction.
// RFC 6960 OCSP times are GeneralizedTime, where X.690 11.7 allows a fraction of a second, so the
// OCSP reader asks for one explicitly.
import { DerError, TAG, type Tlv } from './der.ts';

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function d2(b: Uint8Array, i: number): number {
  const hi = b[i] - 0x30;
  const lo = b[i + 1] - 0x30;
  // A non-digit makes the pair negative or >= 100 (unsigned compare below catches both).
  if (hi >>> 0 > 9 || lo >>> 0 > 9) return -1;
  return hi * 10 + lo;
}

/**
 * Milliseconds since the epoch of a UTCTime or GeneralizedTime value at [body, body + len), or NaN
 * when the tag, length, digits or ranges are wrong (a second of 60, the 31st of a 30-day month...).
 * With `fraction`, a GeneralizedTime may carry `.d` to `.ddddddddd` before the Z. Allocates nothing:
 * cheap enough to call once per CRL entry.
 */
export function timeToMs(b: Uint8Array, tag: number, body: number, len: number, fraction = false): number {
  let year: number;
  let p: number;
  let ms = 0;
  let tailChecked = false;
  if (tag === TAG.UTCTime) {
    if (len !== 13) return NaN;
    const yy = d2(b, body);
    if (yy < 0) return NaN;
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    p = body + 2;
  } else if (tag === TAG.GeneralizedTime) {
    if (len !== 15) {
      // YYYYMMDDHHMMSS . 1-9 digits Z
      if (!fraction || len < 17 || len > 25 || b[body + 14] !== 0x2e /* . */) return NaN;
      let f = 0;
      let scale = 1;
      for (let i = body + 15; i < body + len - 1; i++) {
        const d = b[i] - 0x30;
        if (d >>> 0 > 9) return NaN;
        f = f * 10 + d;
        scale *= 10;
      }
      // X.690 11.7.3 forbids trailing zeros in the fraction; responders that write them are let be.
      ms = Math.floor((f * 1000) / scale);
      if (b[body + len - 1] !== 0x5a /* Z */) return NaN;
      tailChecked = true;
    }
    const c = d2(b, body);
    const yy = d2(b, body + 2);
    if (c < 0 || yy < 0) return NaN;
    year = c * 100 + yy;
    p = body + 4;
  } else return NaN;
  const mo = d2(b, p);
  const d = d2(b, p + 2);
  const h = d2(b, p + 4);
  const mi = d2(b, p + 6);
  const s = d2(b, p + 8);
  if (!tailChecked && b[p + 10] !== 0x5a /* Z */) return NaN;
  if (mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59) return NaN;
  const leap = mo === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 1 : 0;
  if (d > DAYS[mo - 1] + leap) return NaN;
  return Date.UTC(year, mo - 1, d, h, mi, s, ms);
}

/**
 * True when the value is a well-formed time (no fraction); the same checks as timeToMs, written out
 * again on purpose: the CRL entry walk calls it once per entry, and sharing timeToMs's reader (through
 * a scratch array, or by calling timeToMs) measured about half again as slow.
 */
export function isValidTime(b: Uint8Array, tag: number, body: number, len: number): boolean {
  let p: number;
  let year: number;
  if (tag === TAG.UTCTime) {
    if (len !== 13) return false;
    const yy = d2(b, body);
    if (yy < 0) return false;
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    p = body + 2;
  } else if (tag === TAG.GeneralizedTime) {
    if (len !== 15) return false;
    const c = d2(b, body);
    const yy = d2(b, body + 2);
    if (c < 0 || yy < 0) return false;
    year = c * 100 + yy;
    p = body + 4;
  } else return false;
  const mo = d2(b, p);
  const d = d2(b, p + 2);
  const h = d2(b, p + 4);
  const mi = d2(b, p + 6);
  const s = d2(b, p + 8);
  if (b[p + 10] !== 0x5a) return false;
  if (mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59) return false;
  const leap = mo === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 1 : 0;
  return d <= DAYS[mo - 1] + leap;
}

/** Decodes the UTCTime or GeneralizedTime TLV `t` of `buf` to a Date; throws DerError when malformed. */
export function decodeTime(buf: Uint8Array, t: Tlv, opts: { fraction?: boolean } = {}): Date {
  const ms = timeToMs(buf, t.tag, t.valueStart, t.end - t.valueStart, opts.fraction === true);
  if (Number.isNaN(ms)) {
    throw new DerError(t.tag === TAG.UTCTime ? 'bad UTCTime' : t.tag === TAG.GeneralizedTime ? 'bad GeneralizedTime' : 'expected a time', t.start);
  }
  return new Date(ms);
}
