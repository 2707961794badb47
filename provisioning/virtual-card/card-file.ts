// The virtual My Number Card's contents as a versioned JSON file.
//
// A card file is what a technician or a test hands to `VirtualCard`: the JPKI certificates and keys,
// both PINs with their retry counters, the MyKey application and the decoy My Number applications.
// PIN counters and the MyKey ID area are written back on change (see `onChange` in card.ts), so a
// PIN blocked in one session stays blocked in the next, as on a real card.
//
// Binary fields are base64 (certificates, PKCS#8 keys) or hex (ATR, MyKey ID content, write key), so
// the file stays readable and diffable. Everything is validated on load, with every problem listed.
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile, unlink } from 'node:fs/promises';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { MyKeyError } from '../../shared/errors.ts';
import { isMyKeyId } from '../../shared/ids.ts';
import { exportPkcs8, issueSigningCert, issueUserAuthCert, type CryptoKeyPair, type TestCa } from '../test-ca/ca.ts';

/** Version of the card-file format written by this code. */
export const CARD_FILE_VERSION = 1;

/** A real contactless My Number Card ATR, as PC/SC readers synthesize it from the ATQB (CARD.md). */
export const DEFAULT_ATR_HEX = '3b888001000005e0b381a1007f';

/** Contents of JPKI EF 0006 on current cards. */
export const JPKI_TOKEN = 'JPKIAPICCTOKEN2';
/** Length the token EF is padded to (with spaces), the size middleware reads it with. */
export const JPKI_TOKEN_EF_SIZE = 32;

const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/]+={0,2}$', minLength: 4 });
const Hex = (bytes?: { min?: number; max?: number }) =>
  Type.String({
    pattern: `^([0-9a-f]{2})${bytes ? `{${bytes.min ?? 0},${bytes.max ?? ''}}` : '*'}$`,
  });

const PinSchema = (pattern: string, maxTries: number) =>
  Type.Object(
    {
      value: Type.String({ pattern }),
      triesLeft: Type.Integer({ minimum: 0, maximum: maxTries }),
      maxTries: Type.Literal(maxTries),
    },
    { additionalProperties: false },
  );

