// The one DER reader (ITU-T X.690) of the platform: hub certificate, OCSP and CRL parsing and the
// edge's card checks all walk TLVs with it. It never copies (every value is a subarray view or a
// pair of offsets) and only accepts DER: single-byte tags (X.509, CRLs and OCSP need no others),
// the definite form with the fewest length octets (X.690 10.1), and lengths that fit inside the
// enclosing element. Every malformation throws DerError with the byte offset; callers turn it into
// a Result at their boundary. Nothing here loops without advancing, so hostile input cannot spin it.
//
// Two ways to walk, over one header reader:
//   - DerCursor: one reusable object, nothing allocated per element (CRLs with millions of entries);
//   - readTlv / expectTlv / children: small Tlv records, for structures read once (certificates, OCSP).

/** Malformed DER, with the byte offset where it was found. */
export class DerError extends Error {
  readonly offset: number;
  constructor(what: string, offset: number) {
    super(`${what} at byte ${offset}`);
    this.name = 'DerError';
    this.offset = offset;
  }
}

/** Universal tags used by X.509, CRLs and OCSP (X.690 8.1.2, X.680 8.4), and context tags. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8String: 0x0c,
  PrintableString: 0x13,
  IA5String: 0x16,
  UTCTime: 0x17,
  GeneralizedTime: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
  /** Context-specific tag [n], constructed (EXPLICIT or a constructed IMPLICIT) unless told otherwise. */
  ctx: (n: number, constructed = true) => (constructed ? 0xa0 : 0x80) | n,
} as const;

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/**
 * Reads one TLV header at a time. `read()` returns the tag; after it, `tag`, `start` (first header
 * byte), `body` (first value byte) and `end` (one past the value) describe the element; the caller
 * moves on with `end`.
 */
export class DerCursor {
  tag = 0;
  start = 0;
  body = 0;
  end = 0;
  constructor(readonly buf: Uint8Array) {}

  /**
   * Reads the header at `pos`; the header must end at or before `limit`, the value need not
   * (`end` may then lie past `limit`). For a reader that has only the first bytes of an element.
   */
  header(pos: number, limit: number): number {
    const b = this.buf;
    if (pos + 2 > limit) throw new DerError(pos >= limit ? 'missing element' : 'truncated header', pos);
    const tag = b[pos];
    // X.690 8.1.2.4: tag number 31 means more tag octets follow.
    if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tag', pos);
    let len = b[pos + 1];
    let p = pos + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      // X.690 10.1: definite form only; 4 length octets cover anything below 4 GiB.
      if (n === 0) throw new DerError('indefinite length', pos + 1);
      if (n > 4) throw new DerError('length too long', pos + 1);
      if (p + n > limit) throw new DerError('truncated length', pos + 1);
      // X.690 10.1: the fewest octets, so no leading zero and no long form below 128.
      if (b[p] === 0) throw new DerError('non-minimal length', pos + 1);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + b[p + i];
      if (len < 0x80) throw new DerError('non-minimal length', pos + 1);
      p += n;
    }
    this.tag = tag;
    this.start = pos;
    this.body = p;
    this.end = p + len;
    return tag;
  }

  /** Reads the element at `pos`, which must end at or before `limit`. */
  read(pos: number, limit: number): number {
    const tag = this.header(pos, limit);
    if (this.end > limit) throw new DerError('length beyond enclosing element', pos + 1);
    return tag;
  }

  /** Reads the element at `pos` and requires `tag`. */
  expect(tag: number, pos: number, limit: number, what: string): this {
    if (this.read(pos, limit) !== tag) throw new DerError(`${what}: expected tag 0x${hex2(tag)}, found 0x${hex2(this.tag)}`, pos);
    return this;
  }
}

/** One TLV: tag byte, where the whole TLV starts, where its value starts and where it ends. */
export interface Tlv {
  tag: number;
  start: number;
  valueStart: number;
  end: number;
}

/** Reads the TLV at `pos`, which must end at or before `limit`. */
export function readTlv(buf: Uint8Array, pos: number, limit: number = buf.length): Tlv {
  const c = new DerCursor(buf);
  c.read(pos, limit);
  return { tag: c.tag, start: c.start, valueStart: c.body, end: c.end };
}

/** Reads the TLV at `pos` and checks its tag. */
export function expectTlv(buf: Uint8Array, pos: number, tag: number, limit: number = buf.length, what = 'value'): Tlv {
  const t = readTlv(buf, pos, limit);
  if (t.tag !== tag) throw new DerError(`${what}: expected tag 0x${hex2(tag)}, found 0x${hex2(t.tag)}`, pos);
  return t;
}

/** The children of a constructed TLV, which must fill it exactly. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  const c = new DerCursor(buf);
  let p = parent.valueStart;
  while (p < parent.end) {
    c.read(p, parent.end);
    out.push({ tag: c.tag, start: c.start, valueStart: c.body, end: c.end });
    p = c.end;
  }
  return out;
}

/** The value bytes of a TLV (a view). */
export const valueBytes = (buf: Uint8Array, t: Tlv): Uint8Array => buf.subarray(t.valueStart, t.end);
/** The whole TLV bytes (a view). */
export const bytesOf = (buf: Uint8Array, t: Tlv): Uint8Array => buf.subarray(t.start, t.end);

/** Byte equality of two arrays. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when the bytes of `b` at [start, end) equal `expected`. */
export function rangeEquals(b: Uint8Array, start: number, end: number, expected: Uint8Array): boolean {
  if (end - start !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (b[start + i] !== expected[i]) return false;
  return true;
}

/** Hex of bytes, lower case. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
