// What a touch reads when the service wants the PIN (#14): the identity as every touch reads it (the
// MyKey ID from the MyKey application when written, else the user-authentication certificate), and in
// the same session the user-authentication certificate and the PIN's tries left (the no-data VERIFY,
// which uses no try: CARD.md). No PIN here; nothing but the JPKI application and the MyKey area is
// selected (every APDU still passes the reader's guard).
import { createHash } from 'node:crypto';
import { pinTriesLeft, readAuthCert, readMyKeyArea, type CardIdentity, type CardSession, type PinStatus } from '../reader/index.ts';

/** What a PIN-checked touch needs beyond the identity. */
export interface PinTouchRead {
  /** The user-authentication certificate (DER), read in the same session as the identity. */
  certDer: Uint8Array;
  /** The PIN as the card reports it, without using a try. */
  pin: PinStatus;
}

// The extras ride beside the identity object the touch pipeline emits, not inside it: the pipeline and
// the lookup keep their own types, and the extras go when the identity is dropped.
const extras = new WeakMap<object, PinTouchRead>();

/** The PIN-touch extras read with this identity, when it was read by readPinTouchIdentity. */
export function pinTouchReadOf(identity: object): PinTouchRead | undefined {
  return extras.get(identity);
}

/** Attaches what a PIN-checked touch read to its identity object (readPinTouchIdentity; tests). */
export function attachPinTouchRead(identity: object, read: PinTouchRead): void {
  extras.set(identity, read);
}

/** Reads the identity, the certificate and the PIN's tries left in one session. */
export function readPinTouchIdentity(session: CardSession): Promise<CardIdentity> {
  return session.run(async () => {
    const area = await readMyKeyArea(session);
    const certDer = await readAuthCert(session);
    const pin = await pinTriesLeft(session);
    const identity: CardIdentity =
      area.state === 'written' ? { kind: 'mykey', mykeyId: area.mykeyId } : { kind: 'cert', certDer, certSha256: createHash('sha256').update(certDer).digest('hex'), mykeyArea: area.state };
    attachPinTouchRead(identity, { certDer, pin });
    return identity;
  });
}
