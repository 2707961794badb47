// Short command APDUs as a card sees them (ISO/IEC 7816-4:2020 5.1, 5.2): the four cases, decoded
// from the bytes alone. Extended length is not supported: a My Number Card is driven with short APDUs.
import { parseApdu as parseReaderApdu, type CommandApdu as ReaderApdu } from '../../edge/reader/apdu.ts';

/** A decoded short command APDU: the edge's reading of it, with the case the card answers by. */
export interface CommandApdu extends Omit<ReaderApdu, 'le'> {
  /** expected response length Ne (Le=00 means 256); undefined for cases 1 and 3 */
  ne?: number;
  /** ISO 7816-4 case 1..4 */
  kase: 1 | 2 | 3 | 4;
}

/**
 * Decodes a short APDU with the edge's own parser (edge/reader/apdu.ts: one reading of the bytes on
 * both sides of the reader), or returns undefined when its length bytes do not add up.
 */
export function parseApdu(b: Uint8Array): CommandApdu | undefined {
  const r = parseReaderApdu(b);
  if (!r.ok) return undefined;
  const { le, ...apdu } = r.apdu;
  // Lc is never 0 in a short APDU, so data is empty exactly in cases 1 and 2.
  const kase = apdu.data.length === 0 ? (le === undefined ? 1 : 2) : le === undefined ? 3 : 4;
  return le === undefined ? { ...apdu, kase } : { ...apdu, ne: le, kase };
}

/** Lower-case hex of bytes. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Bytes from hex, ignoring spaces and colons. */
export function fromHex(s: string): Uint8Array {
  const clean = s.replace(/[\s:]/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new TypeError('not hex');
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}
