// A minimal, bounds-checked DER reader (ITU-T X.690) for the hot paths of certificate checking.
// It never copies: every value is a subarray view of the input. Any malformation throws DerError,
// which callers turn into a Result at their boundary.

/** Malformed DER, with the byte offset where it was found. */
export class DerError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(`${message} at byte ${offset}`);
    this.name = 'DerError';
    this.offset = offset;
  }
}

/** One TLV: tag byte, where its value starts and ends, and where the whole TLV starts. */
export interface Tlv {
  tag: number;
  start: number;
  valueStart: number;
  end: number;
}

/** Universal and context tags used by X.509 (X.690 8.1.2). */
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
  ctx: (n: number, constructed = true) => (constructed ? 0xa0 : 0x80) | n,
} as const;

/** Reads the TLV at `pos`, which must end at or before `limit`. Only single-byte tags (all X.509 needs). */
export function readTlv(buf: Uint8Array, pos: number, limit: number = buf.length): Tlv {
  if (pos + 2 > limit) throw new DerError('truncated TLV header', pos);
  const tag = buf[pos];
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported', pos);
  let len = buf[pos + 1];
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    // X.690 10.1: DER uses the definite form with the fewest octets; 4 length octets cover 4 GiB.
    if (n === 0) throw new DerError('indefinite length is not DER', pos);
    if (n > 4) throw new DerError('length too large', pos);
    if (p + n > limit) throw new DerError('truncated length', pos);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i];
    if (len < 0x80 || (n > 1 && buf[p] === 0)) throw new DerError('non-minimal length', pos);
    p += n;
  }
  const end = p + len;
  if (end > limit) throw new DerError('value runs past its container', pos);
  return { tag, start: pos, valueStart: p, end };
}

/** Reads the TLV at `pos` and checks its tag. */
export function expectTlv(buf: Uint8Array, pos: number, tag: number, limit: number = buf.length, what = 'value'): Tlv {
  const t = readTlv(buf, pos, limit);
  if (t.tag !== tag) throw new DerError(`expected ${what} (tag 0x${tag.toString(16)}), found tag 0x${t.tag.toString(16)}`, pos);
  return t;
}

/** The children of a constructed TLV. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let p = parent.valueStart;
  while (p < parent.end) {
    const t = readTlv(buf, p, parent.end);
    out.push(t);
    p = t.end;
  }
  return out;
}

/** The value bytes of a TLV (a view). */
export const valueOf = (buf: Uint8Array, t: Tlv): Uint8Array => buf.subarray(t.valueStart, t.end);
/** The whole TLV bytes (a view). */
export const bytesOf = (buf: Uint8Array, t: Tlv): Uint8Array => buf.subarray(t.start, t.end);

/** Decodes an OBJECT IDENTIFIER value to dotted form (X.690 8.19). */
export function decodeOid(v: Uint8Array): string {
  if (v.length === 0) throw new DerError('empty OID', 0);
  const parts: number[] = [];
  let acc = 0;
  for (let i = 0; i < v.length; i++) {
    acc = acc * 128 + (v[i] & 0x7f);
    if (!(v[i] & 0x80)) {
      if (parts.length === 0) {
        const first = acc < 80 ? Math.floor(acc / 40) : 2;
        parts.push(first, acc - first * 40);
      } else parts.push(acc);
      acc = 0;
    } else if (i === v.length - 1) throw new DerError('truncated OID', i);
  }
  return parts.join('.');
}

/**
 * Decodes UTCTime or GeneralizedTime (RFC 5280 4.1.2.5: Zulu, seconds present). With
 * `fraction`, a GeneralizedTime may carry fractional seconds (X.690 11.7, as OCSP responders write).
 */
export function decodeTime(buf: Uint8Array, t: Tlv, opts: { fraction?: boolean } = {}): Date {
  // The longest valid form is a GeneralizedTime with a fraction; anything longer is not a time (and a
  // spread of a huge value would overflow the stack).
  if (t.end - t.valueStart > 32) throw new DerError('time value too long', t.start);
  const s = Buffer.from(buf.buffer, buf.byteOffset + t.valueStart, t.end - t.valueStart).toString('latin1');
  let m: RegExpMatchArray | null;
  let year: number;
  if (t.tag === TAG.UTCTime) {
    m = s.match(/^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/);
    if (!m) throw new DerError('bad UTCTime', t.start);
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy; // RFC 5280 4.1.2.5.1
  } else if (t.tag === TAG.GeneralizedTime) {
    m = opts.fraction ? s.match(/^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?Z$/) : s.match(/^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/);
    if (!m) throw new DerError('bad GeneralizedTime', t.start);
    year = Number(m[1]);
  } else throw new DerError('expected a time', t.start);
  const [mon, day, hh, mm, ss] = [Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])];
  // Date.UTC would roll month 13 or second 61 over silently; a time out of range is malformed.
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60) throw new DerError('time out of range', t.start);
  const ms = m[7] ? Math.floor(Number(`0.${m[7]}`) * 1000) : 0;
  const d = new Date(Date.UTC(year, mon - 1, day, hh, mm, ss, ms));
  if (Number.isNaN(d.getTime())) throw new DerError('invalid date', t.start);
  return d;
}

/** Hex of bytes, lower case. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
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

/** Byte equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
