// Command APDUs (ISO/IEC 7816-4:2020 5.1): parsing, building and hex.
// Only short APDUs: the My Number Card answers short APDUs and the reader layer never needs extended
// length, so an extended-length header is treated as malformed.
import { JPKI_AID, MYKEY_AID, SHA256_DIGEST_INFO_PREFIX } from '../../shared/card.ts';

/** A parsed short command APDU. `le` is the expected length 1..256 (Le byte 00 = 256), or undefined. */
export interface CommandApdu {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  data: Uint8Array;
  le: number | undefined;
}

/** Why a byte string is not a short command APDU. */
export type ApduParseResult = { ok: true; apdu: CommandApdu } | { ok: false; reason: string };

/** The data of an APDU without data: one shared empty array (nothing can be written into 0 bytes). */
export const NO_APDU_DATA = new Uint8Array(0);

/**
 * Parses a short command APDU, ISO 7816-4 5.1 cases 1 to 4:
 *   case 1: CLA INS P1 P2                 case 2: ... Le
 *   case 3: ... Lc Data                   case 4: ... Lc Data Le
 */
export function parseApdu(bytes: Uint8Array): ApduParseResult {
  if (!(bytes instanceof Uint8Array)) return { ok: false, reason: 'APDU is not a byte array' };
  if (bytes.length < 4) return { ok: false, reason: `APDU of ${bytes.length} byte(s) is shorter than its 4-byte header` };
  // Indexed reads and one object literal: this runs for every APDU (destructuring a Uint8Array goes
  // through its iterator). `data` is a copy, so the guard's view cannot change under it.
  const cla = bytes[0];
  const ins = bytes[1];
  const p1 = bytes[2];
  const p2 = bytes[3];
  if (bytes.length === 4) return { ok: true, apdu: { cla, ins, p1, p2, data: NO_APDU_DATA, le: undefined } };
  if (bytes.length === 5) return { ok: true, apdu: { cla, ins, p1, p2, data: NO_APDU_DATA, le: bytes[4] || 256 } };
  const lc = bytes[4];
  // Lc = 00 followed by more bytes is the extended-length form (ISO 7816-4 5.1), refused here.
  if (lc === 0) return { ok: false, reason: 'extended-length APDUs are not used with this card' };
  if (bytes.length === 5 + lc) return { ok: true, apdu: { cla, ins, p1, p2, data: bytes.slice(5), le: undefined } };
  if (bytes.length === 6 + lc) return { ok: true, apdu: { cla, ins, p1, p2, data: bytes.slice(5, 5 + lc), le: bytes[5 + lc] || 256 } };
  return { ok: false, reason: `Lc says ${lc} data byte(s) but the APDU carries ${bytes.length - 5}` };
}

const isByte = (b: number): boolean => Number.isInteger(b) && b >= 0 && b <= 255;

/** Serializes a command APDU in the short form. Throws RangeError on values outside it (a programming error). */
export function buildApdu(cla: number, ins: number, p1: number, p2: number, data?: Uint8Array, le?: number): Uint8Array {
  if (!isByte(cla) || !isByte(ins) || !isByte(p1) || !isByte(p2)) throw new RangeError('APDU header byte out of range');
  const d = data ?? new Uint8Array(0);
  if (d.length > 255) throw new RangeError('short APDU data is at most 255 bytes');
  if (le !== undefined && (!Number.isInteger(le) || le < 1 || le > 256)) throw new RangeError('short APDU Le is 1..256');
  const out = new Uint8Array(4 + (d.length ? 1 + d.length : 0) + (le !== undefined ? 1 : 0));
  out[0] = cla;
  out[1] = ins;
  out[2] = p1;
  out[3] = p2;
  let i = 4;
  if (d.length) {
    out[i++] = d.length;
    out.set(d, i);
    i += d.length;
  }
  if (le !== undefined) out[i] = le & 0xff; // 256 is written as 00
  return out;
}

/** Instruction bytes the reader layer knows (ISO 7816-4 and the JPKI proprietary SIGN). */
export const INS = {
  select: 0xa4,
  readBinary: 0xb0,
  verify: 0x20,
  getResponse: 0xc0,
  /** JPKI: COMPUTE DIGITAL SIGNATURE with CLA 80 (proprietary) */
  jpkiSign: 0x2a,
  getChallenge: 0x84,
  externalAuthenticate: 0x82,
  createFile: 0xe0,
  updateBinary: 0xd6,
} as const;

/** SELECT by DF name (P1=04), first occurrence, no response data (P2=0C). */
export function selectByName(aid: Uint8Array): Uint8Array {
  return buildApdu(0x00, INS.select, 0x04, 0x0c, aid);
}

/** SELECT EF under the current DF by file identifier (P1=02, P2=0C). */
export function selectEf(fid: number): Uint8Array {
  return buildApdu(0x00, INS.select, 0x02, 0x0c, Uint8Array.of(fid >> 8, fid & 0xff));
}

/** READ BINARY from the current EF; offset is 15 bits because P1 bit 8 set would mean a short EF id. */
export function readBinary(offset: number, le: number): Uint8Array {
  if (!Number.isInteger(offset) || offset < 0 || offset > 0x7fff) throw new RangeError('READ BINARY offset is 0..32767');
  return buildApdu(0x00, INS.readBinary, offset >> 8, offset & 0xff, undefined, le);
}

/** VERIFY against the current PIN EF (P2=80, specific reference data); without a PIN it only asks the tries left. */
export function verify(pin?: Uint8Array): Uint8Array {
  return buildApdu(0x00, INS.verify, 0x00, 0x80, pin && pin.length ? pin : undefined);
}

/** GET RESPONSE for `le` bytes (ISO 7816-4 11.6.1). */
export function getResponse(le: number): Uint8Array {
  return buildApdu(0x00, INS.getResponse, 0x00, 0x00, undefined, le);
}

/** JPKI SIGN over a DigestInfo with the current key EF: 80 2A 00 80 Lc DigestInfo 00. */
export function jpkiSign(digestInfo: Uint8Array): Uint8Array {
  return buildApdu(0x80, INS.jpkiSign, 0x00, 0x80, digestInfo, 256);
}

/** The DER DigestInfo of a SHA-256 digest (RFC 8017 9.2 note 1). */
export function sha256DigestInfo(digest: Uint8Array): Uint8Array {
  if (digest.length !== 32) throw new RangeError('a SHA-256 digest is 32 bytes');
  const out = new Uint8Array(SHA256_DIGEST_INFO_PREFIX.length + 32);
  out.set(SHA256_DIGEST_INFO_PREFIX);
  out.set(digest, SHA256_DIGEST_INFO_PREFIX.length);
  return out;
}

/** The prebuilt SELECT of the JPKI application. */
export const SELECT_JPKI = selectByName(JPKI_AID);
/** The prebuilt SELECT of the MyKey application. */
export const SELECT_MYKEY = selectByName(MYKEY_AID);

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Upper-case hex with spaces, as APDUs are written in the standards: `00 A4 04 0C`. */
export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += (i ? ' ' : '') + (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return s.toUpperCase();
}

/** Parses hex with optional spaces. Throws RangeError on anything else. */
export function fromHex(hex: string): Uint8Array {
  const clean = hex.replace(/\s+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(clean)) throw new RangeError('not a hex byte string');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}
