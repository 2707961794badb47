// Batched change-log messages (v2 and the compact v3, shared/sync.ts) through real brokers, aedes and
// Mosquitto: a batch is applied in order; a gap before or between batches, a batch seen twice and a
// batch that overlaps what the edge has are handled as for single entries; v1, v2 and v3 mix in one
// stream; a bad batch is refused whole, a miscounted v3 batch with its own code. (A hole inside one batch cannot be written: entry i has seq `seq + i`.)
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeCache } from '../../../edge/cache/edge-cache.ts';
import { EdgeState } from '../../../edge/state/edge-state.ts';
import { SyncAgent, type SyncEvents } from '../../../edge/sync/sync-agent.ts';
import { MYKEY_ALPHABET } from '../../../shared/ids.ts';
import { createLogger } from '../../../shared/log.ts';
import type { ChangeEntry } from '../../../shared/sync.ts';
import { startBroker, type BrokerKind, type TestBroker } from './helpers/brokers.ts';
import { FakeHub } from './helpers/fake-hub.ts';
import { until } from '../../helpers/polling.ts';

const log = createLogger('batch-test', { level: (process.env.TEST_LOG as 'debug' | undefined) ?? 'silent' });
let n = 0;

interface Ctx {
  broker: TestBroker;
  hub: FakeHub;
  dir: string;
  agent: SyncAgent;
  state: EdgeState;
  cache: EdgeCache;
  seen: { applied: SyncEvents['applied'][]; dropped: SyncEvents['dropped'][] };
}

