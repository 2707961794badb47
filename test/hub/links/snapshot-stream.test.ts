// A device snapshot's first build is sent as it is read (chunked, its pages in order), shared by the
// edges that ask at the same head, kept whole for the next ones; a build that fails after its head
// went out cuts the response, so an edge never takes part of a snapshot for the whole of it.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { request as httpsRequest } from 'node:https';
import { gunzipSync } from 'node:zlib';
import { HubClient } from '../../../edge/sync/hub-client.ts';
import { createKeyedIdentities } from '../../../hub/links/keyed-identities.ts';
import { createSnapshots } from '../../../hub/links/snapshot.ts';
import { createSnapshotRepo, type SnapshotPages, type SnapshotRepo } from '../../../hub/store/snapshot-repo.ts';
import type { Snapshot } from '../../../shared/sync.ts';
import type { TestHub } from '../../helpers/hub.ts';
import { startHubWithEdge } from '../../helpers/enrolled-edge.ts';
import { addLinks } from './helpers/bulk-links.ts';

interface Ctx {
  h: TestHub;
  edge: { certPem: string; keyPem: string; caPem: string };
}
const test = suite<Ctx>('device snapshots streamed', {} as Ctx);
const SERVICE = 'library';
/** Enough links for several ranges (SQLite: split into eight at least) and pages (PostgreSQL). */
const LINKS = 12_000;

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Whether the whole message arrived (the last chunk of a chunked body). */
  complete: boolean;
  error?: string;
}

/** GET /v1/device/snapshot over mutual TLS (gzip: asking for it); resolves however the response ends (bounded). */
function rawSnapshot(ctx: Ctx, gzip = false): Promise<Raw> {
  const url = new URL('/v1/device/snapshot', ctx.h.hub.addresses.deviceApi);
  const headers = gzip ? { 'accept-encoding': 'gzip' } : {};
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca: ctx.edge.caPem, cert: ctx.edge.certPem, key: ctx.edge.keyPem, agent: false, timeout: 60_000, headers }, (res) => {
      const chunks: Buffer[] = [];
      let error: string | undefined;
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('error', (e) => (error = e.message));
      res.on('close', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete, error }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 60 s')));
    req.on('error', reject);
    req.end();
  });
}

test.before(async (ctx) => {
  ({ h: ctx.h, edge: ctx.edge } = await startHubWithEdge({ edgeId: 'lib-counter-2', service: { id: SERVICE, requireHolderProof: false } }));
  await addLinks(ctx.h, SERVICE, 0, LINKS);
});
test.after(async (ctx) => ctx.h.close());

test('a first build is sent as it is read (chunked, no length), the same bytes as the kept body sent next', async (ctx) => {
  const links = ctx.h.hub.links;
  const before = links.snapshotStats();
  const first = await rawSnapshot(ctx);
  assert.is(links.snapshotStats().builds, before.builds + 1, 'built for this request');
  assert.is(first.status, 200);
  assert.ok(first.complete, 'the whole body arrived');
  assert.is(first.headers['transfer-encoding'], 'chunked');
  assert.is(first.headers['content-length'], undefined);
  const parsed = JSON.parse(first.body.toString('utf8')) as Snapshot;
  assert.is(parsed.entries.length, LINKS);
  assert.is(parsed.seq, await links.headSeq(SERVICE));
  assert.equal(Object.keys(parsed), ['serviceId', 'seq', 'generatedAt', 'entries', 'keyScheme']);
  assert.equal(new Map(parsed.entries), new Map((await links.snapshot(SERVICE)).entries));

  const kept = await rawSnapshot(ctx);
  assert.is(links.snapshotStats().hits, before.hits + 1, 'kept');
  assert.is(kept.headers['content-length'], String(kept.body.length));
  assert.equal(kept.body, first.body, 'the bytes sent while it was read are the bytes kept');
});

test('edges asking at one head while it is built share the build, each sent the whole of it', async (ctx) => {
  const links = ctx.h.hub.links;
  await addLinks(ctx.h, SERVICE, LINKS, 10); // a new head
  const before = links.snapshotStats();
  const answers = await Promise.all([rawSnapshot(ctx), rawSnapshot(ctx), rawSnapshot(ctx)]);
  const s = links.snapshotStats();
  // Each request either shared the build under way or (a loaded machine: it was done by then) got it kept.
  assert.is(s.builds + s.deltas, before.builds + before.deltas + 1, 'one build');
  assert.is(s.shared + s.hits, before.shared + before.hits + 2);
  for (const a of answers) {
    assert.is(a.status, 200);
    assert.ok(a.complete);
    assert.equal(a.body, answers[0].body);
  }
  assert.is((JSON.parse(answers[0].body.toString('utf8')) as Snapshot).entries.length, LINKS + 10);
});

