// The per-touch cost of the keyed identity (shared/sync.ts): what an edge pays to turn the MyKey ID
// read off a card into its cache key, under the memory-hard derivation (`scrypt-v2`, on the libuv
// pool, as edge/lookup/touch-keys.ts runs it) and, for comparison, the legacy HMAC.
//
// The same figure bounds an attacker with a stolen edge's secret: each guess costs one derivation.
// On a GPU, hashcat mode 8900 runs these parameters at 7,126 H/s (RTX 4090): 31^8 guesses take about
// 3.8 GPU-years per service.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { benchMain, percentile, round } from './lib.ts';
import { keyedId, keyedIdentity } from '../shared/sync.ts';
import { MYKEY_ALPHABET } from '../shared/ids.ts';

const randomMyKeyId = () => Array.from(randomBytes(8), (b) => MYKEY_ALPHABET[b % MYKEY_ALPHABET.length]).join('');

benchMain(async () => {
  const secret = randomBytes(32);
  for (let i = 0; i < 5; i++) await keyedIdentity(secret, 'mykey', randomMyKeyId()); // warm-up
  const scrypt: number[] = [];
  for (let i = 0; i < 100; i++) {
    const id = randomMyKeyId();
    const t0 = performance.now();
    await keyedIdentity(secret, 'mykey', id);
    scrypt.push((performance.now() - t0) * 1000);
  }
  const hmac: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const id = randomMyKeyId();
    const t0 = performance.now();
    keyedId(secret, 'mykey', id);
    hmac.push((performance.now() - t0) * 1000);
  }
  return {
    touch_keyed_identity_us: { value: round(percentile(scrypt, 50), 0), unit: 'us' },
    touch_keyed_identity_p99_us: { value: round(percentile(scrypt, 99), 0), unit: 'us' },
    touch_keyed_identity_legacy_hmac_us: { value: round(percentile(hmac, 50), 2), unit: 'us' },
  };
});