function define(kind: BrokerKind): void {
  const test = suite<Ctx>(`batched change-log messages through ${kind}`, {} as Ctx);

  test.before.each(async (ctx) => {
    ctx.broker = await startBroker(kind);
    ctx.hub = new FakeHub({ brokerUrl: ctx.broker.url, edgeId: `edge-batch-${kind}-${++n}` });
    await ctx.hub.start();
    ctx.dir = mkdtempSync(join(tmpdir(), 'sync-batch-'));
    ctx.cache = new EdgeCache();
    ctx.state = new EdgeState({ dir: ctx.dir, log });
    await ctx.state.open(ctx.cache);
    ctx.agent = new SyncAgent({ hubUrl: ctx.hub.url, brokerUrl: ctx.broker.url, state: ctx.state, cache: ctx.cache, version: '0.1.0-test', log, backoff: { minMs: 100, maxMs: 400 }, keepaliveS: 5 });
    ctx.seen = { applied: [], dropped: [] };
    ctx.agent.events.on('applied', (a) => void ctx.seen.applied.push(a));
    ctx.agent.events.on('dropped', (d) => void ctx.seen.dropped.push(d));
    await ctx.agent.start();
    await until(() => ctx.agent.connected && ctx.cache.synced, { what: 'connected and synced' });
    await ctx.agent.catchUp(); // let the catch-ups of start and connect finish first
    ctx.hub.publish = false; // each test publishes the log itself, as batches or entries
  });

  test.after.each(async (ctx) => {
    await ctx.agent.stop();
    await ctx.state.close();
    await ctx.hub.stop();
    await ctx.broker.stop();
    rmSync(ctx.dir, { recursive: true, force: true });
  });

  // MyKey IDs prefix + 4 characters of the alphabet, distinct for i < 31^2.
  const id = (prefix: string, i: number) => `${prefix}22${MYKEY_ALPHABET[Math.floor(i / 31)]}${MYKEY_ALPHABET[i % 31]}`;
  const links = (hub: FakeHub, count: number, prefix: string): ChangeEntry[] => Array.from({ length: count }, (_, i) => hub.link(id(prefix, i), `${prefix}-${i}`));
  const same = (cache: EdgeCache, hub: FakeHub) => {
    const a = new Map(cache.index.entries());
    const b = hub.model();
    return a.size === b.size && [...b].every(([k, v]) => a.get(k) === v);
  };
  const appliedSeqs = (ctx: Ctx) => ctx.seen.applied.map((a) => a.seq);
  const upTo = (k: number) => Array.from({ length: k }, (_, i) => i + 1);

  test('applies a batch in order from one message, without asking the hub', async (ctx) => {
    const { hub, cache, agent } = ctx;
    const changesBefore = hub.requests.changes;
    const entries = links(hub, 40, 'AAAA');
    entries.push(hub.unlink(id('AAAA', 1), 'suspend'));
    await hub.batch(entries);
    await until(() => ctx.seen.applied.at(-1)?.seq === 41, { what: 'applied' });
    assert.equal(appliedSeqs(ctx), upTo(41));
    assert.is(cache.lookupMyKey(id('AAAA', 1)), undefined, 'the suspension in the batch purged it');
    assert.is(cache.lookupMyKey(id('AAAA', 2)), 'AAAA-2');
    assert.ok(same(cache, hub));
    assert.is(agent.stats().batches, 1);
    assert.is(agent.stats().gaps, 0);
    assert.is(hub.requests.changes, changesBefore, 'no catch-up was needed');
  });

  test('catches up when a batch starts beyond the next seq, and applies none of it out of order', async (ctx) => {
    const { hub, cache, agent } = ctx;
    const all = links(hub, 8, 'BBBB');
    await hub.batch(all.slice(0, 2));
    await hub.batch(all.slice(4, 8)); // 3 and 4 never published: the edge's position is behind this batch
    await until(() => cache.appliedSeq === 8 && ctx.seen.applied.length === 8, { what: 'caught up' });
    assert.equal(appliedSeqs(ctx), upTo(8));
    assert.ok(agent.stats().gaps >= 1);
    assert.ok(same(cache, hub));
  });

  test('catches up on a gap between two batches', async (ctx) => {
    const { hub, cache, agent } = ctx;
    const all = links(hub, 9, 'CCCC');
    await hub.batch(all.slice(0, 3));
    await hub.batch(all.slice(6, 9)); // 4..6 never published
    await until(() => cache.appliedSeq === 9, { what: 'caught up' });
    await until(() => ctx.seen.applied.length === 9, { what: 'announced' });
    assert.equal(appliedSeqs(ctx), upTo(9), 'each once, in order');
    assert.ok(agent.stats().gaps >= 1);
    assert.ok(same(cache, hub));
  });

  test('ignores a batch seen twice and applies only the new tail of an overlapping one', async (ctx) => {
    const { hub, cache, agent } = ctx;
    const all = links(hub, 8, 'DDDD');
    await hub.batch(all.slice(0, 5));
    await hub.batch(all.slice(0, 5));
    await hub.batch(all.slice(3, 8));
    await hub.flush();
    await until(() => ctx.seen.applied.length === 8, { what: 'applied' });
    await until(() => agent.stats().duplicates === 7, { what: 'duplicates counted' });
    assert.equal(appliedSeqs(ctx), upTo(8));
    assert.is(agent.stats().gaps, 0);
    assert.ok(same(cache, hub));
  });

  test('applies a stream that mixes single entries (v1) and batches (v2)', async (ctx) => {
    const { hub, cache, agent } = ctx;
    const all = links(hub, 10, 'EEEE');
    all.push(hub.unlink(id('EEEE', 0)));
    await hub.republish(all[0]);
    await hub.batch(all.slice(1, 4));
    await hub.republish(all[4]);
    await hub.batch(all.slice(5, 10));
    await hub.republish(all[2]); // a replay of an entry that came in a batch
    await hub.republish(all[10]);
    await until(() => ctx.seen.applied.length === 11, { what: 'applied' });
    assert.equal(appliedSeqs(ctx), upTo(11));
    assert.is(cache.lookupMyKey(id('EEEE', 0)), undefined);
    assert.is(agent.stats().batches, 2);
    assert.is(agent.stats().gaps, 0);
    await until(() => agent.stats().duplicates === 1, { what: 'replay counted' });
    assert.ok(same(cache, hub));
  });

  test('applies a stream that mixes single entries (v1), batches (v2) and compact batches (v3)', async (ctx) => {
    const { hub, cache, agent } = ctx;
    const all = links(hub, 9, 'GGGG');
    all.push(hub.unlink(id('GGGG', 0), 'suspend'), hub.unlink(id('GGGG', 1), 'suspend'), hub.unlink(id('GGGG', 2), 'suspend'));
    await hub.republish(all[0]);
    await hub.batch(all.slice(1, 4), 2);
    await hub.batch(all.slice(4, 7), 3);
    await hub.republish(all[7]);
    await hub.batch(all.slice(8, 12), 3); // a link, then three suspensions: strings of their keys
    await until(() => ctx.seen.applied.length === 12, { what: 'applied' });
    assert.equal(appliedSeqs(ctx), upTo(12));
    for (const i of [0, 1, 2]) assert.is(cache.lookupMyKey(id('GGGG', i)), undefined, 'suspended in the compact batch');
    assert.is(cache.lookupMyKey(id('GGGG', 3)), 'GGGG-3');
    assert.is(agent.stats().batches, 3);
    assert.is(agent.stats().gaps, 0);
    assert.ok(same(cache, hub));
  });

  test('refuses a compact batch whose count is not its number of entries, or whose string entry is not whole keys', async (ctx) => {
    const { hub, cache } = ctx;
    const [e1, e2] = links(hub, 2, 'HHHH');
    const k = e1.set!.keys[0];
    const head = { v: 3, seq: 1, kind: 'link', at: e1.at };
    const one = { remove: e1.remove, set: e1.set };
    // n smaller than the entries: an edge trusting it would take seq 2 for the last one it holds.
    const short = JSON.stringify({ ...head, n: 1, entries: [one, k] });
    const long = JSON.stringify({ ...head, n: 3, entries: [one, k] });
    const bad = [
      JSON.stringify({ ...head, n: 2, entries: [one, k.slice(1)] }), // 21 characters
      JSON.stringify({ ...head, n: 2, entries: [one, `${k}A`] }), // 23 characters
      JSON.stringify({ ...head, n: 2, entries: [one, `+${k.slice(1)}`] }), // not base64url
      JSON.stringify({ ...head, n: 2, entries: [one, k.repeat(65)] }), // more than 64 keys
      JSON.stringify({ ...head, entries: [one, k] }), // no n
    ];
    for (const p of [short, long, ...bad]) await hub.raw(p);
    await until(() => ctx.seen.dropped.length === 2 + bad.length, { what: 'all dropped' });
    assert.equal(
      ctx.seen.dropped.map((d) => d.code),
      ['log_batch_miscounted', 'log_batch_miscounted', ...bad.map(() => 'validation_failed')],
    );
    assert.is(cache.appliedSeq, 0);
    await hub.batch([e1, e2]);
    await until(() => cache.appliedSeq === 2, { what: 'a good one still applies' });
  });

  test('refuses batches that are empty, oversized, of another version or off the schema', async (ctx) => {
    const { hub, cache } = ctx;
    const [e1, e2] = links(hub, 2, 'FFFF');
    const head = { v: 2, seq: 1, kind: 'link', at: e1.at };
    const one = { remove: e1.remove, set: e1.set };
    const bad = [
      JSON.stringify({ ...head, entries: [] }),
      JSON.stringify({ ...head, v: 3, entries: [one] }),
      JSON.stringify({ ...head, entries: [one], extra: true }),
      JSON.stringify({ ...head, seq: 0, entries: [one] }),
      JSON.stringify({ ...head, entries: [{ ...one, seq: 1 }] }), // an entry of a batch has no seq of its own
      JSON.stringify({ ...head, kind: 'explode', entries: [one] }),
      JSON.stringify({ v: 2, seq: 1, entries: [one] }), // no kind, no at
      JSON.stringify({ ...head, entries: Array.from({ length: 1200 }, () => one) }), // > 64 KiB
    ];
    for (const p of bad) await hub.raw(p);
    await until(() => ctx.seen.dropped.length === bad.length, { what: 'all dropped' });
    assert.equal(
      ctx.seen.dropped.map((d) => d.code),
      [...Array(bad.length - 1).fill('validation_failed'), 'payload_too_large'],
    );
    assert.is(cache.appliedSeq, 0);
    await hub.batch([e1, e2]);
    await until(() => cache.appliedSeq === 2, { what: 'a good one still applies' });
  });

  test.run();
}

define('aedes');
define('mosquitto');
