// The MQTT outbox coalesces what is pending into batched log messages (v3 compact, or v2 when
// configured, shared/sync.ts): runs of consecutive seqs of one topic, under the broker's packet limit,
// in order; a lone entry stays v1.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkLogPayload } from '../../../edge/sync/log-message.ts';
import { createLinks } from '../../../hub/links/links.ts';
import { coalesce, createOutboxPublisher } from '../../../hub/links/outbox-publisher.ts';
import { openDatabase, type Db } from '../../../hub/store/db.ts';
import { createLinkRepo, type LinkRepo } from '../../../hub/store/link-repo.ts';
import { createMyKeyRepo } from '../../../hub/store/mykey-repo.ts';
import { certIdentity } from '../../../shared/cert-identity.ts';
import { randomMyKeyId } from '../../../shared/ids.ts';
import { createLogger } from '../../../shared/log.ts';
import { CURRENT_KEY_SCHEME, entriesOf, type LogMessage, MAX_SYNC_PAYLOAD_BYTES, type ChangeEntry } from '../../../shared/sync.ts';
import { serviceLogTopic } from '../../../shared/topics.ts';
import { until } from '../../helpers/polling.ts';

interface Ctx {
  dir: string;
  db: Db;
  repo: LinkRepo;
  links: ReturnType<typeof createLinks>;
  mykeys: ReturnType<typeof createMyKeyRepo>;
}
const test = suite<Ctx>('MQTT outbox batching', {} as Ctx);
const log = createLogger('outbox-test', { level: 'silent' });