/** JSON schema of a card file (version 1). */
export const CardFileSchema = Type.Object(
  {
    version: Type.Literal(CARD_FILE_VERSION),
    label: Type.String({ minLength: 1, maxLength: 64 }),
    /** ATR as lower-case hex, 2 to 33 bytes (ISO 7816-3 8.2.1) */
    atr: Hex({ min: 2, max: 33 }),
    jpki: Type.Object(
      {
        /** user-authentication certificate (EF 000A), DER base64 */
        authCert: Base64,
        /** its CA certificate (EF 000B) */
        authCaCert: Base64,
        /** signing certificate (EF 0001) */
        signCert: Base64,
        /** signing CA certificate (EF 0002) */
        signCaCert: Base64,
        /** user-authentication private key (EF 0017), PKCS#8 DER base64 */
        authKey: Base64,
        /** signing private key (EF 001A), PKCS#8 DER base64 */
        signKey: Base64,
        /** user-authentication PIN: 4 digits, 3 tries (EF 0018) */
        authPin: PinSchema('^[0-9]{4}$', 3),
        /** signing PIN: 6 to 16 of A-Z 0-9, 5 tries (EF 001B) */
        signPin: PinSchema('^[A-Z0-9]{6,16}$', 5),
        /** EF 0006 contents as ASCII; padded with spaces to 32 bytes on the card */
        token: Type.String({ pattern: '^[\\x20-\\x7e]{1,32}$' }),
      },
      { additionalProperties: false },
    ),
    mykey: Type.Object(
      {
        /** whether the card carries the MyKey application at all */
        present: Type.Boolean(),
        /** the MyKey ID area (EF 0001): reserved by the counter, then written */
        idArea: Type.Object(
          {
            reserved: Type.Boolean(),
            /** hex of the 8 bytes written, or '' when reserved but never written */
            content: Type.Union([Type.Literal(''), Hex({ min: 8, max: 8 })]),
          },
          { additionalProperties: false },
        ),
        /** the municipal counter's 32-byte write key (HMAC-SHA256 key for EXTERNAL AUTHENTICATE) */
        writeKey: Hex({ min: 32, max: 32 }),
      },
      { additionalProperties: false },
    ),
    /** The applications that hold the My Number, filled with a decoy so tests can prove nobody reads them. */
    decoy: Type.Object(
      {
        /** a 12-digit decoy number with a valid check digit */
        myNumber: Type.String({ pattern: '^[0-9]{12}$' }),
        name: Type.String({ minLength: 1, maxLength: 64 }),
        address: Type.String({ minLength: 1, maxLength: 128 }),
        birthDate: Type.String({ pattern: '^[0-9]{8}$' }),
        sex: Type.Union([Type.Literal('1'), Type.Literal('2'), Type.Literal('3'), Type.Literal('9')]),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

/** A validated card file. */
export type CardFile = Static<typeof CardFileSchema>;

/**
 * The My Number check digit (番号利用法施行令 8条): weights 2..7, 2..6 from the rightmost of the
 * first 11 digits; remainder r of the weighted sum mod 11; the check digit is 0 when r <= 1, else 11 - r.
 */
export function myNumberCheckDigit(first11: string): number {
  if (!/^[0-9]{11}$/.test(first11)) throw new MyKeyError('validation_failed', 'need 11 digits');
  let sum = 0;
  for (let n = 1; n <= 11; n++) {
    const p = Number(first11[11 - n]);
    const q = n <= 6 ? n + 1 : n - 5;
    sum += p * q;
  }
  const r = sum % 11;
  return r <= 1 ? 0 : 11 - r;
}

/** True when a 12-digit string carries a valid My Number check digit. */
export function isValidMyNumber(s: string): boolean {
  return /^[0-9]{12}$/.test(s) && myNumberCheckDigit(s.slice(0, 11)) === Number(s[11]);
}

/** Every problem with a would-be card file, as `path: message` lines (empty when valid). */
export function cardFileProblems(value: unknown): string[] {
  const problems = [...Value.Errors(CardFileSchema, value)].map((e) => `${e.path || '/'}: ${e.message}`);
  if (problems.length) return problems;
  const f = value as CardFile;
  if (!isValidMyNumber(f.decoy.myNumber)) problems.push('/decoy/myNumber: check digit is wrong');
  if (f.mykey.idArea.content !== '' && !f.mykey.idArea.reserved) {
    problems.push('/mykey/idArea/content: the area holds content but is not reserved');
  }
  for (const k of ['authCert', 'authCaCert', 'signCert', 'signCaCert', 'authKey', 'signKey'] as const) {
    if (Buffer.from(f.jpki[k], 'base64').toString('base64') !== f.jpki[k]) problems.push(`/jpki/${k}: not canonical base64`);
  }
  return problems;
}

/** Validates a parsed card file; throws `validation_failed` listing every problem. */
export function parseCardFile(value: unknown, source = 'card file'): CardFile {
  const problems = cardFileProblems(value);
  if (problems.length) {
    throw new MyKeyError('validation_failed', `${source} is not a valid card file:\n  ${problems.join('\n  ')}`, {
      details: { problems },
    });
  }
  return value as CardFile;
}

/** Reads and validates a card file. */
export async function loadCardFile(path: string): Promise<CardFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new MyKeyError('not_found', `cannot read card file ${path}`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new MyKeyError('validation_failed', `card file ${path} is not JSON`, { cause });
  }
  return parseCardFile(json, `card file ${path}`);
}

/**
 * Writes a card file atomically: a temporary file beside it, then rename(2), so a crash leaves
 * either the old or the new file, never half of one.
 */
export async function saveCardFile(path: string, card: CardFile): Promise<void> {
  // Concurrent saves may finish in any order; use cardFilePersister to keep the newest.
  parseCardFile(card, 'card to save');
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(card, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Keeps a card file on disk in step with a running VirtualCard: pass `onChange` to the card. Writes
 * run one at a time and only the newest state is written, so a burst of changes ends with the last
 * one on disk. `flush()` resolves when everything handed over so far is written.
 */
export function cardFilePersister(path: string, onError: (err: unknown) => void = (e) => console.error(e)) {
  let latest: CardFile | undefined;
  let running: Promise<void> = Promise.resolve();
  let busy = false;
  const pump = async (): Promise<void> => {
    busy = true;
    try {
      while (latest) {
        const next = latest;
        latest = undefined;
        await saveCardFile(path, next).catch(onError);
      }
    } finally {
      busy = false;
    }
  };
  return {
    onChange(f: CardFile): void {
      latest = f;
      if (!busy) running = pump();
    },
    async flush(): Promise<void> {
      while (busy || latest) {
        if (!busy) running = pump();
        await running;
      }
    },
  };
}

/** The MyKey ID stored in the card's area as ASCII, or undefined when not reserved or not written. */
export function mykeyIdOf(card: CardFile): string | undefined {
  const c = card.mykey.idArea;
  return c.reserved && c.content ? Buffer.from(c.content, 'hex').toString('latin1') : undefined;
}

/** Key material and certificates that go onto a card. */
export interface CardParts {
  label?: string;
  atrHex?: string;
  authCertDer: Uint8Array;
  authCaCertDer: Uint8Array;
  signCertDer: Uint8Array;
  signCaCertDer: Uint8Array;
  /** PKCS#8 DER */
  authKeyPkcs8: Uint8Array;
  /** PKCS#8 DER */
  signKeyPkcs8: Uint8Array;
  pin?: string;
  signPin?: string;
  /** a MyKey ID written into the area; null or undefined: area not reserved; '' : reserved, empty */
  mykeyId?: string | null;
  withMyKeyApp?: boolean;
  /** hex; random when absent */
  writeKeyHex?: string;
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

/** Assembles and validates a card file from ready certificates and keys. */
export function buildCardFile(p: CardParts): CardFile {
  if (p.mykeyId && !isMyKeyId(p.mykeyId)) {
    throw new MyKeyError('mykey_id_malformed', 'the MyKey ID to write is not 8 characters of the MyKey alphabet');
  }
  const reserved = p.mykeyId !== undefined && p.mykeyId !== null;
  const first11 = '12345678901';
  return parseCardFile({
    version: CARD_FILE_VERSION,
    label: p.label ?? 'virtual My Number Card',
    atr: (p.atrHex ?? DEFAULT_ATR_HEX).replace(/[\s:]/g, '').toLowerCase(),
    jpki: {
      authCert: b64(p.authCertDer),
      authCaCert: b64(p.authCaCertDer),
      signCert: b64(p.signCertDer),
      signCaCert: b64(p.signCaCertDer),
      authKey: b64(p.authKeyPkcs8),
      signKey: b64(p.signKeyPkcs8),
      authPin: { value: p.pin ?? '1234', triesLeft: 3, maxTries: 3 },
      signPin: { value: p.signPin ?? 'ABC123', triesLeft: 5, maxTries: 5 },
      token: JPKI_TOKEN,
    },
    mykey: {
      present: p.withMyKeyApp ?? true,
      idArea: { reserved, content: p.mykeyId ? Buffer.from(p.mykeyId, 'latin1').toString('hex') : '' },
      writeKey: p.writeKeyHex ?? randomBytes(32).toString('hex'),
    },
    decoy: {
      myNumber: `${first11}${myNumberCheckDigit(first11)}`,
      name: 'DECOY TARO',
      address: 'DECOY 1-2-3 CHIYODA-KU TOKYO',
      birthDate: '19700101',
      sex: '1',
    },
  });
}

/** Options of makeCardFile. */
export interface MakeCardOptions {
  /** the user-authentication CA (also issues the signing certificate unless `signCa` is given) */
  ca: TestCa;
  signCa?: TestCa;
  /** user-authentication PIN, 4 digits (default 1234) */
  pin?: string;
  /** signing PIN, 6 to 16 of A-Z 0-9 (default ABC123) */
  signPin?: string;
  /** the MyKey ID written to the card; null or absent: area not reserved; '': reserved but empty */
  mykeyId?: string | null;
  /** whether the card carries the MyKey application (default true) */
  withMyKeyApp?: boolean;
  /** the user-authentication key pair (generated when absent) */
  keyPair?: CryptoKeyPair;
  label?: string;
  atrHex?: string;
  writeKeyHex?: string;
}

/** A fresh card: a user-authentication and a signing certificate from the test CA, keys, PINs. */
export async function makeCardFile(opts: MakeCardOptions): Promise<CardFile> {
  const signCa = opts.signCa ?? opts.ca;
  const auth = await issueUserAuthCert(opts.ca, opts.keyPair ? { keyPair: opts.keyPair } : {});
  const sign = await issueSigningCert(signCa);
  return buildCardFile({
    label: opts.label,
    atrHex: opts.atrHex,
    authCertDer: auth.certDer,
    authCaCertDer: opts.ca.certDer,
    signCertDer: sign.certDer,
    signCaCertDer: signCa.certDer,
    authKeyPkcs8: await exportPkcs8(auth.keyPair.privateKey),
    signKeyPkcs8: await exportPkcs8(sign.keyPair.privateKey),
    pin: opts.pin,
    signPin: opts.signPin,
    mykeyId: opts.mykeyId,
    withMyKeyApp: opts.withMyKeyApp,
    writeKeyHex: opts.writeKeyHex,
  });
}
