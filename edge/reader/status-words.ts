// Status words (ISO/IEC 7816-4:2020 5.6): the one place that knows what SW1 SW2 mean.
// Every card response ends in two status bytes; everything else in the reader layer asks this file.
import { MyKeyError } from '../../shared/errors.ts';

/** SW 90 00: normal processing. */
export const SW_OK = 0x9000;

/** Named status words the reader layer reacts to. */
export const SW = {
  ok: 0x9000,
  /** 62 82: end of file reached before reading Le bytes */
  endOfFile: 0x6282,
  /** 67 00: wrong length */
  wrongLength: 0x6700,
  /** 69 82: security status not satisfied (e.g. SIGN before VERIFY) */
  securityNotSatisfied: 0x6982,
  /** 69 83: authentication method blocked */
  authMethodBlocked: 0x6983,
  /** 69 84: reference data not usable (a blocked PIN on JPKI) */
  referenceDataNotUsable: 0x6984,
  /** 69 86: command not allowed (no current EF) */
  noCurrentEf: 0x6986,
  /** 6A 82: file or application not found */
  fileNotFound: 0x6a82,
  /** 6A 86: incorrect P1-P2 */
  wrongP1P2: 0x6a86,
  /** 6B 00: wrong parameters, offset outside the EF */
  wrongOffset: 0x6b00,
  /** 6D 00: instruction not supported */
  insNotSupported: 0x6d00,
  /** 6E 00: class not supported */
  claNotSupported: 0x6e00,
} as const;

/**
 * The status word of a response APDU (its last two bytes). Throws card_response_malformed when the
 * response is shorter than two bytes: a card response is outside input.
 */
export function sw(resp: Uint8Array): number {
  if (resp.length < 2) throw new MyKeyError('card_response_malformed', `card response of ${resp.length} byte(s) has no status word`);
  return (resp[resp.length - 2] << 8) | resp[resp.length - 1];
}

/** The data part of a response APDU (everything before the status word). */
export function responseData(resp: Uint8Array): Uint8Array {
  if (resp.length < 2) throw new MyKeyError('card_response_malformed', `card response of ${resp.length} byte(s) has no status word`);
  return resp.subarray(0, resp.length - 2);
}

/** True for 90 00. (ISO 7816-4 also counts 61 xx as normal; the transport resolves those first.) */
export function isOk(status: number): boolean {
  return status === SW_OK;
}

/** ISO 7816-4: 61 xx = xx more bytes wait for GET RESPONSE (00 = 256 or more). Returns the count, or undefined. */
export function bytesAvailable(status: number): number | undefined {
  if (status >> 8 !== 0x61) return undefined;
  return status & 0xff || 256;
}

/** ISO 7816-4: 6C xx = wrong Le, xx is the exact length. Returns the length (00 = 256), or undefined. */
export function correctLe(status: number): number | undefined {
  if (status >> 8 !== 0x6c) return undefined;
  return status & 0xff || 256;
}

/**
 * ISO 7816-4: 63 Cx = verification failed, x further tries allowed (x = 0 means now blocked).
 * Returns x, or undefined when the status word is not 63 Cx.
 */
export function triesLeft(status: number): number | undefined {
  if ((status & 0xfff0) !== 0x63c0) return undefined;
  return status & 0x0f;
}

/** True when SW1 is a value ISO 7816-4 defines (61-6F, 90); anything else is a garbled response. */
export function isWellFormedStatus(status: number): boolean {
  const sw1 = status >> 8;
  return sw1 === 0x90 || (sw1 >= 0x61 && sw1 <= 0x6f);
}

const EXACT: Record<number, string> = {
  0x9000: 'success',
  0x6200: 'warning: state of non-volatile memory unchanged',
  0x6281: 'warning: part of returned data may be corrupted',
  0x6282: 'warning: end of file reached before reading Le bytes',
  0x6283: 'warning: selected file deactivated',
  0x6300: 'warning: verification failed',
  0x6400: 'error: execution error, memory unchanged',
  0x6581: 'error: memory failure',
  0x6700: 'error: wrong length',
  0x6881: 'error: logical channel not supported',
  0x6882: 'error: secure messaging not supported',
  0x6981: 'error: command incompatible with file structure',
  0x6982: 'error: security status not satisfied',
  0x6983: 'error: authentication method blocked',
  0x6984: 'error: reference data not usable',
  0x6985: 'error: conditions of use not satisfied',
  0x6986: 'error: command not allowed (no current EF)',
  0x6a80: 'error: incorrect parameters in the data field',
  0x6a81: 'error: function not supported',
  0x6a82: 'error: file or application not found',
  0x6a83: 'error: record not found',
  0x6a84: 'error: not enough memory space in the file',
  0x6a86: 'error: incorrect parameters P1-P2',
  0x6a88: 'error: referenced data not found',
  0x6b00: 'error: wrong parameters P1-P2 (offset outside the EF)',
  0x6d00: 'error: instruction not supported',
  0x6e00: 'error: class not supported',
  0x6f00: 'error: no precise diagnosis',
};

/** A short English meaning of a status word, for messages and logs (ISO 7816-4 table 6). */
export function swMeaning(status: number): string {
  const exact = EXACT[status];
  if (exact) return exact;
  const t = triesLeft(status);
  if (t !== undefined) return t === 0 ? 'error: verification failed, no tries left' : `warning: verification failed, ${t} tries left`;
  const more = bytesAvailable(status);
  if (more !== undefined) return `${more} response bytes still available`;
  const le = correctLe(status);
  if (le !== undefined) return `error: wrong Le, exact length is ${le}`;
  switch (status >> 8) {
    case 0x62:
      return 'warning: state of non-volatile memory unchanged';
    case 0x63:
      return 'warning: state of non-volatile memory changed';
    case 0x64:
      return 'error: execution error, memory unchanged';
    case 0x65:
      return 'error: execution error, memory changed';
    case 0x66:
      return 'error: security-related issue';
    case 0x67:
      return 'error: wrong length';
    case 0x68:
      return 'error: functions in CLA not supported';
    case 0x69:
      return 'error: command not allowed';
    case 0x6a:
      return 'error: wrong parameters P1-P2';
    case 0x6b:
      return 'error: wrong parameters P1-P2';
    case 0x6d:
      return 'error: instruction not supported';
    case 0x6e:
      return 'error: class not supported';
    case 0x6f:
      return 'error: no precise diagnosis';
    default:
      return 'not an ISO 7816-4 status word';
  }
}

/** `90 00` style text of a status word. */
export function swHex(status: number): string {
  return `${(status >> 8).toString(16).padStart(2, '0')} ${(status & 0xff).toString(16).padStart(2, '0')}`.toUpperCase();
}

/** Builds the error for an unexpected status word: card_error, or card_response_malformed when SW1 is not ISO. */
export function swError(status: number, what: string): MyKeyError {
  const code = isWellFormedStatus(status) ? 'card_error' : 'card_response_malformed';
  return new MyKeyError(code, `${what}: card answered ${swHex(status)} (${swMeaning(status)})`, { details: { sw: swHex(status) } });
}
