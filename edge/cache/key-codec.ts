// Keyed identities (shared/sync.ts: 128-bit HMAC truncations, base64url without padding, 22
// characters) to and from four 32-bit words, without allocating on the lookup path.
//
// RFC 4648 section 5 (base64url). 22 characters carry 132 bits; the last character holds the final 2
// bits of the 16th byte and 4 zero bits. A string whose last character has any of those 4 bits set
// is not canonical (two strings would name one key), so it is refused.

/** Length of a keyed identity in characters. */
export const KEY_CHARS = 22;
/** Length of a keyed identity in bytes. */
export const KEY_BYTES = 16;

const DECODE = new Int8Array(128).fill(-1);
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

function sextet(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c < 128 ? DECODE[c] : -1;
}

/**
 * Decodes a keyed identity into `out[o..o+3]` as big-endian 32-bit words (bytes 0-3, 4-7, ...).
 * Returns false (leaving `out` partly written) when `s` is not a canonical 22-character key.
 */
export function decodeKey(s: string, out: Int32Array, o = 0): boolean {
  if (s.length !== KEY_CHARS) return false;
  // 5 groups of 4 characters give 15 bytes; the last 2 characters give the 16th byte.
  let w = 0;
  let wordBits = 0;
  let word = o;
  for (let g = 0; g < 5; g++) {
    const a = sextet(s, g * 4),
      b = sextet(s, g * 4 + 1),
      c = sextet(s, g * 4 + 2),
      d = sextet(s, g * 4 + 3);
    if ((a | b | c | d) < 0) return false;
    const v = (a << 18) | (b << 12) | (c << 6) | d; // 3 bytes
    for (let k = 2; k >= 0; k--) {
      w = (w << 8) | ((v >>> (k * 8)) & 0xff);
      if (++wordBits === 4) {
        out[word++] = w;
        w = 0;
        wordBits = 0;
      }
    }
  }
  const a = sextet(s, 20),
    b = sextet(s, 21);
  if ((a | b) < 0 || (b & 0x0f) !== 0) return false;
  out[word] = (w << 8) | ((a << 2) | (b >>> 4));
  return true;
}

/** Encodes four words (as written by decodeKey) back to the 22-character key. */
export function encodeKey(words: Int32Array, o = 0): string {
  const bytes = Buffer.allocUnsafe(KEY_BYTES);
  for (let i = 0; i < 4; i++) bytes.writeInt32BE(words[o + i], i * 4);
  return bytes.toString('base64url');
}
