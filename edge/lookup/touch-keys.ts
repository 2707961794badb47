// The touched card's keyed identity under the memory-hard derivation (shared/sync.ts `scrypt-v2`):
// one scrypt per touch, on the libuv thread pool so the event loop (MQTT, the kiosk page) goes on.
import { keyedIdentity } from '../../shared/sync.ts';
import { certIdentityOf } from './cert-key.ts';
import type { TouchIdentity } from './decide.ts';

/** The `scrypt-v2` key of a touched card, or undefined when its identity cannot be read. */
export async function touchKeys(secret: Uint8Array, identity: TouchIdentity): Promise<string[] | undefined> {
  if (identity.kind === 'mykey') return [await keyedIdentity(secret, 'mykey', identity.mykeyId, 'scrypt-v2')];
  const id = certIdentityOf(identity.certDer);
  return id.ok ? [await keyedIdentity(secret, 'cert', id.value, 'scrypt-v2')] : undefined;
}
