// What a touch yields: the MyKey ID from the card's MyKey application when it has a written one, else
// the user-authentication certificate (the seed's second mode, which works for every card). Nothing
// else is read; nothing partial is returned: a failure anywhere throws and no identity comes out.
import * as crypto from 'node:crypto';
import type { MyKeyId } from '../../shared/ids.ts';
import { readAuthCert } from './jpki.ts';
import { readMyKeyArea, type MyKeyArea } from './mykey-app.ts';
import type { CardSession } from './transport.ts';

/** The identity a card yields on a touch. */
export type CardIdentity =
  | { kind: 'mykey'; mykeyId: MyKeyId }
  | {
      kind: 'cert';
      /** DER of the user-authentication certificate (outer shape and size checked). */
      certDer: Uint8Array;
      /** SHA-256 of certDer, lower-case hex: a stable key for the certificate. */
      certSha256: string;
      /** Why the MyKey ID was not used. */
      mykeyArea: Exclude<MyKeyArea['state'], 'written'>;
    };

// crypto.hash (Node 20.12+, 22+) digests in one call; a Hash object and its stream machinery cost more
// on a touch. Older Node 20 lines keep createHash.
const sha256Hex: (data: Uint8Array) => string = typeof crypto.hash === 'function' ? (data) => crypto.hash('sha256', data, 'hex') : (data) => crypto.createHash('sha256').update(data).digest('hex');

/** Reads the card's identity (no PIN). */
export function readIdentity(session: CardSession): Promise<CardIdentity> {
  return session.run(async () => {
    const area = await readMyKeyArea(session);
    if (area.state === 'written') return { kind: 'mykey', mykeyId: area.mykeyId };
    const certDer = await readAuthCert(session);
    const certSha256 = sha256Hex(certDer);
    return { kind: 'cert', certDer, certSha256, mykeyArea: area.state };
  });
}
