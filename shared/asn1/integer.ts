// INTEGER values (X.690 8.3): serial numbers compare by value, so callers bring them to the minimal
// two's-complement form first.
import { DerError, toHex } from './der.ts';

/** First byte of the minimal form of the INTEGER value in [start, end) (end - start >= 1). */
export function minimalStart(b: Uint8Array, start: number, end: number): number {
  let s = start;
  while (end - s > 1) {
    const x = b[s];
    const y = b[s + 1];
    // X.690 8.3.2: a leading 00 before a byte with the top bit clear, or FF before one with it set, is redundant.
    if ((x === 0x00 && y < 0x80) || (x === 0xff && y >= 0x80)) s++;
    else break;
  }
  return s;
}

/**
 * Canonical hex of an INTEGER's content bytes for matching serial numbers: leading 0x00 padding
 * (X.690 8.3.2 keeps it for positive numbers with the high bit set) removed, lower case.
 */
export function serialHexOf(v: Uint8Array): string {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  return toHex(v.subarray(i));
}

/** Value of a non-negative INTEGER in [start, end) as a bigint; throws when empty or negative. */
export function readUnsigned(b: Uint8Array, start: number, end: number, what: string): bigint {
  if (end <= start) throw new DerError(`${what}: empty INTEGER`, start);
  if (b[start] & 0x80) throw new DerError(`${what}: negative INTEGER`, start);
  let v = 0n;
  for (let i = start; i < end; i++) v = (v << 8n) | BigInt(b[i]);
  return v;
}