test.before.each((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'outbox-'));
  ctx.db = openDatabase(join(ctx.dir, 'hub.sqlite'));
  ctx.repo = createLinkRepo(ctx.db);
  ctx.mykeys = createMyKeyRepo(ctx.db);
  ctx.links = createLinks({ sql: ctx.db, repo: ctx.repo, mykeys: ctx.mykeys });
});
test.after.each((ctx) => {
  ctx.db.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

/** Links `count` new MyKey IDs; their keyed identities are stored ahead (random), as prepareKeys would. */
async function linked(ctx: Ctx, serviceId: string, count: number): Promise<string[]> {
  const users: string[] = [];
  for (let i = 0; i < count; i++) {
    const cert = { fingerprint: randomBytes(32).toString('hex'), issuerKey: 'b'.repeat(32), issuerKeyId: 'c'.repeat(40), serialHex: randomBytes(8).toString('hex'), notAfter: Date.now() + 1e10 };
    const r = await ctx.mykeys.createOrGet(cert, () => randomMyKeyId(randomBytes), Date.now());
    if (!('row' in r)) throw new Error('no MyKey ID');
    for (const identity of [`mykey:${r.row.id}`, `cert:${certIdentity(cert.issuerKey, cert.serialHex)}`])
      await ctx.repo.insertKey(serviceId, CURRENT_KEY_SCHEME, identity, randomBytes(16).toString('base64url'));
    const serviceUserId = `U-${String(i).padStart(6, '0')}`;
    await ctx.links.link({ serviceId, mykeyId: r.row.id, serviceUserId, by: 'test' });
    users.push(serviceUserId);
  }
  return users;
}

test('a burst goes out as batches under the packet limit, every entry once and in order', async (ctx) => {
  await ctx.links.createService({ id: 'library', name: 'Library' });
  const users = await linked(ctx, 'library', 1500);
  for (const u of users) await ctx.links.unlink({ serviceId: 'library', serviceUserId: u, by: 'service', reason: 'cancelled' });
  const published: { topic: string; payload: string }[] = [];
  const outbox = createOutboxPublisher({ repo: ctx.repo, log });
  outbox.attach(async (topic, payload) => void published.push({ topic, payload }));
  await outbox.drain();
  outbox.stop();
  assert.is((await ctx.repo.pendingMqtt()).length, 0);
  const seqs: number[] = [];
  for (const p of published) {
    assert.ok(Buffer.byteLength(p.payload) <= MAX_SYNC_PAYLOAD_BYTES, 'under the packet limit');
    // What an edge makes of it (edge/sync/log-message.ts): schema, consecutive seqs.
    const v = checkLogPayload(Buffer.from(p.payload));
    assert.ok(v.ok, v.ok ? '' : v.message);
    if (v.ok) seqs.push(...v.value.map((e: ChangeEntry) => e.seq));
  }
  assert.equal(
    seqs,
    Array.from({ length: 3000 }, (_, i) => i + 1),
  );
  assert.ok(published.length <= 8, `${published.length} messages for 3,000 entries`);
  assert.equal(outbox.stats(), { messages: published.length, entries: 3000 });
});

test('a burst goes out as compact batches (v3) unless batchVersion says 2; an edge reads both, v3 in fewer bytes', async (ctx) => {
  await ctx.links.createService({ id: 'library', name: 'Library' });
  const users = await linked(ctx, 'library', 600);
  for (const u of users) await ctx.links.unlink({ serviceId: 'library', serviceUserId: u, by: 'service', reason: 'cancelled' });
  // The unlinks only (the links before them are another kind): a run of remove-only entries.
  const rows = (await ctx.repo.pendingMqtt(5000)).slice(600);
  const sent: Record<string, { v: number; bytes: number; seqs: number[] }> = {};
  for (const version of [undefined, 2, 3] as const) {
    const published: string[] = [];
    const outbox = createOutboxPublisher({
      repo: { ...ctx.repo, pendingMqtt: async () => (published.length > 0 ? [] : rows), deleteMqttMany: async () => undefined },
      log,
      ...(version ? { batchVersion: version } : {}),
    });
    outbox.attach(async (_topic, payload) => void published.push(payload));
    await outbox.drain();
    outbox.stop();
    const seqs: number[] = [];
    for (const p of published) {
      const v = checkLogPayload(Buffer.from(p));
      assert.ok(v.ok, v.ok ? '' : v.message);
      if (v.ok) seqs.push(...v.value.map((e) => e.seq));
    }
    const tags = new Set(published.map((p) => (JSON.parse(p) as { v?: number }).v));
    assert.is(tags.size, 1);
    sent[String(version)] = { v: [...tags][0] ?? 1, bytes: published.reduce((n, p) => n + Buffer.byteLength(p), 0), seqs };
  }
  assert.is(sent.undefined.v, 3, 'v3 by default');
  assert.is(sent['2'].v, 2);
  assert.equal(sent['2'].seqs, sent['3'].seqs);
  assert.equal(
    sent['3'].seqs,
    Array.from({ length: 600 }, (_, i) => i + 601),
  );
  assert.ok(sent['3'].bytes < 0.85 * sent['2'].bytes, `v3 ${sent['3'].bytes} bytes, v2 ${sent['2'].bytes}`);
});

test('a lone entry goes out as a v1 entry, which edges not yet upgraded understand', async (ctx) => {
  await ctx.links.createService({ id: 'library', name: 'Library' });
  const published: string[] = [];
  const outbox = createOutboxPublisher({ repo: ctx.repo, log });
  outbox.attach(async (_topic, payload) => void published.push(payload));
  await outbox.drain();
  const [u] = await linked(ctx, 'library', 1);
  await outbox.drain();
  await ctx.links.unlink({ serviceId: 'library', serviceUserId: u, by: 'service', reason: 'cancelled' });
  await outbox.drain();
  outbox.stop();
  assert.equal(
    published.map((p) => (JSON.parse(p) as ChangeEntry).seq),
    [1, 2],
  );
});

test('a failed publication keeps its rows; the retry sends them again, nothing lost', async (ctx) => {
  await ctx.links.createService({ id: 'library', name: 'Library' });
  await linked(ctx, 'library', 50);
  let fail = true;
  const seqs: number[] = [];
  const outbox = createOutboxPublisher({ repo: ctx.repo, log, retryMs: 10_000 });
  outbox.attach(async (_t, payload) => {
    if (fail) throw new Error('broker down');
    seqs.push(...entriesOf(JSON.parse(payload) as LogMessage).map((e) => e.seq));
  });
  await outbox.drain();
  assert.is((await ctx.repo.pendingMqtt()).length, 50);
  fail = false;
  await outbox.drain();
  outbox.stop();
  assert.equal(
    seqs,
    Array.from({ length: 50 }, (_, i) => i + 1),
  );
  assert.is((await ctx.repo.pendingMqtt()).length, 0);
});

test('with a window, confirmations out of order delete only the confirmed prefix; a failure mid-window keeps its rows and every later one', async (ctx) => {
  await ctx.links.createService({ id: 'library', name: 'Library' });
  await linked(ctx, 'library', 40);
  // Every entry its own message (v1), four in flight at once.
  const calls: { seq: number; settle: (error?: Error) => void }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const outbox = createOutboxPublisher({ repo: ctx.repo, log, batch: false, window: 4, retryMs: 10_000 });
  outbox.attach(
    (_t, payload) =>
      new Promise<void>((resolve, reject) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        calls.push({
          seq: (JSON.parse(payload) as ChangeEntry).seq,
          settle: (error) => {
            inFlight--;
            if (error) reject(error);
            else resolve();
          },
        });
      }),
  );
  const pendingSeqs = async () => (await ctx.repo.pendingMqtt()).map((r) => (JSON.parse(r.payload) as ChangeEntry).seq);
  const round = outbox.drain();
  await until(() => calls.length === 4, { what: 'a full window' });
  // The newest confirmed first: nothing leaves the outbox until the oldest is confirmed.
  for (const i of [3, 2, 1]) calls[i].settle();
  await new Promise((r) => setImmediate(r));
  assert.is((await pendingSeqs()).length, 40, 'no row deleted before the oldest message is confirmed');
  calls[0].settle();
  await until(() => calls.length === 8, { what: 'the next window' });
  await until(async () => (await pendingSeqs())[0] === 5, { what: 'the rows of the confirmed prefix deleted' });
  // Message 6 fails; 5, 7 and 8 are confirmed: only 5 leaves, 6 and everything after stay.
  calls[4].settle();
  calls[5].settle(new Error('connection lost'));
  calls[6].settle();
  calls[7].settle();
  await round;
  assert.is(calls.length, 8, 'nothing more published after the failure');
  assert.equal(
    await pendingSeqs(),
    Array.from({ length: 35 }, (_, i) => i + 6),
  );
  assert.equal(outbox.stats(), { messages: 5, entries: 5 });
  // The retry sends from the failed message on, in order, never more than the window at once.
  const retry = outbox.drain();
  let settled = 8;
  await until(
    async () => {
      for (; settled < calls.length; settled++) calls[settled].settle();
      return calls.length === 8 + 35 && (await pendingSeqs()).length === 0;
    },
    { what: 'the retry to publish the rest' },
  );
  await retry;
  assert.equal(
    calls.slice(8).map((c) => c.seq),
    Array.from({ length: 35 }, (_, i) => i + 6),
  );
  outbox.stop();
  assert.ok(maxInFlight === 4, `at most the window in flight (${maxInFlight})`);
  assert.equal(outbox.stats(), { messages: 40, entries: 40 });
});

test('the byte bound of the window keeps large messages to a few in flight; one always goes', async (ctx) => {
  await ctx.links.createService({ id: 'library', name: 'Library' });
  const users = await linked(ctx, 'library', 30);
  const size = (await ctx.repo.pendingMqtt(1))[0].payload.length;
  for (const [windowBytes, most] of [
    [Math.floor(size * 2.5), 2],
    [1, 1],
  ] as const) {
    let inFlight = 0;
    let maxInFlight = 0;
    const outbox = createOutboxPublisher({ repo: ctx.repo, log, batch: false, window: 16, windowBytes });
    outbox.attach(async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
    });
    await outbox.drain();
    outbox.stop();
    assert.is(maxInFlight, most, `at most ${most} in flight under ${windowBytes} bytes`);
    assert.is((await ctx.repo.pendingMqtt()).length, 0);
    // New rows for the next case.
    for (const u of users) await ctx.links.unlink({ serviceId: 'library', serviceUserId: u, by: 'service', reason: 'cancelled' });
    users.length = 0;
  }
});

