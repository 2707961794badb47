// Hand-built DER for CRL shapes no CA tool writes on request (v1, long-form lengths, odd extensions).
// The signature of these CRLs is filler; they exercise parseCrl and indexCrl, not verification.

export function tlv(tag: number, ...content: ArrayLike<number>[]): Uint8Array {
  const len = content.reduce((a, c) => a + c.length, 0);
  const head: number[] = [tag];
  if (len < 0x80) head.push(len);
  else {
    const bytes: number[] = [];
    for (let l = len; l > 0; l = Math.floor(l / 256)) bytes.unshift(l & 0xff);
    head.push(0x80 | bytes.length, ...bytes);
  }
  const out = new Uint8Array(head.length + len);
  out.set(head);
  let p = head.length;
  for (const c of content) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}

/** The parts one after another (for long lists, which a spread argument cannot hold). */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const seq = (...c: ArrayLike<number>[]) => tlv(0x30, ...c);
export const set = (...c: ArrayLike<number>[]) => tlv(0x31, ...c);
export const octets = (...c: ArrayLike<number>[]) => tlv(0x04, ...c);
export const intBytes = (...b: number[]) => tlv(0x02, b);
export const utc = (s: string) => tlv(0x17, Buffer.from(s, 'latin1'));
export const gen = (s: string) => tlv(0x18, Buffer.from(s, 'latin1'));
export const oid = (...b: number[]) => tlv(0x06, b);
export const SHA256_RSA = seq(oid(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b), [0x05, 0x00]);
/** C=JP, O=Test CA (PrintableString). */
export const NAME = seq(set(seq(oid(0x55, 0x04, 0x06), tlv(0x13, Buffer.from('JP')))), set(seq(oid(0x55, 0x04, 0x0a), tlv(0x13, Buffer.from('Test CA')))));

export function ext(oidBytes: Uint8Array, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? seq(oidBytes, [0x01, 0x01, 0xff], octets(value)) : seq(oidBytes, octets(value));
}
export const reasonExt = (code: number) => ext(oid(0x55, 0x1d, 0x15), false, tlv(0x0a, [code]));

export function entry(serial: Uint8Array, time: Uint8Array, exts?: Uint8Array[]): Uint8Array {
  return exts ? seq(serial, time, seq(...exts)) : seq(serial, time);
}

/** A CRL around the given tbsCertList parts, with a 4-byte filler signature. */
export function crl(parts: { version?: boolean; entries?: Uint8Array[]; nextUpdate?: Uint8Array; extensions?: Uint8Array[]; thisUpdate?: Uint8Array }): Uint8Array {
  const tbs = seq(
    parts.version === false ? [] : intBytes(1),
    SHA256_RSA,
    NAME,
    parts.thisUpdate ?? utc('260101000000Z'),
    parts.nextUpdate ?? [],
    parts.entries ? seq(concat(parts.entries)) : [],
    parts.extensions ? tlv(0xa0, seq(...parts.extensions)) : [],
  );
  return seq(tbs, SHA256_RSA, tlv(0x03, [0, 1, 2, 3, 4]));
}
