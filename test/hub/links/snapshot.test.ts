// Device snapshots of a large service: read by an enrolled edge over mutual TLS (gzip when it asks,
// checked by its own client), built once per head seq and shared, and one consistent state even
// when links change while it is being built over many turns of the event loop.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { request as httpsRequest } from 'node:https';
import { gunzipSync } from 'node:zlib';
import { HubClient } from '../../../edge/sync/hub-client.ts';
import { certIdentityWithKey } from '../../../shared/cert-identity.ts';
import { CURRENT_KEY_SCHEME, keyedId, keyedIdentitySync, type Snapshot } from '../../../shared/sync.ts';
import { issue, type TestHub } from '../../helpers/hub.ts';
import { startHubWithEdge } from '../../helpers/enrolled-edge.ts';
import { addLinks, idOf } from './helpers/bulk-links.ts';

interface Ctx {
  h: TestHub;
  edge: { certPem: string; keyPem: string; caPem: string };
}
const test = suite<Ctx>('device snapshots', {} as Ctx);
const SERVICE = 'library';
const LINKS = 5000;

/** A MyKey ID registered with the card's proof through the public API. */
async function register(h: TestHub): Promise<string> {
  const cert = await issue(h.ca);
  const r = await h.request('/v1/mykey-ids', { proof: await h.proof(cert) });
  return ((await r.json()) as { mykeyId: string }).mykeyId;
}

