// DER writing (X.690 10.1: definite lengths in the minimal number of octets), for the little the
// platform writes itself: an edge's certificate signing request (shared/device-csr.ts). Certificates
// and CRLs are written by the CAs (the hub's device CA, the test CA).
import { encodeOid } from './oid.ts';

/** One TLV: `tag`, the definite length of the parts, the parts in order. */
export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const len = parts.reduce((a, p) => a + p.length, 0);
  const lenBytes: number[] = [];
  for (let n = len; n > 0; n >>= 8) lenBytes.unshift(n & 0xff);
  const head = len < 0x80 ? [tag, len] : [tag, 0x80 | lenBytes.length, ...lenBytes];
  const out = new Uint8Array(head.length + len);
  out.set(head, 0);
  let at = head.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const derSequence = (...parts: Uint8Array[]): Uint8Array => tlv(0x30, ...parts);
/** A SET of one element (a SET OF with several needs its elements sorted, X.690 11.6). */
export const derSetOfOne = (part: Uint8Array): Uint8Array => tlv(0x31, part);
export const derOid = (dotted: string): Uint8Array => tlv(0x06, encodeOid(dotted));
export const derUtf8 = (s: string): Uint8Array => tlv(0x0c, new TextEncoder().encode(s));
/** A small non-negative INTEGER (0 to 127). */
export const derSmallInt = (n: number): Uint8Array => tlv(0x02, Uint8Array.of(n & 0x7f));
/** A BIT STRING of whole octets (no unused bits). */
export const derBitString = (bytes: Uint8Array): Uint8Array => tlv(0x03, Uint8Array.of(0), bytes);
