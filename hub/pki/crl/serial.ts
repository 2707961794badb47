// Certificate serial numbers as the CRL index compares them. RFC 5280 4.1.2.2 makes a serial an
// INTEGER, and INTEGERs compare by value: `00 80` and a sloppy `00 00 80` are the same number, so
// keys are brought to the minimal two's-complement form (X.690 8.3.2) before hashing or comparing.
import { minimalStart } from '../../../shared/asn1/integer.ts';
import { MyKeyError } from '../../../shared/errors.ts';

export { minimalStart };

// Per-process start value of the hash: serials that collide on purpose in one process do not in
// another, so a crafted list cannot count on piling every entry into one bucket.
const SEED = (0x811c9dc5 ^ Math.floor(Math.random() * 0x100000000)) | 0;

/**
 * Hash of the INTEGER bytes in [s, e) (already minimal): FNV-1a from a per-process seed, then the
 * murmur3 finalizer so that sequential serials spread over the whole range.
 */
export function hashSerial(b: Uint8Array, s: number, e: number): number {
  let h = SEED;
  for (let i = s; i < e; i++) h = Math.imul(h ^ b[i], 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

function hexToBytes(hex: string): Uint8Array {
  const h = hex.length % 2 ? '0' + hex : hex;
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(i * 2, 2), 16);
  return out;
}

/**
 * The minimal INTEGER content bytes of a serial given as a bigint, as hex (a positive magnitude, any
 * case, optional `0x` prefix, optional `:` or blank separators, leading zeros allowed, `-` in front for
 * the negative serials of non-conforming CAs), or as INTEGER
 * content bytes. Throws MyKeyError(validation_failed) on anything else: a malformed key must not read
 * as "not revoked".
 */
export function serialKey(serial: bigint | string | Uint8Array): Uint8Array {
  if (typeof serial === 'bigint') {
    if (serial >= 0n) {
      const mag = hexToBytes(serial.toString(16));
      return mag[0] & 0x80 ? prepend0(mag) : mag;
    }
    // Two's complement in the fewest bytes that hold the value (non-conforming CAs do issue these).
    let k = 1;
    while (serial < -(1n << BigInt(8 * k - 1))) k++;
    const v = (1n << BigInt(8 * k)) + serial;
    return hexToBytes(v.toString(16).padStart(2 * k, '0'));
  }
  if (typeof serial === 'string') {
    let s = serial.trim().replace(/[:\s]/g, '');
    const negative = s.startsWith('-');
    if (negative) s = s.slice(1);
    if (s.startsWith('0x') || s.startsWith('0X')) s = s.slice(2);
    if (s.length === 0 || !/^[0-9a-fA-F]+$/.test(s)) throw new MyKeyError('validation_failed', 'serial: expected hex digits');
    // A `-` in front, as serialHex writes a negative serial (RFC 5280 4.1.2.2 forbids them; CAs erred).
    if (negative) return serialKey(-BigInt('0x' + s));
    const mag = hexToBytes(s);
    const full = mag[0] & 0x80 ? prepend0(mag) : mag;
    return full.subarray(minimalStart(full, 0, full.length));
  }
  if (serial instanceof Uint8Array) {
    if (serial.length === 0) throw new MyKeyError('validation_failed', 'serial: empty INTEGER');
    return serial.subarray(minimalStart(serial, 0, serial.length));
  }
  throw new MyKeyError('validation_failed', 'serial: expected bigint, hex string or bytes');
}

function prepend0(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length + 1);
  out.set(b, 1);
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).toUpperCase().padStart(2, '0'));

/**
 * Display form of an INTEGER value, as `openssl crl -text` prints a serial: upper-case hex of the
 * magnitude, without the sign byte, an even number of digits; a `-` in front of a negative value.
 */
export function serialHex(b: Uint8Array, start: number, end: number): string {
  const s = minimalStart(b, start, end);
  if (b[s] & 0x80) {
    // Negative: magnitude = two's complement of the bytes.
    let v = 0n;
    for (let i = s; i < end; i++) v = (v << 8n) | BigInt(b[i]);
    const mag = (1n << BigInt(8 * (end - s))) - v;
    const h = mag.toString(16).toUpperCase();
    return '-' + (h.length % 2 ? '0' + h : h);
  }
  let out = '';
  let i = s;
  if (b[i] === 0 && end - i > 1) i++;
  for (; i < end; i++) out += HEX[b[i]];
  return out;
}
