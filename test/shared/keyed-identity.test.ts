// Keyed identities (shared/sync.ts): the memory-hard derivation that makes a stolen edge's service
// secret useless for enumerating MyKey IDs, its place in the sync contract, and a service's move from
// the legacy HMAC keys to it, through the real hub, device API over mutual TLS and MQTT over TLS.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHmac, scryptSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeCache } from '../../edge/cache/edge-cache.ts';
import { checkEntryPayload, checkSnapshot } from '../../edge/sync/payloads.ts';
import type { LookupDecision } from '../../edge/lookup/index.ts';
import { keyedId, keyedIdentity, keyedIdentitySync, SCRYPT_V2, type ChangeEntry } from '../../shared/sync.ts';
import { registerHolder, startTestHub, type TestHub } from '../helpers/hub.ts';
import { until } from '../helpers/polling.ts';
import { counterLink, enrollEdge, type EdgeTls } from '../helpers/enrolled-edge.ts';
import { edgeStack } from '../helpers/edge-stack.ts';

const secret = new Uint8Array(32).fill(9);

const unit = suite('keyed identities');

unit('with the service secret alone, testing one guess costs the whole scrypt derivation', async () => {
  const key = await keyedIdentity(secret, 'mykey', 'B7NQ4KXW');
  // What an attacker with a stolen edge's secret would compute cheaply: plain HMAC does not match.
  assert.is.not(key, keyedId(secret, 'mykey', 'B7NQ4KXW'));
  assert.is.not(key, createHmac('sha256', secret).update('mykey:B7NQ4KXW').digest().subarray(0, 16).toString('base64url'));
  // Nor does a cheaper scrypt: only the full N = 2^14, r = 8 derivation (16 MiB per guess) matches.
  assert.is.not(key, scryptSync('mykey:B7NQ4KXW', secret, 16, { N: 2 ** 10, r: 8, p: 1 }).toString('base64url'));
  assert.is(key, scryptSync('mykey:B7NQ4KXW', secret, 16, { N: 2 ** 14, r: 8, p: 1 }).toString('base64url'));
  assert.is(128 * SCRYPT_V2.N * SCRYPT_V2.r, 16 * 1024 * 1024);
  // Salted by the service's own secret: another service's key of the same MyKey ID differs.
  assert.is.not(key, await keyedIdentity(new Uint8Array(32).fill(8), 'mykey', 'B7NQ4KXW'));
  assert.is(keyedIdentitySync(secret, 'mykey', 'B7NQ4KXW'), key);
  assert.is(await keyedIdentity(secret, 'mykey', 'B7NQ4KXW', 'hmac-sha256'), keyedId(secret, 'mykey', 'B7NQ4KXW'));
});

unit('an old-format entry (no keyScheme) still validates and applies; an unknown derivation is refused', async () => {
  const legacy = { seq: 1, kind: 'link', at: '2026-11-25T12:00:00Z', remove: [], set: { keys: [keyedId(secret, 'mykey', 'B7NQ4KXW')], serviceUserId: 'LIB-1' } };
  const r = checkEntryPayload(Buffer.from(JSON.stringify(legacy)));
  assert.ok(r.ok);
  const cache = new EdgeCache({ secret });
  cache.replace(new (await import('../../edge/cache/key-index.ts')).KeyIndex(), 0);
  assert.is(cache.apply(r.value as ChangeEntry).result, 'applied');
  assert.is(cache.lookupMyKey('B7NQ4KXW'), 'LIB-1');
  const current = { ...legacy, seq: 2, keyScheme: 'scrypt-v2', set: { keys: [await keyedIdentity(secret, 'mykey', 'Q9RT5HZC')], serviceUserId: 'LIB-2' } };
  const r2 = checkEntryPayload(Buffer.from(JSON.stringify(current)));
  assert.ok(r2.ok);
  assert.is(cache.apply(r2.value as ChangeEntry).result, 'applied');
  assert.is(cache.lookupMyKey('Q9RT5HZC'), 'LIB-2');
  const bad = checkEntryPayload(Buffer.from(JSON.stringify({ ...legacy, keyScheme: 'md5' })));
  assert.is(bad.ok ? 'ok' : bad.code, 'validation_failed');
  assert.ok(checkSnapshot({ serviceId: 'library', seq: 0, generatedAt: '2026-11-25T12:00:00Z', entries: [] }).ok, 'a snapshot without keyScheme');
});

unit.run();

interface Ctx {
  h: TestHub;
  edge: EdgeTls;
  dir: string;
}
const hub = suite<Ctx>('a service moves to the memory-hard keys', {} as Ctx);

