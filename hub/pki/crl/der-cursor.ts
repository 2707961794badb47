// A bounds-checked DER reader (ITU-T X.690) built for CRLs with millions of entries: one reusable
// cursor object, no per-TLV allocation, no copies. Every malformation throws CrlDerError with the byte
// offset; parseCrl/indexCrl catch it at their boundary and return crl_malformed. Nothing here loops
// without advancing, so hostile input cannot make it spin.

/** Malformed DER inside a CRL, with the byte offset where it was found. */
export class CrlDerError extends Error {
  readonly offset: number;
  constructor(what: string, offset: number) {
    super(`${what} at byte ${offset}`);
    this.name = 'CrlDerError';
    this.offset = offset;
  }
}

/** Universal tags used by CRLs (X.690 8.1.2). */
export const T = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTCTime: 0x17,
  GeneralizedTime: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/**
 * Reads one TLV header at a time. `read()` returns the tag; after it, `tag`, `start` (first header
 * byte), `body` (first value byte) and `end` (one past the value) describe the element; the caller
 * moves on with `end`.
 * Only DER is accepted: single-byte tags (X.509 needs no others), definite lengths, minimal
 * long-form lengths (X.690 10.1), and lengths that fit inside the enclosing element.
 */
export class DerCursor {
  tag = 0;
  start = 0;
  body = 0;
  end = 0;
  constructor(readonly buf: Uint8Array) {}

  /** Reads the header at `pos`; the element must end at or before `limit`. */
  read(pos: number, limit: number): number {
    const b = this.buf;
    if (pos + 2 > limit) throw new CrlDerError(pos >= limit ? 'missing element' : 'truncated header', pos);
    const tag = b[pos];
    if ((tag & 0x1f) === 0x1f) throw new CrlDerError('multi-byte tag', pos);
    let len = b[pos + 1];
    let p = pos + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      // X.690 10.1: definite form only; 4 length bytes cover anything below 4 GiB.
      if (n === 0) throw new CrlDerError('indefinite length', pos + 1);
      if (n > 4) throw new CrlDerError('length too long', pos + 1);
      if (p + n > limit) throw new CrlDerError('truncated length', pos + 1);
      if (b[p] === 0) throw new CrlDerError('non-minimal length', pos + 1);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + b[p + i];
      if (len < 0x80) throw new CrlDerError('non-minimal length', pos + 1);
      p += n;
    }
    if (len > limit - p) throw new CrlDerError('length beyond enclosing element', pos + 1);
    this.tag = tag;
    this.start = pos;
    this.body = p;
    this.end = p + len;
    return tag;
  }

  /** Reads the header at `pos` and requires `tag`. */
  expect(tag: number, pos: number, limit: number, what: string): this {
    if (this.read(pos, limit) !== tag) throw new CrlDerError(`${what}: expected tag 0x${hex2(tag)}, found 0x${hex2(this.tag)}`, pos);
    return this;
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Dotted form of an OID's value bytes (X.690 8.19); throws on a malformed encoding. */
export function oidToString(b: Uint8Array, start: number, end: number): string {
  if (end <= start) throw new CrlDerError('empty OID', start);
  const arcs: string[] = [];
  let v = 0n;
  let fresh = true;
  for (let i = start; i < end; i++) {
    const c = b[i];
    if (fresh && c === 0x80) throw new CrlDerError('non-minimal OID arc', i);
    v = (v << 7n) | BigInt(c & 0x7f);
    fresh = false;
    if ((c & 0x80) === 0) {
      if (arcs.length === 0) {
        const first = v < 40n ? 0n : v < 80n ? 1n : 2n;
        arcs.push(String(first), String(v - first * 40n));
      } else arcs.push(String(v));
      v = 0n;
      fresh = true;
    }
  }
  if (!fresh) throw new CrlDerError('truncated OID', end);
  return arcs.join('.');
}

/** True when the bytes at [start, end) equal `expected`. */
export function bytesEqual(b: Uint8Array, start: number, end: number, expected: Uint8Array): boolean {
  if (end - start !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (b[start + i] !== expected[i]) return false;
  return true;
}

/** Value of a non-negative INTEGER (X.690 8.3) as a bigint; throws when empty or negative. */
export function readUnsigned(b: Uint8Array, start: number, end: number, what: string): bigint {
  if (end <= start) throw new CrlDerError(`${what}: empty INTEGER`, start);
  if (b[start] & 0x80) throw new CrlDerError(`${what}: negative INTEGER`, start);
  let v = 0n;
  for (let i = start; i < end; i++) v = (v << 8n) | BigInt(b[i]);
  return v;
}
