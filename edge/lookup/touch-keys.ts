// The touched card's keyed identity under the memory-hard derivations (shared/sync.ts `scrypt-v2`,
// `scrypt-v3`): one scrypt per touch (two for a certificate while the cache's derivation is not known),
// on the libuv thread pool so the event loop (MQTT, the kiosk page) goes on.
import { keyedIdentity, type KeyScheme } from '../../shared/sync.ts';
import { certIdentityOf } from './cert-key.ts';
import type { TouchIdentity } from './decide.ts';

/**
 * The memory-hard keys of a touched card for a cache keyed under `scheme` (undefined: not known, so
 * every memory-hard form; the legacy HMAC key is decide's), or undefined when its identity cannot be
 * read. Only the form of the cache's own derivation is computed when it is known: under scrypt-v3 the
 * old `<issuer>:<serial>` form of a certificate is never looked up, so a serial reused under a CA key
 * rolled over under the same name cannot find another holder's mapping.
 */
export async function touchKeys(secret: Uint8Array, identity: TouchIdentity, scheme?: KeyScheme): Promise<string[] | undefined> {
  if (scheme === 'hmac-sha256') return [];
  // MyKey-ID keys are the same under scrypt-v2 and scrypt-v3.
  if (identity.kind === 'mykey') return [await keyedIdentity(secret, 'mykey', identity.mykeyId, scheme ?? 'scrypt-v3')];
  const schemes: KeyScheme[] = scheme ? [scheme] : ['scrypt-v3', 'scrypt-v2'];
  const ids: string[] = [];
  for (const s of schemes) {
    const id = certIdentityOf(identity.certDer, s);
    if (!id.ok) return undefined;
    if (!ids.includes(id.value)) ids.push(id.value);
  }
  return Promise.all(ids.map((id) => keyedIdentity(secret, 'cert', id, scheme ?? 'scrypt-v3')));
}