hub.before(async (ctx) => {
  ctx.h = await startTestHub();
  await ctx.h.hub.start();
  // Possession at the counter (no PIN): the certificate read off the card links.
  await ctx.h.hub.links.createService({ id: 'museum', name: 'Town museum', requireHolderProof: false });
  // A service from before the change: its edges hold HMAC keys.
  await ctx.h.hub.linkRepo.setKeyScheme('museum', 'hmac-sha256');
  ctx.edge = await enrollEdge(ctx.h.hub, 'museum-gate-1', 'museum');
  ctx.dir = mkdtempSync(join(tmpdir(), 'keyed-identity-'));
});
hub.after(async (ctx) => {
  await ctx.h.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

hub('an edge on the legacy keys follows the re-key, and still links, touches and purges', async (ctx) => {
  const links = ctx.h.hub.links;
  const a = await registerHolder(ctx.h);
  assert.is(await counterLink(ctx.h.hub, ctx.edge, a.cert.certDer, 'M-1'), 201);
  const [legacyEntry] = await links.changesAfter('museum', 0);
  assert.is(legacyEntry.keyScheme, undefined, 'the legacy service still writes old-format entries');
  const secretOf = async () => (await links.service('museum'))!.sync_secret;
  assert.ok(legacyEntry.set!.keys.includes(keyedId(await secretOf(), 'mykey', a.mykeyId)));

  const { cache, state, agent, lookup } = await edgeStack(ctx.h.hub, ctx.edge, { dir: ctx.dir, version: '0.1.0-rekey' });
  const touch = async (mykeyId: string): Promise<LookupDecision> => (await lookup.touch('gate', { kind: 'mykey', mykeyId })).decision;
  const snapshots: number[] = [];
  agent.events.on('snapshot', (s) => void snapshots.push(s.seq));
  try {
    await agent.start();
    await until(() => cache.synced && agent.connected, { what: 'synced and connected' });
    await agent.catchUp();
    assert.equal(await touch(a.mykeyId), { outcome: 'linked', serviceUserId: 'M-1' }, 'a touch on the legacy keys');

    // The hub moves the service: keys derived on the libuv pool, then one `rekey` entry.
    assert.is(await links.rekeyService('museum'), true);
    assert.is(await links.rekeyService('museum'), false, 'only once');
    const head = await links.headSeq('museum');
    const rekey = (await links.changesAfter('museum', head - 1))[0];
    assert.equal([rekey.kind, rekey.keyScheme], ['rekey', 'scrypt-v3']);
    await until(() => snapshots.includes(head), { what: 'the edge fetched the new snapshot' });
    const scryptKey = await keyedIdentity(await secretOf(), 'mykey', a.mykeyId);
    assert.is(cache.get(scryptKey), 'M-1');
    assert.is(cache.get(keyedId(await secretOf(), 'mykey', a.mykeyId)), undefined, 'no HMAC key left on the edge');
    assert.equal(await touch(a.mykeyId), { outcome: 'linked', serviceUserId: 'M-1' }, 'a touch on the new keys');

    // New links come with new keys; an unlink purges them; the hub never derived in a transaction
    // or for a snapshot: every key was derived once, ahead, and stored.
    const b = await registerHolder(ctx.h);
    assert.is(await counterLink(ctx.h.hub, ctx.edge, b.cert.certDer, 'M-2'), 201);
    assert.is((await links.changesAfter('museum', head))[0].keyScheme, 'scrypt-v3');
    await until(async () => cache.get(keyedIdentitySync(await secretOf(), 'mykey', b.mykeyId)) === 'M-2', { what: 'live link' });
    assert.equal(await touch(b.mykeyId), { outcome: 'linked', serviceUserId: 'M-2' });
    await links.unlink({ serviceId: 'museum', mykeyId: a.mykeyId, by: 'test', reason: 'cancelled' });
    await until(() => cache.get(scryptKey) === undefined, { what: 'purged' });
    assert.equal(await touch(a.mykeyId), { outcome: 'not_linked' });
    // The holder chooses another MyKey ID: its key is derived ahead too, and the edge follows.
    const changed = await ctx.h.request('/v1/holder/mykey-id', { proof: await ctx.h.proof(b.cert, { purpose: 'change_id', mykeyId: 'W7WQ4KXM' }), mykeyId: 'W7WQ4KXM' });
    assert.is(changed.status, 200, await changed.clone().text());
    await until(async () => cache.get(keyedIdentitySync(await secretOf(), 'mykey', 'W7WQ4KXM')) === 'M-2', { what: 'the new MyKey ID at the edge' });
    assert.equal(await touch('W7WQ4KXM'), { outcome: 'linked', serviceUserId: 'M-2' });
    assert.equal(await touch(b.mykeyId), { outcome: 'not_linked' });
    const derived = links.keyStats().derived;
    const snap = await links.snapshot('museum');
    assert.is(snap.keyScheme, 'scrypt-v3');
    assert.is(snap.entries.length, 2, 'M-2 by MyKey ID and by certificate');
    assert.equal(links.keyStats(), { derived, derivedBlocking: 0 }, 'a snapshot derives nothing');
  } finally {
    await agent.stop();
    await state.close();
  }
});

hub.run();