/**
 * 1,500 links of `library` made and published, then all unlinked: 1,500 entries pending behind an
 * outbox that records what it publishes (its sweep every `sweepMs`), as a CRL run leaves them.
 */
async function unlinkedBehindOutbox(ctx: Ctx, sweepMs: number) {
  await ctx.links.createService({ id: 'library', name: 'Library' });
  const users = await linked(ctx, 'library', 1500);
  const published: string[] = [];
  const outbox = createOutboxPublisher({ repo: ctx.repo, log, sweepMs });
  outbox.attach(async (_topic, payload) => void published.push(payload));
  await outbox.drain();
  published.length = 0;
  for (const u of users) await ctx.links.unlink({ serviceId: 'library', serviceUserId: u, by: 'service', reason: 'cancelled' });
  return { outbox, published };
}

test('while a CRL run goes on writing only whole batches go out; the last kick sends the rest, every entry once and in order', async (ctx) => {
  const { outbox, published } = await unlinkedBehindOutbox(ctx, 3_600_000);
  // What a chunk's `suspended` event with `more` does (hub/fanout.ts): the partly filled tail waits.
  await outbox.drain({ more: true });
  assert.is(published.length, 1, 'one whole batch');
  assert.ok(Buffer.byteLength(published[0]) > MAX_SYNC_PAYLOAD_BYTES - 200, `${Buffer.byteLength(published[0])} bytes: filled`);
  const left = (await ctx.repo.pendingMqtt()).length;
  assert.ok(left > 0 && left < 1500, `${left} rows held back`);
  // Held back, not lost: a kick with more and nothing new sends nothing; the run's last event sends them.
  await outbox.drain({ more: true });
  assert.is(published.length, 1);
  await outbox.drain();
  outbox.stop();
  assert.is((await ctx.repo.pendingMqtt()).length, 0);
  const seqs: number[] = [];
  for (const p of published) {
    const v = checkLogPayload(Buffer.from(p));
    assert.ok(v.ok, v.ok ? '' : v.message);
    if (v.ok) seqs.push(...v.value.map((e: ChangeEntry) => e.seq));
  }
  assert.equal(
    seqs,
    Array.from({ length: 1500 }, (_, i) => 1501 + i),
  );
});

