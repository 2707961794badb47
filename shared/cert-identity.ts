// How a certificate is identified across the platform without its holder's data: the hash of its
// issuer Name, the key that signed it and its serial. The hub files bindings and CRLs under it; edges
// key certificate-mode touches with it.
//
// A serial is unique only per issuing KEY (RFC 5280 4.1.2.2 binds it to the issuer, and a CA that
// rolls its key over under the same Name may start serials afresh): `<name hash>:<serial>` alone lets
// holder B's certificate under the new key collide with holder A's under the old one. So the identity
// carries the certificate's own authorityKeyIdentifier keyIdentifier (RFC 5280 4.2.1.1), read from the
// certificate bytes by both the hub (at registration) and the edge (at a touch): the same rule on the
// same bytes gives the same string. A certificate without that field keeps the old form.
import { createHash } from 'node:crypto';

/** Hash of an issuer Name's DER: the key under which certificates and CRLs of that issuer are filed. */
export function issuerKeyOf(nameDer: Uint8Array): string {
  return createHash('sha256').update(nameDer).digest('hex').slice(0, 32);
}

/** A certificate as its identity needs it: issuer Name hash, serial, and the AKI keyIdentifier (hex) if it has one. */
export interface CertRef {
  issuerKey: string;
  serialHex: string;
  /** authorityKeyIdentifier keyIdentifier in lower-case hex; absent or '' when the certificate has none. */
  aki?: string;
}

const normSerial = (serialHex: string): string => serialHex.toLowerCase().replace(/^(00)+(?=.)/, '');

/**
 * Canonical certificate identity, as keyed identities up to `scrypt-v2` use it:
 * `<issuerKey>:<serial hex without leading zero bytes>`. Ambiguous across a CA key rollover; only for
 * services whose edges still hold keys of that scheme (shared/sync.ts).
 */
export function certIdentity(issuerKey: string, serialHex: string): string {
  return `${issuerKey}:${normSerial(serialHex)}`;
}

/**
 * Certificate identity of `scrypt-v3` on: `<issuerKey>:<aki hex>:<serial>` when the certificate carries
 * an authorityKeyIdentifier keyIdentifier, else the old form.
 */
export function certIdentityWithKey(c: CertRef): string {
  return c.aki ? `${c.issuerKey}:${c.aki.toLowerCase()}:${normSerial(c.serialHex)}` : certIdentity(c.issuerKey, c.serialHex);
}