test('edges asking for gzip while it is built are sent its gzip form as it is made, kept with the body for the next', async (ctx) => {
  const links = ctx.h.hub.links;
  await addLinks(ctx.h, SERVICE, 3 * LINKS, 10); // a new head
  const before = links.snapshotStats();
  const answers = await Promise.all([rawSnapshot(ctx, true), rawSnapshot(ctx, true), rawSnapshot(ctx, false)]);
  const s = links.snapshotStats();
  assert.is(s.builds + s.deltas, before.builds + before.deltas + 1, 'one build');
  // The first request started the build: its gzip form went out as it was made.
  assert.is(answers[0].headers['transfer-encoding'], 'chunked');
  assert.is(answers[0].headers['content-length'], undefined);
  const json = answers[2].body;
  assert.is((JSON.parse(json.toString('utf8')) as Snapshot).entries.length, LINKS + 20);
  for (const a of answers.slice(0, 2)) {
    assert.is(a.status, 200);
    assert.ok(a.complete);
    assert.is(a.headers['content-encoding'], 'gzip');
    assert.equal(gunzipSync(a.body), json, 'the gzip form of the same bytes');
  }
  // The next gzip request is answered from the kept gzip form, whole, with its length.
  const kept = await rawSnapshot(ctx, true);
  assert.is(links.snapshotStats().hits, s.hits + 1, 'kept');
  assert.is(kept.headers['content-length'], String(kept.body.length));
  assert.equal(gunzipSync(kept.body), json);
});

/** The hub's snapshot store, failing the third page or range read from now on (once). */
function failingThird(real: SnapshotRepo): SnapshotRepo {
  let reads = 0;
  const failing =
    <A extends unknown[], R>(f: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      if (++reads === 3) throw new Error('the third range could not be read');
      return f(...a);
    };
  const wrap = (p: SnapshotPages): SnapshotPages => ({
    ...p,
    page: p.jsonPage ? p.page : failing(p.page),
    ...(p.jsonPage ? { jsonPage: failing(p.jsonPage) } : {}),
  });
  return { ...real, read: (fn) => real.read((pages, more) => fn(wrap(pages), more.map(wrap))) };
}

test('a build that fails after its head was sent cuts the response: no edge takes it for a whole snapshot', async (ctx) => {
  const h = ctx.h;
  const links = h.hub.links;
  await addLinks(h, SERVICE, 4 * LINKS, 10); // a new head, read in full by the builds below (none kept for it)
  // The hub's own builder and readers over the same store, the third read of its next build failing;
  // the device route asks it.
  const store = createSnapshotRepo(h.hub.store.sql);
  const snapshots = createSnapshots({ repo: h.hub.linkRepo, store: failingThird(store), keys: createKeyedIdentities({ repo: h.hub.linkRepo, mykeys: h.hub.mykeys }), now: Date.now });
  const own = links.snapshotOpen;
  links.snapshotOpen = (serviceId) => snapshots.open(serviceId);
  try {
    const cut = await rawSnapshot(ctx);
    assert.is(cut.status, 200, 'the head went out before the read failed');
    assert.is(cut.complete, false, 'no last chunk: the body ends as an error');
    assert.ok(cut.body.toString('utf8').startsWith(`{"serviceId":"${SERVICE}"`));
    assert.throws(() => JSON.parse(cut.body.toString('utf8')));
    assert.is(snapshots.stats().cached, 0, 'nothing kept of it');

    // The next request builds anew (the failure is not kept), whole; so does the edge's own client.
    const next = await rawSnapshot(ctx);
    assert.is(next.status, 200);
    assert.ok(next.complete);
    assert.is((JSON.parse(next.body.toString('utf8')) as Snapshot).entries.length, LINKS + 30);
    assert.is(snapshots.stats().builds, 2);
    const client = new HubClient({ hubUrl: h.hub.addresses.deviceApi!, tls: { ca: ctx.edge.caPem, cert: ctx.edge.certPem, key: ctx.edge.keyPem } });
    assert.is((await client.snapshot()).value.entries.length, LINKS + 30);
  } finally {
    links.snapshotOpen = own;
    snapshots.close();
  }
});

test('an edge whose snapshot build fails gets an error from its own client (gzip, cut as it is made), not a snapshot', async (ctx) => {
  const h = ctx.h;
  const links = h.hub.links;
  await addLinks(h, SERVICE, 5 * LINKS, 10);
  const store = createSnapshotRepo(h.hub.store.sql);
  const snapshots = createSnapshots({ repo: h.hub.linkRepo, store: failingThird(store), keys: createKeyedIdentities({ repo: h.hub.linkRepo, mykeys: h.hub.mykeys }), now: Date.now });
  const own = links.snapshotOpen;
  links.snapshotOpen = (serviceId) => snapshots.open(serviceId);
  try {
    // The edge's client asks gzip: its response is cut where the build failed.
    const client = new HubClient({ hubUrl: h.hub.addresses.deviceApi!, tls: { ca: ctx.edge.caPem, cert: ctx.edge.certPem, key: ctx.edge.keyPem } });
    let refused: unknown;
    await client.snapshot().then(
      () => undefined,
      (e: unknown) => (refused = e),
    );
    assert.ok(refused instanceof Error, 'the client throws');
    assert.is(snapshots.stats().cached, 0);
  } finally {
    links.snapshotOpen = own;
    snapshots.close();
  }
});

test.run();