test('the sweep does not send a held batch while a run goes on saying more', async (ctx) => {
  const { outbox, published } = await unlinkedBehindOutbox(ctx, 20);
  outbox.kick({ more: true });
  await until(() => published.length === 1, { timeoutMs: 10_000 });
  // Several sweeps pass (every 20 ms); the tail stays until the run's last event.
  await new Promise((r) => setTimeout(r, 300));
  assert.is(published.length, 1);
  outbox.kick();
  await until(async () => (await ctx.repo.pendingMqtt()).length === 0, { timeoutMs: 10_000 });
  outbox.stop();
  assert.is(published.length, 2);
});

test('coalescing keeps topics apart, splits at a hole in the seqs and at the size bound', () => {
  const a = serviceLogTopic('library');
  const b = serviceLogTopic('museum');
  const e = (seq: number) => JSON.stringify({ seq, kind: 'suspend', at: '2026-01-01T00:00:00.000Z', remove: ['A'.repeat(22)] });
  const rows = [
    { id: 1, topic: a, payload: e(1) },
    { id: 2, topic: b, payload: e(7) },
    { id: 3, topic: a, payload: e(2) },
    { id: 4, topic: b, payload: e(8) },
    { id: 5, topic: a, payload: e(4) }, // a hole: 3 is missing
    { id: 6, topic: a, payload: e(5) },
  ];
  const out = coalesce(rows);
  const view = out.map((m) => ({ topic: m.topic, ids: m.ids, seqs: entriesOf(JSON.parse(m.payload) as LogMessage).map((x) => x.seq) }));
  assert.equal(view, [
    { topic: a, ids: [1, 3], seqs: [1, 2] },
    { topic: a, ids: [5, 6], seqs: [4, 5] },
    { topic: b, ids: [2, 4], seqs: [7, 8] },
  ]);
  // A bound that holds two entries: three messages of 2, 2 and 1 for five entries, each under it.
  const five = [1, 2, 3, 4, 5].map((seq) => ({ id: seq, topic: a, payload: e(seq) }));
  const two = coalesce(five.slice(0, 2))[0].payload.length;
  assert.equal(
    coalesce(five, two).map((m) => m.ids.length),
    [2, 2, 1],
  );
  assert.ok(coalesce(five, two).every((m) => m.payload.length <= two));
});

test.run();
