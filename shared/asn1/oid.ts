// OBJECT IDENTIFIER values (X.690 8.19): one rule for the whole platform.
import { DerError } from './der.ts';

// Below this an arc still fits a double after one more 7-bit step (2^46 * 128 < 2^53).
const SAFE_ARC = 2 ** 46;

/**
 * Dotted form of the OID value bytes in [start, end). Refuses an empty value, a truncated last arc,
 * and an arc that starts with 0x80 (X.690 8.19.2: "the leading octet of a subidentifier shall not
 * be 0x80", so each OID has exactly one encoding and cannot pass a comparison under another).
 * Arcs of any size are exact (2.25 UUID arcs are 128 bits).
 */
export function oidToString(b: Uint8Array, start: number, end: number): string {
  if (end <= start) throw new DerError('empty OID', start);
  let out = '';
  let v = 0;
  let big: bigint | undefined;
  let fresh = true;
  let first = true;
  for (let i = start; i < end; i++) {
    const c = b[i];
    if (fresh && c === 0x80) throw new DerError('non-minimal OID arc', i);
    fresh = false;
    if (big !== undefined) big = (big << 7n) | BigInt(c & 0x7f);
    else if (v >= SAFE_ARC) big = (BigInt(v) << 7n) | BigInt(c & 0x7f);
    else v = v * 128 + (c & 0x7f);
    if ((c & 0x80) === 0) {
      if (first) {
        // X.690 8.19.4: the first subidentifier is 40 * arc1 + arc2, arc1 in 0..2.
        if (big !== undefined) out = `2.${big - 80n}`;
        else {
          const a = v < 40 ? 0 : v < 80 ? 1 : 2;
          out = `${a}.${v - a * 40}`;
        }
        first = false;
      } else out += `.${big !== undefined ? big : v}`;
      v = 0;
      big = undefined;
      fresh = true;
    }
  }
  if (!fresh) throw new DerError('truncated OID', end);
  return out;
}

/** Dotted form of an OID value (the content octets); see oidToString. */
export function decodeOid(v: Uint8Array): string {
  return oidToString(v, 0, v.length);
}

/** The content octets of an OID in dotted form (X.690 8.19), minimal arcs; throws RangeError when not an OID. */
export function encodeOid(dotted: string): Uint8Array {
  if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(dotted)) throw new RangeError(`not a dotted OID: ${dotted}`);
  const arcs = dotted.split('.').map((s) => BigInt(s));
  if (arcs[0] < 2n && arcs[1] > 39n) throw new RangeError(`second arc out of range: ${dotted}`);
  const subs = [arcs[0] * 40n + arcs[1], ...arcs.slice(2)];
  const out: number[] = [];
  for (const s of subs) {
    const groups: number[] = [Number(s & 0x7fn)];
    for (let x = s >> 7n; x > 0n; x >>= 7n) groups.unshift(Number(x & 0x7fn) | 0x80);
    out.push(...groups);
  }
  return Uint8Array.from(out);
}
