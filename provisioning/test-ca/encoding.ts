// How the test CA writes and reads its numbers and files: PEM, serials as hex, DER INTEGER bytes.
import * as asn1js from 'asn1js';
import { randomBytes, randomInt } from 'node:crypto';
import { toPem as sharedToPem } from '../../shared/asn1/pem.ts';

/** PEM text for DER bytes (RFC 7468): the platform's one encoder (shared/asn1/pem.ts). */
export function toPem(der: Uint8Array, label: 'CERTIFICATE' | 'X509 CRL' | 'PRIVATE KEY'): string {
  return sharedToPem(der, label);
}

/** DER bytes of the first PEM block in the text; throws on text without one. */
export function fromPem(pem: string): Uint8Array {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(pem);
  if (!m) throw new TypeError('no PEM block found');
  const body = m[2].replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new TypeError('PEM body is not base64');
  return new Uint8Array(Buffer.from(body, 'base64'));
}

/** The serial as lowercase hex, even length, without a sign byte (e.g. 0x0a1b -> '0a1b'). */
export function serialToHex(serial: bigint): string {
  const h = serial.toString(16);
  return h.length % 2 ? `0${h}` : h;
}

/** Parses a serial written as hex (any case, optional `0x`, colons or spaces); undefined if malformed. */
export function parseSerialHex(text: string): bigint | undefined {
  const h = text.trim().replace(/^0x/i, '').replace(/[:\s]/g, '');
  if (!/^[0-9a-fA-F]{1,64}$/.test(h)) return undefined;
  const v = BigInt(`0x${h}`);
  return v > 0n ? v : undefined;
}

/** A positive random serial of 8 to 16 bytes (RFC 5280 4.1.2.2: at most 20 octets). */
export function randomSerial(): bigint {
  const len = randomInt(8, 17);
  const b = randomBytes(len);
  b[0] = 0x01 + (b[0] % 0x7f); // non-zero and below 0x80: positive, minimal DER, exactly `len` bytes
  return BigInt(`0x${b.toString('hex')}`);
}

/** DER INTEGER content bytes of a positive bigint (two's complement, minimal). */
export function integerBytes(v: bigint): Uint8Array {
  if (v < 0n) throw new RangeError('negative integer');
  let h = v.toString(16);
  if (h.length % 2) h = `0${h}`;
  if (parseInt(h.slice(0, 2), 16) >= 0x80) h = `00${h}`;
  return new Uint8Array(Buffer.from(h, 'hex'));
}

/** The bigint value of a PKI.js / asn1js INTEGER (unsigned reading of its content bytes). */
export function integerValue(i: asn1js.Integer): bigint {
  const hex = Buffer.from(i.valueBlock.valueHexView).toString('hex');
  return hex === '' ? 0n : BigInt(`0x${hex}`);
}
