// Short command APDUs as a card sees them (ISO/IEC 7816-4:2020 5.1, 5.2): the four cases, decoded
// from the bytes alone. Extended length is not supported: a My Number Card is driven with short APDUs.

/** A decoded short command APDU. */
export interface CommandApdu {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  /** command data (empty for cases 1 and 2) */
  data: Uint8Array;
  /** expected response length Ne (Le=00 means 256); undefined for cases 1 and 3 */
  ne?: number;
  /** ISO 7816-4 case 1..4 */
  kase: 1 | 2 | 3 | 4;
}

/** Decodes a short APDU, or returns undefined when its length bytes do not add up. */
export function parseApdu(b: Uint8Array): CommandApdu | undefined {
  if (b.length < 4) return undefined;
  const [cla, ins, p1, p2] = b;
  if (b.length === 4) return { cla, ins, p1, p2, data: new Uint8Array(0), kase: 1 };
  const l1 = b[4];
  if (b.length === 5) return { cla, ins, p1, p2, data: new Uint8Array(0), ne: l1 === 0 ? 256 : l1, kase: 2 };
  // Lc = 00 followed by more bytes would be an extended-length APDU (ISO 7816-4 5.1): not supported.
  if (l1 === 0) return undefined;
  if (b.length === 5 + l1) return { cla, ins, p1, p2, data: b.slice(5, 5 + l1), kase: 3 };
  if (b.length === 6 + l1) {
    const le = b[5 + l1];
    return { cla, ins, p1, p2, data: b.slice(5, 5 + l1), ne: le === 0 ? 256 : le, kase: 4 };
  }
  return undefined;
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
