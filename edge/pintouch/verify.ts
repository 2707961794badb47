// The checks of a PIN-checked touch (#14) at the edge, with no network: the certificate read off the
// card was issued by a JPKI trust anchor the hub gave (and is inside its validity), and the card's
// signature over the edge's fresh challenge verifies against that certificate's key. Pure over its
// inputs and node:crypto; the flow (flow.ts) and the cache binding (binding.ts) use them.
//
// Why the anchor check matters: the cache ties a certificate to a MyKey ID by its identity (issuer
// Name hash, issuing key id, serial; shared/cert-identity.ts), which anyone can read off the holder's
// card. A certificate made up with those same fields and the attacker's own key would match the
// cache and verify the attacker's signature; only the JPKI CA's signature on it tells it apart.
import { constants, createHash, publicDecrypt, randomBytes, verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { fail, ok, type Result } from '../../shared/errors.ts';

/** Challenge bytes the edge makes per PIN attempt (256 bits). */
export const PIN_TOUCH_CHALLENGE_BYTES = 32;

/**
 * What the card signs: this label, then the challenge. The label keeps a touch signature from ever
 * passing for a hub challenge (registration, counter links) or anything else the same key signs.
 */
export const PIN_TOUCH_LABEL = new TextEncoder().encode('MYKEY-PIN-TOUCH/1\0');

/** A fresh random challenge. */
export function makeChallenge(random: (n: number) => Uint8Array = (n) => new Uint8Array(randomBytes(n))): Uint8Array {
  return random(PIN_TOUCH_CHALLENGE_BYTES);
}

/** The message the card signs for `challenge`. */
export function touchMessage(challenge: Uint8Array): Uint8Array {
  const m = new Uint8Array(PIN_TOUCH_LABEL.length + challenge.length);
  m.set(PIN_TOUCH_LABEL);
  m.set(challenge, PIN_TOUCH_LABEL.length);
  return m;
}

/** Parses the hub's anchors (base64 DER); those that do not parse are left out. */
export function parseAnchors(b64: readonly string[] | undefined): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const a of b64 ?? []) {
    try {
      out.push(new X509Certificate(Buffer.from(a, 'base64')));
    } catch {
      // a broken anchor cannot vouch for anything; the others still can
    }
  }
  return out;
}

/**
 * The card's certificate when one of `anchors` issued it (name and signature, RFC 5280 6.1.3 (a)(1)
 * and (a)(4)) and, when `now` is given, it is inside its validity (RFC 5280 4.1.2.5). `now` is left
 * out while the edge's clock cannot be trusted (no RTC after a power cut): validity is then unknown,
 * and the staleness policy has already said whether such a touch is answered at all.
 */
export function checkCertificate(certDer: Uint8Array, anchors: readonly X509Certificate[], now?: number): Result<X509Certificate, 'pin_touch_cert_untrusted'> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certDer);
  } catch {
    return fail('pin_touch_cert_untrusted', 'the card certificate is not a parsable X.509 certificate');
  }
  if (cert.publicKey.asymmetricKeyType !== 'rsa') return fail('pin_touch_cert_untrusted', 'the card certificate key is not RSA');
  const issuer = anchors.find((a) => cert.checkIssued(a) && cert.verify(a.publicKey));
  if (!issuer) return fail('pin_touch_cert_untrusted', 'the card certificate was not issued by a JPKI trust anchor this edge holds');
  if (now !== undefined) {
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    if (!(from <= now && now <= to)) return fail('pin_touch_cert_untrusted', 'the card certificate is outside its validity');
  }
  return ok(cert);
}

// RFC 8017 9.2 note 1: DER of DigestInfo for SHA-256, followed by the 32-byte digest.
const SHA256_DIGEST_INFO_PREFIX = Uint8Array.from([0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20]);

/**
 * Checks the card's RSASSA-PKCS1-v1_5 SHA-256 signature (RFC 8017 8.2.2) over touchMessage(challenge)
 * with the certificate's key. On failure it tells two cases apart by opening the signature with the
 * public key: a well-formed SHA-256 DigestInfo inside means the card's own key signed, but another
 * message (an old challenge replayed): `pin_touch_replayed`; anything else was not signed by this
 * certificate's key: `pin_touch_signature_invalid`.
 */
export function verifyTouchSignature(cert: X509Certificate, challenge: Uint8Array, signature: Uint8Array): Result<void, 'pin_touch_signature_invalid' | 'pin_touch_replayed'> {
  const message = touchMessage(challenge);
  let good = false;
  try {
    good = cryptoVerify('sha256', message, cert.publicKey, signature);
  } catch {
    good = false;
  }
  if (good) return ok(undefined);
  let opened: Buffer | undefined;
  try {
    opened = publicDecrypt({ key: cert.publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    opened = undefined;
  }
  const digest = createHash('sha256').update(message).digest();
  if (
    opened &&
    opened.length === SHA256_DIGEST_INFO_PREFIX.length + 32 &&
    SHA256_DIGEST_INFO_PREFIX.every((b, i) => opened![i] === b) &&
    !opened.subarray(SHA256_DIGEST_INFO_PREFIX.length).equals(digest)
  ) {
    return fail('pin_touch_replayed', "the signature is by the card's key but over another challenge");
  }
  return fail('pin_touch_signature_invalid', "the signature does not verify against the card certificate's key");
}
