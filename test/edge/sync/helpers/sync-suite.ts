// The sync agent's tests, run once against aedes and once against Mosquitto (one file each).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt, { type MqttClient } from 'mqtt';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EdgeCache } from '../../../../edge/cache/edge-cache.ts';
import { EdgeState } from '../../../../edge/state/edge-state.ts';
import { SyncAgent, type SyncEvents } from '../../../../edge/sync/sync-agent.ts';
import { createLogger } from '../../../../shared/log.ts';
import type { EdgeStatus } from '../../../../shared/sync.ts';
import { edgeCommandTopic, edgeReplyTopic, edgeStatusTopic } from '../../../../shared/topics.ts';
import { startBroker, type BrokerKind, type TestBroker } from './brokers.ts';
import { FakeHub } from './fake-hub.ts';
import { until } from '../../../helpers/polling.ts';

const log = createLogger('sync-test', { level: (process.env.TEST_LOG as 'debug' | undefined) ?? 'silent' });

interface Ctx {
  broker: TestBroker;
  hub: FakeHub;
  dirs: string[];
  agents: { agent: SyncAgent; state: EdgeState }[];
  clients: MqttClient[];
  children: ChildProcess[];
}

let n = 0;

export function defineSyncTests(kind: BrokerKind): void {
  const test = suite<Ctx>(`sync against ${kind}`, { dirs: [], agents: [], clients: [], children: [] } as unknown as Ctx);

  test.before.each(async (ctx) => {
    ctx.broker = await startBroker(kind);
    ctx.hub = new FakeHub({ brokerUrl: ctx.broker.url, edgeId: `edge-${kind}-${++n}` });
    await ctx.hub.start();
    ctx.dirs = [];
    ctx.agents = [];
    ctx.clients = [];
    ctx.children = [];
  });

  test.after.each(async (ctx) => {
    for (const c of ctx.children) c.kill('SIGKILL');
    for (const { agent, state } of ctx.agents) {
      await agent.stop();
      await state.close();
    }
    for (const c of ctx.clients) await c.endAsync(true);
    await ctx.hub.stop();
    await ctx.broker.stop();
    for (const d of ctx.dirs) rmSync(d, { recursive: true, force: true });
  });

  const newDir = (ctx: Ctx) => {
    const d = mkdtempSync(join(tmpdir(), 'sync-'));
    ctx.dirs.push(d);
    return d;
  };

  async function agentOn(ctx: Ctx, dir = newDir(ctx), extra: Partial<ConstructorParameters<typeof SyncAgent>[0]> = {}) {
    const cache = new EdgeCache();
    const state = new EdgeState({ dir, log, compactEveryEntries: 20 });
    await state.open(cache);
    const agent = new SyncAgent({ hubUrl: ctx.hub.url, brokerUrl: ctx.broker.url, state, cache, version: '0.1.0-test', log, backoff: { minMs: 100, maxMs: 400 }, keepaliveS: 5, ...extra });
    const seen: { [K in keyof SyncEvents]?: SyncEvents[K][] } = {};
    for (const ev of ['applied', 'purged', 'snapshot', 'connected', 'disconnected', 'dropped', 'health'] as const) {
      agent.events.on(ev, (p) => {
        seen[ev] ??= [] as never[];
        seen[ev].push(p as never);
      });
    }
    ctx.agents.push({ agent, state });
    await agent.start();
    return { agent, state, cache, dir, seen };
  }

  async function subscriber(ctx: Ctx, topic: string) {
    const c = mqtt.connect(ctx.broker.url, { clientId: `watch-${++n}`, protocolVersion: 4, clean: true, reconnectPeriod: 200 });
    c.on('error', () => undefined);
    ctx.clients.push(c);
    const got: { topic: string; body: any; retain: boolean }[] = [];
    c.on('message', (t, p, packet) => got.push({ topic: t, body: p.length ? JSON.parse(p.toString()) : null, retain: packet.retain }));
    await new Promise<void>((r) => c.once('connect', () => r()));
    await c.subscribeAsync(topic, { qos: 1 });
    return { client: c, got };
  }

  const same = (cache: EdgeCache, hub: FakeHub) => {
    const a = new Map(cache.index.entries());
    const b = hub.model();
    return a.size === b.size && [...b].every(([k, v]) => a.get(k) === v);
  };

  test('takes a snapshot at first start, then applies live deltas in order and purges at once', async (ctx) => {
    const { hub } = ctx;
    for (let i = 0; i < 50; i++) hub.link(`AAAA${String(i).padStart(4, '2')}`, `LIB-${i}`);
    const { agent, cache, seen } = await agentOn(ctx);
    await until(() => cache.synced && cache.appliedSeq === 50, { what: 'snapshot' });
    assert.is(hub.requests.snapshot, 1);
    assert.ok(same(cache, hub));
    await until(() => agent.connected, { what: 'connected' });
    hub.link('BBBB2222', 'LIB-900');
    hub.unlink('AAAA2223', 'suspend');
    hub.link('AAAA2224', 'LIB-924'); // relink: replaced
    await until(() => seen.applied?.at(-1)?.seq === 53, { what: 'live deltas' });
    assert.is(cache.lookupMyKey('BBBB2222'), 'LIB-900');
    assert.is(cache.lookupMyKey('AAAA2223'), undefined, 'suspended: purged');
    assert.is(cache.lookupMyKey('AAAA2224'), 'LIB-924');
    assert.equal(
      seen.applied!.map((a) => a.seq),
      [51, 52, 53],
    );
    assert.equal(
      seen.purged!.map((p) => [p.seq, p.kind, p.keys]),
      [[52, 'suspend', 1]],
    );
    assert.ok(same(cache, hub));
    assert.is(agent.health(), 'ok');
  });

  test('ignores duplicates and replays', async (ctx) => {
    const { hub } = ctx;
    const { agent, cache } = await agentOn(ctx);
    await until(() => agent.connected && cache.synced, { what: 'connected' });
    await agent.catchUp(); // let the catch-ups of start and connect finish first
    const e1 = hub.link('CCCC2222', 'P-1');
    const e2 = hub.unlink('CCCC2222');
    await until(() => cache.appliedSeq === 2, { what: 'applied' });
    await hub.republish(e1); // would re-link a purged id if replays counted
    await hub.republish(e2);
    await hub.republish(e1);
    await hub.flush();
    await until(() => agent.stats().duplicates >= 3, { what: 'duplicates seen' });
    assert.is(cache.lookupMyKey('CCCC2222'), undefined);
    assert.is(cache.appliedSeq, 2);
  });

  test('catches up through /changes when it sees a gap', async (ctx) => {
    const { hub } = ctx;
    const { agent, cache, seen } = await agentOn(ctx);
    await until(() => agent.connected && cache.synced, { what: 'connected' });
    await agent.catchUp(); // let the catch-ups of start and connect finish first
    const changesBefore = hub.requests.changes;
    hub.publish = false;
    hub.link('DDDD2222', 'G-1');
    hub.link('DDDD2223', 'G-2');
    hub.publish = true;
    hub.link('DDDD2224', 'G-3');
    await until(() => seen.applied?.at(-1)?.seq === 3, { what: 'caught up' });
    assert.ok(agent.stats().gaps >= 1);
    assert.ok(hub.requests.changes > changesBefore);
    assert.is(hub.requests.snapshot, 1, 'no snapshot needed');
    assert.ok(same(cache, hub));
  });

  test('falls back to a snapshot when the hub no longer has the missing entries', async (ctx) => {
    const { hub } = ctx;
    const { agent, cache } = await agentOn(ctx);
    await until(() => agent.connected && cache.synced, { what: 'connected' });
    await agent.catchUp(); // let the catch-ups of start and connect finish first
    hub.publish = false;
    for (let i = 0; i < 10; i++) hub.link(`EEEE${String(i).padStart(4, '2')}`, `S-${i}`);
    hub.unlink('EEEE2223');
    hub.prunedThrough = 8;
    hub.publish = true;
    hub.link('EEEE9999', 'S-last');
    await until(() => cache.appliedSeq === 12, { what: 'caught up' });
    assert.is(hub.requests.snapshot, 2);
    assert.ok(same(cache, hub));
  });

  test('catches up after being offline while links changed, from its own state', async (ctx) => {
    const { hub } = ctx;
    for (let i = 0; i < 30; i++) hub.link(`FFFF${String(i).padStart(4, '2')}`, `O-${i}`);
    const first = await agentOn(ctx);
    await until(() => first.agent.connected && first.cache.appliedSeq === 30, { what: 'synced' });
    await first.agent.stop();
    await first.state.close();
    ctx.agents = [];
    // Offline: links change (some published to the broker, which may hold them for the session).
    hub.unlink('FFFF2222');
    hub.unlink('FFFF2223', 'suspend');
    hub.link('FFFF2224', 'O-new');
    hub.link('GGGG2222', 'O-extra');
    const second = await agentOn(ctx, first.dir);
    await until(() => second.cache.appliedSeq === 34, { what: 'caught up' });
    assert.is(hub.requests.snapshot, 1, 'restarted from its checkpoint and journal, no second snapshot');
    assert.ok(same(second.cache, hub));
    assert.is(second.cache.lookupMyKey('FFFF2223'), undefined);
    await until(() => second.agent.connected, { what: 'stays consistent' });
    await new Promise((r) => setTimeout(r, 300)); // queued session messages, if any, are duplicates
    assert.is(second.cache.appliedSeq, 34);
    assert.ok(same(second.cache, hub));
  });

  test('loses no change and applies none twice when the broker restarts mid-stream', async (ctx) => {
    const { hub, broker } = ctx;
    const { agent, cache, seen } = await agentOn(ctx);
    await until(() => agent.connected && cache.synced, { what: 'connected' });
    await agent.catchUp(); // let the catch-ups of start and connect finish first
    const total = 120;
    for (let i = 0; i < total; i++) {
      if (i % 4 === 3) hub.unlink(`HHHH${String(i - 1).padStart(4, '2')}`);
      else hub.link(`HHHH${String(i).padStart(4, '2')}`, `B-${i}`);
      if (i === 50) void broker.restart(300);
      await new Promise((r) => setTimeout(r, 5));
    }
    // Entries are announced once durable, just after the cache has them.
    await until(() => seen.applied?.at(-1)?.seq === total, { what: 'all applied' });
    const seqs = seen.applied!.map((a) => a.seq);
    assert.equal(
      seqs,
      Array.from({ length: total }, (_, i) => i + 1),
      'each seq applied exactly once, in order',
    );
    assert.ok(same(cache, hub));
    await until(() => agent.connected, { what: 'reconnected' });
    assert.ok(agent.stats().connects >= 2);
  });

  test('drops malformed and oversized payloads and bad commands without stopping', async (ctx) => {
    const { hub } = ctx;
    const { agent, cache, seen } = await agentOn(ctx);
    await until(() => agent.connected && cache.synced, { what: 'connected' });
    await agent.catchUp(); // let the catch-ups of start and connect finish first
    const bad: (string | Buffer)[] = [
      'not json',
      '{}',
      '[]',
      'null',
      JSON.stringify({ seq: 1, kind: 'link', at: '2026-01-01T00:00:00Z', remove: ['short'] }),
      JSON.stringify({ seq: 1, kind: 'explode', at: '2026-01-01T00:00:00Z', remove: [] }),
      JSON.stringify({ seq: 1, kind: 'link', at: 'yesterday', remove: [] }),
      JSON.stringify({ seq: 1, kind: 'link', at: '2026-01-01T00:00:00Z', remove: [], set: { keys: [hub.key('JJJJ2222')], serviceUserId: 'has space' } }),
      JSON.stringify({ seq: 1, kind: 'link', at: '2026-01-01T00:00:00Z', remove: [], extra: true }),
      Buffer.alloc(70 * 1024, 0x20),
      Buffer.from([0xff, 0xfe, 0x00]),
    ];
    for (const p of bad) await hub.raw(p);
    await hub.raw('{"command":"explode","transaction":"t1"}', edgeCommandTopic(hub.edgeId));
    await hub.raw('{"command":"ping"}', edgeCommandTopic(hub.edgeId)); // no transaction: not the schema
    await until(() => (seen.dropped?.length ?? 0) === bad.length + 2, { what: 'all dropped' });
    assert.equal([...new Set(seen.dropped!.map((d) => d.code))].sort(), ['payload_too_large', 'validation_failed']);
    hub.link('JJJJ2222', 'OK-1');
    await until(() => cache.lookupMyKey('JJJJ2222') === 'OK-1', { what: 'still applies good ones' });
    assert.is(cache.appliedSeq, 1);
  });

  test('answers ping and resync commands on the reply topic, echoing the transaction', async (ctx) => {
    const { hub } = ctx;
    hub.link('KKKK2222', 'C-1');
    const { agent, cache } = await agentOn(ctx);
    await until(() => agent.connected && cache.synced, { what: 'connected' });
    await agent.catchUp(); // let the catch-ups of start and connect finish first
    const replies = await subscriber(ctx, edgeReplyTopic(hub.edgeId));
    await hub.raw(JSON.stringify({ transaction: 'tx-ping', command: 'ping' }), edgeCommandTopic(hub.edgeId));
    await hub.raw(JSON.stringify({ transaction: 'tx-resync', command: 'resync' }), edgeCommandTopic(hub.edgeId));
    await until(() => replies.got.length === 2, { what: 'two replies' });
    const ping = replies.got.find((r) => r.body.transaction === 'tx-ping')!.body;
    assert.equal(ping, { transaction: 'tx-ping', ok: true, data: { appliedSeq: 1, health: 'ok', version: '0.1.0-test' } });
    const resync = replies.got.find((r) => r.body.transaction === 'tx-resync')!.body;
    assert.equal(resync, { transaction: 'tx-resync', ok: true, data: { appliedSeq: 1, mappings: 1 } });
    assert.is(hub.requests.snapshot, 2);
  });

  test('keeps a retained status that a late subscriber sees, and clears it on a clean stop', async (ctx) => {
    const { hub } = ctx;
    hub.link('LLLL2222', 'R-1');
    const { agent, cache, state } = await agentOn(ctx);
    await until(() => agent.connected && cache.synced, { what: 'connected' });
    await agent.catchUp(); // let the catch-ups of start and connect finish first
    await until(
      async () => {
        const w = await subscriber(ctx, edgeStatusTopic(hub.edgeId));
        await new Promise((r) => setTimeout(r, 100));
        const s = w.got.at(-1);
        return !!s && s.retain && s.body.appliedSeq === 1 && s.body.online === true;
      },
      { what: 'status with seq' },
    );
    const w = await subscriber(ctx, edgeStatusTopic(hub.edgeId));
    await until(() => w.got.length >= 1, { what: 'retained' });
    const st = w.got[0].body as EdgeStatus;
    assert.is(st.edgeId, hub.edgeId);
    assert.is(st.serviceId, 'library');
    assert.is(st.health, 'ok');
    assert.is(st.version, '0.1.0-test');
    assert.equal(st.counters, { touches: 0, handoffs: 0, notLinked: 0, refused: 0, errors: 0 });
    await agent.stop();
    await state.close();
    ctx.agents = [];
    await until(() => w.got.some((g) => g.body.online === false), { what: 'offline status' });
  });

  test('its will says offline when the agent is killed, and a restarted agent resumes consistent', async (ctx) => {
    const { hub, broker } = ctx;
    for (let i = 0; i < 20; i++) hub.link(`MMMM${String(i).padStart(4, '2')}`, `K-${i}`);
    const dir = newDir(ctx);
    const child = fileURLToPath(new URL('./agent-child.ts', import.meta.url));
    const run = () => {
      const p = spawn(process.execPath, ['--import', 'tsx', child, dir, hub.url, broker.url], { stdio: ['ignore', 'pipe', 'pipe'] });
      ctx.children.push(p);
      const lines: any[] = [];
      let buf = '';
      let err = '';
      p.stdout!.on('data', (d) => {
        buf += d;
        let i: number;
        // biome-ignore lint/suspicious/noAssignInExpressions: the usual split-into-lines loop; the assignment is its condition
        while ((i = buf.indexOf('\n')) >= 0) {
          lines.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
        }
      });
      p.stderr!.on('data', (d) => (err += d));
      return { p, lines, err: () => err };
    };
    const status = await subscriber(ctx, edgeStatusTopic(hub.edgeId));
    const a = run();
    await until(() => status.got.some((g) => g.body.online && g.body.appliedSeq === 20), { what: 'first agent synced and online' });
    // Stream changes and kill the agent in the middle of them.
    for (let i = 0; i < 40; i++) {
      if (i % 3 === 2) hub.unlink(`MMMM${String(i).padStart(4, '2')}`);
      else hub.link(`NNNN${String(i).padStart(4, '2')}`, `K2-${i}`);
      if (i === 15) a.p.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 10));
    }
    await until(() => status.got.some((g) => g.body.online === false), { what: 'will published' });
    const will = status.got.find((g) => g.body.online === false)!.body as EdgeStatus;
    assert.is(will.edgeId, hub.edgeId);
    const b = run();
    await until(() => status.got.some((g) => g.body.online && g.body.appliedSeq === hub.headSeq), { what: 'second agent caught up' });
    const opened = b.lines.find((l) => l.event === 'opened');
    assert.is(opened.checkpoint, 'ok', `restarted from its own state: ${b.err()}`);
    b.p.kill('SIGTERM');
    await until(() => b.lines.some((l) => l.event === 'stopped'), { what: 'stopped' });
    const applied = b.lines.filter((l) => l.event === 'applied').map((l) => l.seq);
    assert.equal(
      applied,
      [...applied].sort((x, y) => x - y),
      'in order',
    );
    assert.is(new Set(applied).size, applied.length, 'none twice');
    // What it left on disk is exactly the hub's state.
    const cache = new EdgeCache();
    const state = new EdgeState({ dir, log });
    await state.open(cache);
    await state.close();
    assert.is(cache.appliedSeq, hub.headSeq);
    assert.ok(same(cache, hub));
  });

  test.run();
}
