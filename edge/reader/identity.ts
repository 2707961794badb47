// What a touch yields: the MyKey ID from the card's MyKey application when it has a written one, else
// the user-authentication certificate (the seed's second mode, which works for every card). Nothing
// else is read; nothing partial is returned: a failure anywhere throws and no identity comes out.
import * as crypto from 'node:crypto';
import type { MyKeyId } from '../../shared/ids.ts';
import { authCertSteps } from './jpki.ts';
import { areaOf, MYKEY_AREA_FIRST, nextAreaApdu, type MyKeyArea } from './mykey-app.ts';
import type { CertificateSteps } from './card-files.ts';
import type { CardSession, ResponseApdu } from './transport.ts';

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

/**
 * Reads the card's identity (no PIN): the MyKey area, then, unless it holds a MyKey ID, the
 * user-authentication certificate. One series at the card: each next APDU is chosen from the answer
 * before it inside PC/SC's callback (every one still through the guard at its turn), so a touch has
 * no promise, and none of this code, between its APDUs (issue #11).
 */
export function readIdentity(session: CardSession): Promise<CardIdentity> {
  return new Promise<CardIdentity>((resolve, reject) => readIdentityNow(session, (err, identity) => (identity ? resolve(identity) : reject(err))));
}

/**
 * readIdentity with a callback: `done` gets the identity inside PC/SC's callback of the card's last
 * answer (no promise turn between that answer and the identity), or the failure as session.run would
 * give it (card_removed when the reader reports the card gone). `done` is called exactly once, maybe
 * before this returns.
 */
export function readIdentityNow(session: CardSession, done: (err: unknown, identity?: CardIdentity) => void): void {
  const areaAnswers: ResponseApdu[] = [];
  let area: MyKeyArea | undefined;
  const cert = authCertSteps();
  let certFrom = 0;
  const next = (r: ResponseApdu, i: number): Uint8Array | undefined => {
    if (area) return cert.next(r, i - certFrom);
    areaAnswers.push(r);
    const more = nextAreaApdu(r, i);
    if (more) return more;
    area = areaOf(areaAnswers);
    if (area.state === 'written') return undefined;
    certFrom = i + 1;
    return cert.first;
  };
  session.transmitStepsNow(MYKEY_AREA_FIRST, next, (failure) => {
    let err = failure;
    let identity: CardIdentity | undefined;
    if (err === undefined) {
      try {
        identity = identityOf(area as MyKeyArea, cert);
      } catch (e) {
        err = e;
      }
    }
    if (identity) done(undefined, identity);
    else
      session.explain(err).then(
        (e) => done(e),
        (e: unknown) => done(e),
      );
  });
}

function identityOf(area: MyKeyArea, cert: CertificateSteps): CardIdentity {
  if (area.state === 'written') return { kind: 'mykey', mykeyId: area.mykeyId };
  return new CertIdentity(cert.result(), area.state);
}

// The digest of each certificate identity, taken when first asked for.
const digests = new WeakMap<CertIdentity, string>();

/**
 * A certificate-mode identity. The digest is taken when first asked for, not on the touch's way to
 * its identity (the lookup goes by the certificate itself); then it is kept. A class rather than a
 * literal with a getter: the getter lives on the prototype instead of being made on every touch.
 */
class CertIdentity {
  declare readonly kind: 'cert';
  declare readonly certDer: Uint8Array;
  declare readonly mykeyArea: Exclude<MyKeyArea['state'], 'written'>;

  constructor(certDer: Uint8Array, mykeyArea: Exclude<MyKeyArea['state'], 'written'>) {
    this.kind = 'cert';
    this.certDer = certDer;
    this.mykeyArea = mykeyArea;
  }

  /** SHA-256 of certDer, lower-case hex. */
  get certSha256(): string {
    let digest = digests.get(this);
    if (digest === undefined) {
      digest = sha256Hex(this.certDer);
      digests.set(this, digest);
    }
    return digest;
  }
}
