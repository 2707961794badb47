// RFC 7468: textual encoding of a CRL, `-----BEGIN X509 CRL-----` base64 `-----END X509 CRL-----`.
import { CrlDerError } from './der-cursor.ts';

const BEGIN = '-----BEGIN X509 CRL-----';
const END = '-----END X509 CRL-----';

/** True when the input looks like PEM text (first non-blank byte is '-'), not DER (which starts 0x30). */
export function looksLikePem(input: Uint8Array): boolean {
  for (let i = 0; i < input.length && i < 1024; i++) {
    const c = input[i];
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    // UTF-8 byte order mark, written by some editors.
    if (i === 0 && c === 0xef && input[1] === 0xbb && input[2] === 0xbf) {
      i += 2;
      continue;
    }
    return c === 0x2d;
  }
  return false;
}

/**
 * Decodes the first X509 CRL block of PEM text to DER. Base64 is checked strictly (RFC 7468 3:
 * only the base64 alphabet, line breaks and blanks, padding only at the end), since Node's own
 * decoder silently skips anything it does not understand.
 */
export function decodePemCrl(input: Uint8Array): Uint8Array {
  const text = Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('latin1');
  const b = text.indexOf(BEGIN);
  if (b < 0) throw new CrlDerError('PEM without "-----BEGIN X509 CRL-----"', 0);
  const bodyStart = b + BEGIN.length;
  const e = text.indexOf(END, bodyStart);
  if (e < 0) throw new CrlDerError('PEM without "-----END X509 CRL-----"', bodyStart);
  let pad = 0;
  let chars = 0;
  for (let i = bodyStart; i < e; i++) {
    const c = text.charCodeAt(i);
    const isB64 = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f;
    if (isB64) {
      if (pad) throw new CrlDerError('PEM base64 after padding', i);
      chars++;
    } else if (c === 0x3d) {
      pad++;
      chars++;
      if (pad > 2) throw new CrlDerError('PEM base64 padding', i);
    } else if (c !== 0x0a && c !== 0x0d && c !== 0x20 && c !== 0x09) {
      throw new CrlDerError('PEM base64 contains a character outside the alphabet', i);
    }
  }
  if (chars === 0 || chars % 4 !== 0) throw new CrlDerError('PEM base64 length is not a multiple of 4', e);
  const der = Buffer.from(text.slice(bodyStart, e), 'base64');
  return new Uint8Array(der.buffer, der.byteOffset, der.byteLength);
}
