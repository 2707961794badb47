// RFC 7468 textual encoding: `-----BEGIN <label>-----`, base64 of the DER, `-----END <label>-----`.
// One encoder and one strict decoder for certificates, CRLs, keys and CSRs.
import { DerError } from './der.ts';

/** PEM text of DER bytes: base64 in 64-character lines (RFC 7468 2), ending with a newline. */
export function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += b64.slice(i, i + 64) + '\n';
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/** True when the bytes look like PEM text (first non-blank byte is '-', after an optional BOM), not DER. */
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
 * Checks the base64 between `from` and `to` strictly (RFC 7468 3: only the base64 alphabet, line
 * breaks and blanks, padding only at the end, a multiple of 4 characters) and decodes it. Node's
 * own decoder silently skips anything it does not understand, so it is never given unchecked text.
 */
function decodeBase64Strict(text: string, from: number, to: number): Uint8Array {
  let pad = 0;
  let chars = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    const isB64 = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f;
    if (isB64) {
      if (pad) throw new DerError('PEM base64 after padding', i);
      chars++;
    } else if (c === 0x3d) {
      pad++;
      chars++;
      if (pad > 2) throw new DerError('PEM base64 padding', i);
    } else if (c !== 0x0a && c !== 0x0d && c !== 0x20 && c !== 0x09) {
      throw new DerError('PEM base64 contains a character outside the alphabet', i);
    }
  }
  if (chars === 0 || chars % 4 !== 0) throw new DerError('PEM base64 length is not a multiple of 4', to);
  const der = Buffer.from(text.slice(from, to), 'base64');
  return new Uint8Array(der.buffer, der.byteOffset, der.byteLength);
}

function asText(input: string | Uint8Array): string {
  return typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('latin1');
}

/**
 * The DER of every `label` block in PEM text, in order (a bundle of certificates). Text outside the
 * blocks is ignored (RFC 7468 5.2 explanatory text); a block without its END line, or with anything
 * but base64 inside, throws DerError.
 */
export function pemBlocks(input: string | Uint8Array, label: string): Uint8Array[] {
  const text = asText(input);
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const out: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const b = text.indexOf(begin, at);
    if (b < 0) return out;
    const bodyStart = b + begin.length;
    const e = text.indexOf(end, bodyStart);
    if (e < 0) throw new DerError(`PEM without "${end}"`, bodyStart);
    out.push(decodeBase64Strict(text, bodyStart, e));
    at = e + end.length;
  }
}

/** The DER of the first `label` block in PEM text; throws DerError when there is none or it is malformed. */
export function fromPem(input: string | Uint8Array, label: string): Uint8Array {
  const text = asText(input);
  const begin = `-----BEGIN ${label}-----`;
  const b = text.indexOf(begin);
  if (b < 0) throw new DerError(`PEM without "${begin}"`, 0);
  const end = `-----END ${label}-----`;
  const bodyStart = b + begin.length;
  const e = text.indexOf(end, bodyStart);
  if (e < 0) throw new DerError(`PEM without "${end}"`, bodyStart);
  return decodeBase64Strict(text, bodyStart, e);
}
