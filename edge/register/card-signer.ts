// The holder's consent with the card: VERIFY the user-authentication PIN, then SIGN the hub's
// challenge, on the card lying on the reader. The PIN goes to the card and nowhere else: it is not
// logged, kept or returned.
import { readAuthCert, signChallenge, type ReaderManager } from '../reader/index.ts';

/** Signs a challenge with the card on a reader. */
export interface HolderSigner {
  /** Returns the card's certificate and its signature; throws pin_wrong (details.triesLeft), pin_blocked, card_removed... */
  sign(reader: string, pin: string, challenge: Uint8Array): Promise<{ certDer: Uint8Array; signature: Uint8Array }>;
}

/** Something that reads touches and must keep off the card while it signs (the TouchPipeline). */
export interface Pausable {
  stop(): Promise<void>;
  start(): void;
}

/**
 * The signer over the reader layer. `pause` (the touch pipeline) is stopped for the signing: a
 * card-present seen meanwhile must not open its own session, which would close the signing one.
 */
export function readerSigner(manager: Pick<ReaderManager, 'connect'>, opts: { pause?: Pausable } = {}): HolderSigner {
  return {
    async sign(reader, pin, challenge) {
      await opts.pause?.stop();
      try {
        const session = await manager.connect(reader);
        try {
          const certDer = await readAuthCert(session);
          const signature = await signChallenge(session, pin, challenge);
          return { certDer, signature };
        } finally {
          await session.close();
        }
      } finally {
        opts.pause?.start();
      }
    },
  };
}
