// How a certificate is identified across the platform without its holder's data: the hash of its
// issuer Name and its serial. The hub files bindings and CRLs under it; edges key certificate-mode
// touches with it.
import { createHash } from 'node:crypto';

/** Hash of an issuer Name's DER: the key under which certificates and CRLs of that issuer are filed. */
export function issuerKeyOf(nameDer: Uint8Array): string {
  return createHash('sha256').update(nameDer).digest('hex').slice(0, 32);
}

/** Canonical certificate identity: `<issuerKey>:<serial hex without leading zero bytes>`. */
export function certIdentity(issuerKey: string, serialHex: string): string {
  return `${issuerKey}:${serialHex.toLowerCase().replace(/^(00)+(?=.)/, '')}`;
}
