import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { EdgeCache } from '../../../edge/cache/edge-cache.ts';
import { KeyIndex } from '../../../edge/cache/key-index.ts';
import { certIdentity, certIdentityWithKey } from '../../../shared/cert-identity.ts';
import { applyEntry, keyedId, keyedIdentitySync, type ChangeEntry } from '../../../shared/sync.ts';

const at = '2026-01-01T00:00:00Z';
const entry = (seq: number, remove: string[], set?: [string[], string]): ChangeEntry => ({
  seq,
  kind: set ? 'link' : 'unlink',
  at,
  remove,
  ...(set ? { set: { keys: set[0], serviceUserId: set[1] } } : {}),
});

test('applies entries exactly as the shared reference semantics do, including duplicates and gaps', () => {
  const keys = Array.from({ length: 20 }, () => randomBytes(16).toString('base64url'));
  let seed = 7;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const log: ChangeEntry[] = [];
  for (let seq = 1; seq <= 400; seq++) {
    const remove = Array.from({ length: rnd(3) }, () => keys[rnd(keys.length)]);
    const set: [string[], string] | undefined = rnd(4) ? [[keys[rnd(keys.length)], keys[rnd(keys.length)]], `U${rnd(10)}`] : undefined;
    log.push(entry(seq, remove, set));
  }
  const cache = new EdgeCache();
  const model = new Map<string, string>();
  let modelSeq = 0;
  // Deliver with duplicates, replays and an occasional jump ahead (a gap), in a fixed pattern.
  for (let i = 0; i < log.length; i++) {
    const deliveries = [log[i], log[Math.max(0, i - 3)], log[Math.min(log.length - 1, i + 2)], log[i]];
    for (const e of deliveries) {
      const expect = applyEntry(model, modelSeq, e);
      if (expect === 'applied') modelSeq = e.seq;
      const got = cache.apply(e);
      assert.is(got.result, expect, `seq ${e.seq}`);
    }
    assert.is(cache.appliedSeq, modelSeq);
  }
  assert.equal(new Map(cache.index.entries()), model);
});

test('counts purged keys, not keys the same entry sets again', () => {
  const [a, b, c] = Array.from({ length: 3 }, () => randomBytes(16).toString('base64url'));
  const cache = new EdgeCache();
  assert.equal(cache.apply(entry(1, [], [[a, b], 'L-1'])), { result: 'applied', purged: 0, set: 2 });
  // carry-over style: remove a and b, set a and c
  assert.equal(cache.apply(entry(2, [a, b], [[a, c], 'L-1'])), { result: 'applied', purged: 1, set: 2 });
  assert.equal(cache.apply(entry(3, [a, c])), { result: 'applied', purged: 2, set: 0 });
  assert.is(cache.size, 0);
});

test('looks up by MyKey ID and by certificate with the service secret', () => {
  const secret = randomBytes(32);
  const cache = new EdgeCache();
  assert.is(cache.lookupMyKey('ABCD2345'), undefined); // no secret yet
  cache.setSecret(secret);
  const issuer = 'ab'.repeat(16);
  const kMy = keyedId(secret, 'mykey', 'ABCD2345');
  const kCert = keyedId(secret, 'cert', certIdentity(issuer, '0a1b'));
  cache.apply(entry(1, [], [[kMy, kCert], 'LIB-0042']));
  assert.is(cache.lookupMyKey('ABCD2345'), 'LIB-0042');
  assert.is(cache.lookupMyKey('ABCD2346'), undefined);
  assert.is(cache.lookupCert(issuer, '000A1B'), 'LIB-0042'); // serial canonicalised: case, leading zeros
  const kOdd = keyedId(secret, 'cert', certIdentity(issuer, '0abc'));
  cache.apply(entry(2, [], [[kOdd], 'LIB-0043']));
  assert.is(cache.lookupCert(issuer, 'abc'), 'LIB-0043'); // odd-length hex is whole bytes with a leading zero
  assert.is(cache.get(kCert), 'LIB-0042');
});

test('replaces all mappings at once and clears', () => {
  const cache = new EdgeCache();
  assert.is(cache.synced, false);
  const idx = new KeyIndex();
  const k = randomBytes(16).toString('base64url');
  idx.set(k, 'S-1');
  cache.replace(idx, 42);
  assert.is(cache.synced, true);
  assert.is(cache.appliedSeq, 42);
  assert.is(cache.get(k), 'S-1');
  assert.is(cache.apply(entry(42, [k])).result, 'duplicate');
  cache.clear();
  assert.is(cache.synced, false);
  assert.is(cache.appliedSeq, 0);
  assert.is(cache.get(k), undefined);
});

test('a scrypt-v3 cache answers a certificate only with its issuing key; a rekey leaves the derivation unknown until the snapshot', () => {
  const secret = new Uint8Array(32).fill(3);
  const name = 'ab'.repeat(16);
  const akiOld = '11'.repeat(20);
  const akiNew = '22'.repeat(20);
  // Holder A's certificate under the old CA key, filed by the hub with its AKI (scrypt-v3).
  const index = new KeyIndex();
  index.set(keyedIdentitySync(secret, 'cert', certIdentityWithKey({ issuerKey: name, serialHex: '4d79', aki: akiOld }), 'scrypt-v3'), 'A-1');
  const cache = new EdgeCache({ secret });
  cache.replace(index, 5, 'scrypt-v3');
  assert.is(cache.scheme, 'scrypt-v3');
  assert.is(cache.lookupCert(name, '4d79', akiOld), 'A-1');
  // Holder B: same name, same serial, the new key.
  assert.is(cache.lookupCert(name, '4d79', akiNew), undefined);
  assert.is(cache.lookupCert(name, '4d79'), undefined);
  // After a rekey the cache may hold keys of two derivations: every one is tried until the snapshot.
  assert.is(cache.apply({ seq: 6, kind: 'rekey', at, remove: [], keyScheme: 'scrypt-v3' }).result, 'applied');
  assert.is(cache.scheme, undefined);
  assert.is(cache.lookupCert(name, '4d79', akiOld), 'A-1');
  cache.replace(new KeyIndex(), 6, 'scrypt-v3');
  assert.is(cache.scheme, 'scrypt-v3');
  cache.clear();
  assert.is(cache.scheme, undefined);
});

test.run();
