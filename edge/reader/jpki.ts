// The JPKI application (公的個人認証AP) as the platform uses it: the user-authentication certificate
// and its CA certificate (no PIN), the user-authentication PIN (4 digits, 3 tries) and the
// user-authentication key's SIGN. Command forms are CARD.md's; every APDU still passes the guard.
import { createHash } from 'node:crypto';
import { JPKI_AID, JPKI_EF } from '../../shared/card.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { jpkiSign, SELECT_JPKI, sha256DigestInfo, verify } from './apdu.ts';
import { CertificateSteps, readCertificateFile, selectApplication, selectFile } from './card-files.ts';
import { SW, swError, triesLeft } from './status-words.ts';
import type { CardSession } from './transport.ts';

/** RSA-2048 signature length. */
export const JPKI_SIGNATURE_BYTES = 256;

/** Outcome of a PIN verification: an expected result, not an exception. */
export type PinResult = { ok: true } | { ok: false; code: 'pin_wrong'; triesLeft: number } | { ok: false; code: 'pin_blocked'; triesLeft: 0 };

/** The PIN's state as the card reports it without using a try. */
export type PinStatus = { state: 'verified' } | { state: 'open'; triesLeft: number } | { state: 'blocked' };

const PIN_RE = /^[0-9]{4}$/;

/** Selects the JPKI application (exact AID). */
export function selectJpki(session: CardSession): Promise<void> {
  return selectApplication(session, JPKI_AID, 'JPKI application');
}

/** The steps of selecting the JPKI application and one of its certificate EFs, and reading the certificate there. */
function jpkiCertSteps(fid: number, name: string, what: string): CertificateSteps {
  return new CertificateSteps(SELECT_JPKI, 'JPKI application', fid, name, what);
}

/** The steps of reading the user-authentication certificate (EF 000A), for a caller's own series. */
export function authCertSteps(): CertificateSteps {
  return jpkiCertSteps(JPKI_EF.authCert, '000A', 'auth certificate (EF 000A)');
}

/** Reads the user-authentication certificate (EF 000A) as DER. */
export function readAuthCert(session: CardSession): Promise<Uint8Array> {
  return session.run(() => readCertificateFile(session, authCertSteps()));
}

/** Reads the user-authentication CA certificate (EF 000B) as DER. */
export function readAuthCaCert(session: CardSession): Promise<Uint8Array> {
  return session.run(() => readCertificateFile(session, jpkiCertSteps(JPKI_EF.authCaCert, '000B', 'auth CA certificate (EF 000B)')));
}

async function selectPin(session: CardSession): Promise<void> {
  await selectJpki(session);
  await selectFile(session, JPKI_EF.authPin, '0018');
}

function pinResultOf(status: number): PinResult {
  if (status === SW.ok) return { ok: true };
  // ISO 7816-4: 63 Cx = wrong, x tries left; 63 C0 = that was the last. JPKI: 69 84 = already blocked.
  const t = triesLeft(status);
  if (t !== undefined) return t === 0 ? { ok: false, code: 'pin_blocked', triesLeft: 0 } : { ok: false, code: 'pin_wrong', triesLeft: t };
  if (status === SW.referenceDataNotUsable || status === SW.authMethodBlocked) return { ok: false, code: 'pin_blocked', triesLeft: 0 };
  throw swError(status, 'VERIFY auth PIN');
}

/**
 * Verifies the user-authentication PIN. A PIN that is not 4 digits is refused before it reaches the
 * card (it would only use up a try): MyKeyError('bad_request').
 */
export async function verifyPin(session: CardSession, pin: string): Promise<PinResult> {
  if (typeof pin !== 'string' || !PIN_RE.test(pin)) throw new MyKeyError('bad_request', 'The PIN is 4 digits');
  return session.run(async () => {
    await selectPin(session);
    const r = await session.transmit(verify(new TextEncoder().encode(pin)));
    return pinResultOf(r.sw);
  });
}

/** Asks the tries left with the no-data VERIFY, which does not use a try (CARD.md). */
export function pinTriesLeft(session: CardSession): Promise<PinStatus> {
  return session.run(async () => {
    await selectPin(session);
    const r = await session.transmit(verify());
    if (r.sw === SW.ok) return { state: 'verified' } as const;
    const t = triesLeft(r.sw);
    if (t !== undefined) return t === 0 ? ({ state: 'blocked' } as const) : ({ state: 'open', triesLeft: t } as const);
    if (r.sw === SW.referenceDataNotUsable || r.sw === SW.authMethodBlocked) return { state: 'blocked' } as const;
    throw swError(r.sw, 'VERIFY (tries left)');
  });
}

/** SHA-256 of a message; passed in so tests or other runtimes can supply their own. */
export type Sha256 = (message: Uint8Array) => Uint8Array;
const nodeSha256: Sha256 = (m) => new Uint8Array(createHash('sha256').update(m).digest());

/**
 * Signs `message` with the user-authentication key: VERIFY the PIN, SELECT EF 0017, SIGN over
 * DigestInfo(SHA-256(message)); returns the 256-byte RSA PKCS#1 v1.5 signature. A wrong PIN throws
 * MyKeyError('pin_wrong', details.triesLeft) and a blocked one MyKeyError('pin_blocked').
 */
export async function signChallenge(session: CardSession, pin: string, message: Uint8Array, sha256: Sha256 = nodeSha256): Promise<Uint8Array> {
  const digestInfo = sha256DigestInfo(sha256(message));
  const pinResult = await verifyPin(session, pin);
  if (!pinResult.ok) {
    const msg = pinResult.code === 'pin_blocked' ? 'The PIN is blocked' : `The PIN is wrong (${pinResult.triesLeft} tries left)`;
    throw new MyKeyError(pinResult.code, msg, { details: { triesLeft: pinResult.triesLeft } });
  }
  return session.run(async () => {
    await selectFile(session, JPKI_EF.authKey, '0017');
    const r = await session.transmit(jpkiSign(digestInfo));
    if (r.sw !== SW.ok) throw swError(r.sw, 'SIGN');
    if (r.data.length !== JPKI_SIGNATURE_BYTES) {
      throw new MyKeyError('card_response_malformed', `SIGN: expected a ${JPKI_SIGNATURE_BYTES}-byte signature, card sent ${r.data.length}`);
    }
    return r.data;
  });
}