function rawSnapshot(ctx: Ctx, gzip: boolean): Promise<{ status: number; encoding?: string; body: Buffer }> {
  const url = new URL('/v1/device/snapshot', ctx.h.hub.addresses.deviceApi);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca: ctx.edge.caPem, cert: ctx.edge.certPem, key: ctx.edge.keyPem, headers: gzip ? { 'accept-encoding': 'gzip' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, encoding: res.headers['content-encoding'], body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test.before(async (ctx) => {
  ({ h: ctx.h, edge: ctx.edge } = await startHubWithEdge({ edgeId: 'lib-counter-1', service: { id: SERVICE, requireHolderProof: false } }));
  await addLinks(ctx.h, SERVICE, 0, LINKS);
});
test.after(async (ctx) => ctx.h.close());

test('an edge reads a snapshot of 5,000 links over mutual TLS, gzip-encoded, checked by its own client', async (ctx) => {
  const client = new HubClient({ hubUrl: ctx.h.hub.addresses.deviceApi!, tls: { ca: ctx.edge.caPem, cert: ctx.edge.certPem, key: ctx.edge.keyPem } });
  const { value } = await client.snapshot();
  assert.is(value.entries.length, LINKS);
  assert.is(value.seq, await ctx.h.hub.links.headSeq(SERVICE));
  assert.is(value.keyScheme, CURRENT_KEY_SCHEME);
  assert.equal(new Map(value.entries), new Map((await ctx.h.hub.links.snapshot(SERVICE)).entries));
  const secret = (await ctx.h.hub.linkRepo.service(SERVICE))!.sync_secret;
  assert.is(new Map(value.entries).get(keyedId(secret, 'mykey', idOf(42))), 'LIB-42');

  const plain = await rawSnapshot(ctx, false);
  const zipped = await rawSnapshot(ctx, true);
  assert.is(plain.status, 200);
  assert.is(plain.encoding, undefined);
  assert.is(zipped.encoding, 'gzip');
  assert.ok(zipped.body.length < plain.body.length);
  assert.equal(gunzipSync(zipped.body), plain.body);
  const parsed = JSON.parse(plain.body.toString('utf8')) as Snapshot;
  assert.equal(Object.keys(parsed), ['serviceId', 'seq', 'generatedAt', 'entries', 'keyScheme']);
});

test('edges asking at one head share one build; a change makes the next request build anew', async (ctx) => {
  const links = ctx.h.hub.links;
  await addLinks(ctx.h, SERVICE, LINKS, 10); // a new head
  const before = links.snapshotStats();
  const bodies = await Promise.all([links.snapshotBody(SERVICE), links.snapshotBody(SERVICE), links.snapshotBody(SERVICE)]);
  assert.is(links.snapshotStats().builds, before.builds + 1);
  assert.ok(bodies[1] === bodies[0] && bodies[2] === bodies[0], 'one body for all three');
  assert.is(await links.snapshotBody(SERVICE), bodies[0], 'kept for the next edge at the same head');
  assert.is(links.snapshotStats().hits, before.hits + 1);

  await links.unlink({ serviceId: SERVICE, serviceUserId: 'LIB-1', by: 'test', reason: 'test' });
  const next = await links.snapshotBody(SERVICE);
  assert.is.not(next, bodies[0]);
  assert.is(next.seq, bodies[0].seq + 1);
  assert.is(next.mappings, bodies[0].mappings - 1);
});

test('a later head is made from the kept snapshot and the change log, the same as a full read', async (ctx) => {
  const h = ctx.h;
  const links = h.hub.links;
  const kept = await links.snapshotBody(SERVICE);
  // Changes of every kind the log carries for a link: a new link (two keys, one by certificate), an
  // unlink, a service ID replaced, a suspension by the MyKey ID's lifecycle, a resumption.
  const a = await register(h);
  const b = await register(h);
  for (const [m, uid] of [
    [a, 'LIB-A'],
    [b, 'LIB-B'],
  ] as const) {
    await links.prepareKeys(SERVICE, m);
    await links.link({ serviceId: SERVICE, mykeyId: m, serviceUserId: uid, by: 'test' });
  }
  await links.unlink({ serviceId: SERVICE, serviceUserId: 'LIB-2', by: 'test', reason: 'test' });
  await links.link({ serviceId: SERVICE, mykeyId: a, serviceUserId: 'LIB-A2', by: 'test' });
  await h.hub.mykeys.applyRevocations([{ bindingId: (await h.hub.mykeys.currentBinding(b))!.id, mykeyId: b, state: 'current', revokedAt: Date.now(), reason: 'keyCompromise' }], Date.now());
  const before = links.snapshotStats();
  const later = await links.snapshotBody(SERVICE);
  assert.is(links.snapshotStats().deltas, before.deltas + 1, 'made from the kept one');
  assert.is(links.snapshotStats().builds, before.builds, 'no full read');
  assert.is(later.seq, await links.headSeq(SERVICE));
  assert.ok(later.seq > kept.seq);
  const parsed = JSON.parse(later.json().toString('utf8')) as Snapshot;
  const full = await links.snapshot(SERVICE);
  assert.is(parsed.entries.length, full.entries.length);
  assert.is(later.mappings, full.entries.length);
  assert.equal(new Map(parsed.entries), new Map(full.entries));
  assert.is(new Map(parsed.entries).get(keyedId((await h.hub.linkRepo.service(SERVICE))!.sync_secret, 'mykey', idOf(2))), undefined);
  assert.equal(Object.keys(parsed), ['serviceId', 'seq', 'generatedAt', 'entries', 'keyScheme']);
  // A gap in the log (a change written without its entry) is read in full.
  await addLinks(h, SERVICE, 3 * LINKS, 5);
  const after = links.snapshotStats();
  const read = await links.snapshotBody(SERVICE);
  assert.is(links.snapshotStats().builds, after.builds + 1);
  assert.equal(new Map((JSON.parse(read.json().toString('utf8')) as Snapshot).entries), new Map((await links.snapshot(SERVICE)).entries));
});

test('a snapshot read over many turns of the event loop is one state at one head seq', async (ctx) => {
  const links = ctx.h.hub.links;
  const seq = await links.headSeq(SERVICE);
  const count = (await links.snapshot(SERVICE)).entries.length;
  const building = links.snapshotBody(SERVICE);
  // SQLite: the build has read its first page and yielded: links committed now are after its state.
  // PostgreSQL: its REPEATABLE READ transaction may take its snapshot before or after them (the
  // connection's round trips): either way the body is one state, its seq and its links together.
  await new Promise((r) => setImmediate(r));
  await addLinks(ctx.h, SERVICE, 2 * LINKS, 1000);
  const body = await building;
  const onPg = process.env.MYKEY_TEST_STORE === 'pg';
  if (!onPg) assert.is(body.seq, seq);
  const before = body.seq === seq;
  assert.is(body.mappings, before ? count : count + 1000);
  const parsed = JSON.parse(body.json().toString('utf8')) as Snapshot;
  assert.is(parsed.entries.length, body.mappings);
  const next = await links.snapshotBody(SERVICE);
  assert.is(next.seq, seq + 1);
  assert.is(next.mappings, count + 1000);
});

test('a certificate whose serial is not stored in normal form is keyed by the one identity rule all the same', async (ctx) => {
  const h = ctx.h;
  const anchor = h.hub.anchors[0];
  // Bindings keep serials in normal form; a row that does not (upper case, a leading zero byte)
  // must not get a key under another identity than the edge computes from the card.
  const cert = { fingerprint: 'fp-odd-serial', issuerKey: anchor.issuerKey, issuerKeyId: anchor.keyId, serialHex: '00AB12CD', aki: 'AA11', notAfter: Date.UTC(2030, 0, 1) };
  await h.hub.mykeys.bulkCreate([{ id: 'ODDSERIAL', cert }], Date.now());
  const secret = (await h.hub.linkRepo.service(SERVICE))!.sync_secret;
  const identity = certIdentityWithKey({ issuerKey: cert.issuerKey, serialHex: cert.serialHex, aki: cert.aki });
  assert.is(identity, `${cert.issuerKey}:aa11:ab12cd`);
  await h.hub.store.sql.tx(async () => {
    await h.hub.linkRepo.upsertLink(SERVICE, 'ODDSERIAL', 'LIB-ODD', Date.now(), 'test');
    await h.hub.linkRepo.insertKey(SERVICE, CURRENT_KEY_SCHEME, 'mykey:ODDSERIAL', keyedId(secret, 'mykey', 'ODDSERIAL'));
    await h.hub.linkRepo.insertKey(SERVICE, CURRENT_KEY_SCHEME, `cert:${identity}`, keyedId(secret, 'cert', identity));
    await h.hub.linkRepo.nextSeq(SERVICE);
  });
  const map = new Map(JSON.parse((await h.hub.links.snapshotBody(SERVICE)).json().toString('utf8')).entries as [string, string][]);
  assert.is(map.get(keyedId(secret, 'cert', identity)), 'LIB-ODD');
  assert.is(map.get(keyedId(secret, 'mykey', 'ODDSERIAL')), 'LIB-ODD');
  assert.is(h.hub.links.keyStats().derivedBlocking, 0, 'its stored key was found, none derived');
});

test('a service ID with a quote and a backslash, and a link whose key is not stored yet, are in the snapshot as the edge reads them', async (ctx) => {
  const h = ctx.h;
  const secret = (await h.hub.linkRepo.service(SERVICE))!.sync_secret;
  // Printable ASCII allows both (shared/ids.ts): SQLite writes them escaped as JSON.stringify does.
  const odd = 'LIB-"Q\\1';
  await h.hub.store.sql.tx(async () => {
    await h.hub.linkRepo.upsertLink(SERVICE, 'QUOTED0', odd, Date.now(), 'test');
    await h.hub.linkRepo.insertKey(SERVICE, CURRENT_KEY_SCHEME, 'mykey:QUOTED0', keyedId(secret, 'mykey', 'QUOTED0'));
    // No key stored for this one: its page is written in TypeScript, the key derived and stored.
    await h.hub.linkRepo.upsertLink(SERVICE, 'NOKEY00', 'LIB-NOKEY', Date.now(), 'test');
    await h.hub.linkRepo.nextSeq(SERVICE);
  });
  const body = await h.hub.links.snapshotBody(SERVICE);
  const text = body.json().toString('utf8');
  assert.ok(text.includes(`,${JSON.stringify(odd)}]`), 'escaped as JSON.stringify escapes it');
  const parsed = JSON.parse(text) as Snapshot;
  assert.is(parsed.entries.length, body.mappings);
  const map = new Map(parsed.entries);
  assert.is(map.get(keyedId(secret, 'mykey', 'QUOTED0')), odd);
  // Derived by the scheme's own (memory-hard) derivation, and stored.
  const derived = keyedIdentitySync(secret, 'mykey', 'NOKEY00', CURRENT_KEY_SCHEME);
  assert.is(map.get(derived), 'LIB-NOKEY');
  assert.is(await h.hub.linkRepo.storedKey(SERVICE, CURRENT_KEY_SCHEME, 'mykey:NOKEY00'), derived);
  assert.equal(map, new Map((await h.hub.links.snapshot(SERVICE)).entries));
  // The edge's own client takes it (schema, sizes).
  const client = new HubClient({ hubUrl: h.hub.addresses.deviceApi!, tls: { ca: ctx.edge.caPem, cert: ctx.edge.certPem, key: ctx.edge.keyPem } });
  assert.is(new Map((await client.snapshot()).value.entries).get(keyedId(secret, 'mykey', 'QUOTED0')), odd);
});

test('links committed while a snapshot begins are all in it or all out of it, across the parts read at once', async (ctx) => {
  const h = ctx.h;
  const links = h.hub.links;
  const secret = (await h.hub.linkRepo.service(SERVICE))!.sync_secret;
  for (let round = 0; round < 4; round++) {
    const seq = await links.headSeq(SERVICE);
    const count = (await links.snapshot(SERVICE)).entries.length;
    // MyKey IDs spread over the whole range (between the existing ones), so both halves of a read in
    // two parts hold some: a half that saw them beside one that did not would count about half.
    const ids = Array.from({ length: 400 }, (_, k) => `${idOf(k * 12)}R${round}`);
    const building = links.snapshotBody(SERVICE);
    const writing = h.hub.store.sql.tx(async () => {
      for (const id of ids) {
        await h.hub.linkRepo.upsertLink(SERVICE, id, `LIB-${id}`, Date.now(), 'test');
        await h.hub.linkRepo.insertKey(SERVICE, CURRENT_KEY_SCHEME, `mykey:${id}`, keyedId(secret, 'mykey', id));
      }
      await h.hub.linkRepo.nextSeq(SERVICE);
    });
    const [body] = await Promise.all([building, writing]);
    const parsed = JSON.parse(body.json().toString('utf8')) as Snapshot;
    assert.is(parsed.entries.length, body.mappings);
    const seen = ids.filter((id) => new Map(parsed.entries).has(keyedId(secret, 'mykey', id))).length;
    if (body.seq === seq) {
      assert.is(seen, 0);
      assert.is(body.mappings, count);
    } else {
      assert.is(body.seq, seq + 1);
      assert.is(seen, ids.length);
      assert.is(body.mappings, count + ids.length);
    }
  }
});

test.run();
