// One JPKI proof with the card on the holder's reader: the hub's challenge for one operation, the
// user-authentication certificate (EF 000A), VERIFY of the user-authentication PIN (EF 0018) and SIGN
// with its key (EF 0017). The signing PIN (EF 001B) is never asked or sent. The PIN goes to the card
// and nowhere else: it is not logged, kept or returned.
import { MyKeyError } from '../../shared/errors.ts';
import type { ChallengeRequest, Proof } from '../../shared/messages.ts';
import { readAuthCert, signChallenge, type ReaderManager } from '../reader/index.ts';

/** The reader layer as the companion uses it. */
export type HolderReaders = Pick<ReaderManager, 'readers' | 'isCardPresent' | 'connect'>;

/** What the page shows before a flow: how many readers, whether a card lies on the one reader. */
export interface ReaderState {
  readers: number;
  card: boolean;
  /** Why a flow could not start now, if it could not. */
  problem?: 'holder_no_reader' | 'holder_two_readers' | 'holder_no_card';
}

/** Looks at the readers: exactly one (or the named one) must be there. */
export function readerState(readers: HolderReaders, only?: string): ReaderState & { reader?: string } {
  const names = readers.readers().filter((n) => only === undefined || n === only);
  if (names.length === 0) return { readers: 0, card: false, problem: 'holder_no_reader' };
  // Two readers: a card on the other one could be someone else's, and the PIN typed here must go to
  // the card the holder means. We refuse rather than guess.
  if (names.length > 1) return { readers: names.length, card: names.some((n) => readers.isCardPresent(n)), problem: 'holder_two_readers' };
  const reader = names[0]!;
  const card = readers.isCardPresent(reader);
  return card ? { readers: 1, card, reader } : { readers: 1, card, reader, problem: 'holder_no_card' };
}

/** PIN text as the card takes it: 4 digits (CARD.md, EF 0018); checked before anything reaches the card. */
export function checkPin(pin: unknown): string {
  if (typeof pin !== 'string' || !/^[0-9]{4}$/.test(pin)) throw new MyKeyError('bad_request', 'The PIN is 4 digits');
  return pin;
}

export interface ProveOptions {
  readers: HolderReaders;
  /** Use only this reader (--reader). */
  reader?: string;
  pin: string;
  binding: ChallengeRequest;
  challenge: (binding: ChallengeRequest) => Promise<{ text: string; bytes: Uint8Array; expiresAt?: number }>;
  /** Refuses the card before the PIN is used (the carry-over's "not the same card again"). */
  acceptCert?: (certDer: Uint8Array) => void;
}

/**
 * Makes one proof. The hub is asked first, so an unreachable hub costs no PIN try; the card's
 * session is exclusive from the certificate read to the signature and closed whatever happens.
 */
export async function proveWithCard(o: ProveOptions): Promise<{ proof: Proof; certDer: Uint8Array; expiresAt?: number }> {
  const pin = checkPin(o.pin);
  const state = readerState(o.readers, o.reader);
  if (state.problem) throw new MyKeyError(state.problem);
  const challenge = await o.challenge(o.binding);
  const session = await o.readers.connect(state.reader!);
  try {
    let certDer: Uint8Array;
    try {
      certDer = await readAuthCert(session);
    } catch (err) {
      // ISO 7816-4 6A 82: no JPKI application, or no certificate in it (another card, none issued).
      if (err instanceof MyKeyError && err.code === 'card_error' && (err.details as { sw?: string } | undefined)?.sw === '6A 82') {
        throw new MyKeyError('holder_no_jpki', undefined, { cause: err });
      }
      throw err;
    }
    o.acceptCert?.(certDer);
    const signature = await signChallenge(session, pin, challenge.bytes);
    return {
      certDer,
      expiresAt: challenge.expiresAt,
      proof: { challenge: challenge.text, certificate: Buffer.from(certDer).toString('base64'), signature: Buffer.from(signature).toString('base64') },
    };
  } finally {
    await session.close();
  }
}
