// The agent's health, events and lifecycle, against aedes and the fake hub.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeCache } from '../../../edge/cache/edge-cache.ts';
import { EdgeState } from '../../../edge/state/edge-state.ts';
import { SyncAgent, type SyncAgentOptions } from '../../../edge/sync/sync-agent.ts';
import { createLogger } from '../../../shared/log.ts';
import { edgeCommandTopic, edgeStatusTopic } from '../../../shared/topics.ts';
import { startBroker, type TestBroker } from './helpers/brokers.ts';
import { FakeHub } from './helpers/fake-hub.ts';
import { until } from '../../helpers/polling.ts';

interface Ctx {
  broker: TestBroker;
  hub: FakeHub;
  dir: string;
  lines: string[];
  stops: (() => Promise<void>)[];
}
const test = suite<Ctx>('sync agent health and lifecycle', {} as Ctx);

test.before.each(async (ctx) => {
  ctx.broker = await startBroker('aedes');
  ctx.hub = new FakeHub({ brokerUrl: ctx.broker.url });
  await ctx.hub.start();
  ctx.dir = mkdtempSync(join(tmpdir(), 'sync-health-'));
  ctx.lines = [];
  ctx.stops = [];
});

test.after.each(async (ctx) => {
  for (const s of ctx.stops) await s();
  await ctx.hub.stop();
  await ctx.broker.stop();
  rmSync(ctx.dir, { recursive: true, force: true });
});

async function agentOn(ctx: Ctx, extra: Partial<SyncAgentOptions> = {}) {
  const log = createLogger('t', { level: 'info', write: (l) => ctx.lines.push(l) });
  const cache = new EdgeCache();
  const state = new EdgeState({ dir: ctx.dir, log });
  await state.open(cache);
  const agent = new SyncAgent({ hubUrl: ctx.hub.url, brokerUrl: ctx.broker.url, state, cache, version: 't', log, backoff: { minMs: 50, maxMs: 200 }, healthIntervalMs: 30, ...extra });
  ctx.stops.push(async () => {
    await agent.stop();
    await state.close();
  });
  return { agent, cache, state };
}

test('goes stale when out of touch longer than allowed, and back to ok on contact', async (ctx) => {
  const { agent, cache } = await agentOn(ctx, { maxStalenessMs: 300 });
  const healths: string[] = [];
  let stale = 0;
  agent.events.on('health', (h) => void healths.push(h.health));
  agent.events.on('stale', () => void stale++);
  await agent.start();
  await until(() => agent.health() === 'ok' && cache.synced, { what: 'ok' });
  ctx.hub.down = true;
  await ctx.broker.stop();
  await until(() => agent.health() === 'stale', { what: 'stale' });
  assert.is(stale, 1);
  assert.ok(agent.contact().ageMs! > 300);
  ctx.hub.down = false;
  await ctx.broker.restart(0);
  await until(() => agent.health() === 'ok', { what: 'ok again' });
  // (possibly through `degraded` while the failed catch-up is retried)
  assert.is(healths.at(-1), 'ok');
  assert.ok(healths.lastIndexOf('stale') >= 0 && healths.lastIndexOf('stale') < healths.length - 1);
});

test('says clock_unsure when the clock reads before the build date, or far from the hub Date', async (ctx) => {
  const a = await agentOn(ctx, { notBeforeMs: Date.now() + 365 * 86_400_000 });
  await a.agent.start();
  await until(() => a.agent.health() === 'clock_unsure' && a.cache.synced, { what: 'clock_unsure' });
  assert.is(a.agent.status().health, 'clock_unsure');
  await ctx.stops.pop()!();

  ctx.hub.dateOffsetMs = 2 * 3_600_000;
  const b = await agentOn(ctx);
  await b.agent.start();
  await b.agent.catchUp();
  await until(() => b.agent.health() === 'clock_unsure', { what: 'clock_unsure (skew)' });
  assert.is(b.agent.contact().clockReason, 'hub_skew');
});

test('is degraded until it has a snapshot, and waits for the hub on a first start', async (ctx) => {
  ctx.hub.down = true;
  const { agent, cache } = await agentOn(ctx);
  await agent.start();
  await new Promise((r) => setTimeout(r, 300));
  assert.is(cache.synced, false);
  assert.ok(['degraded', 'stale'].includes(agent.health()));
  assert.ok(ctx.lines.some((l) => l.includes('device config not available yet')));
  ctx.hub.link('PPPP2222', 'F-1');
  ctx.hub.down = false;
  await until(() => cache.synced && agent.health() === 'ok', { what: 'synced' });
  assert.is(cache.lookupMyKey('PPPP2222'), 'F-1');
});

test('logs a throwing listener and carries on', async (ctx) => {
  const { agent, cache } = await agentOn(ctx);
  let later = 0;
  agent.events.on('applied', () => {
    throw new Error('listener bug');
  });
  agent.events.on('applied', () => void later++);
  await agent.start();
  await until(() => agent.connected && cache.synced, { what: 'connected' });
  await agent.catchUp();
  ctx.hub.link('QQQQ2222', 'T-1');
  ctx.hub.link('QQQQ2223', 'T-2');
  await until(() => later === 2, { what: 'applied twice' });
  assert.is(cache.lookupMyKey('QQQQ2223'), 'T-2');
  assert.ok(ctx.lines.some((l) => l.includes("a 'applied' listener failed")));
});

test('wipes its state and stops when decommissioned', async (ctx) => {
  ctx.hub.link('RRRR2222', 'D-1');
  const { agent, cache, state } = await agentOn(ctx);
  let decommissioned = false;
  agent.events.on('decommissioned', () => void (decommissioned = true));
  await agent.start();
  await until(() => agent.connected && cache.synced && cache.size === 1, { what: 'connected' });
  await ctx.hub.raw(JSON.stringify({ transaction: 'tx-d', command: 'decommission' }), edgeCommandTopic(ctx.hub.edgeId));
  await until(() => decommissioned, { what: 'decommissioned' });
  assert.is(cache.size, 0);
  assert.is(state.identity(), undefined);
  assert.is(agent.connected, false);
  assert.not.ok(readdirSync(ctx.dir).includes('checkpoint.json'));
});

test('republishes its retained status periodically', async (ctx) => {
  const { agent, cache } = await agentOn(ctx, { statusIntervalMs: 100 });
  await agent.start();
  await until(() => agent.connected && cache.synced, { what: 'connected' });
  await agent.catchUp();
  const c = await mqtt.connectAsync(ctx.broker.url, { clientId: 'watcher', protocolVersion: 4 });
  const got: number[] = [];
  c.on('message', () => void got.push(Date.now()));
  await c.subscribeAsync(edgeStatusTopic(ctx.hub.edgeId), { qos: 1 });
  await until(() => got.length >= 4, { what: 'several statuses' });
  await c.endAsync(true);
});

test('rebuilds from a fresh snapshot when its checkpoint is corrupt', async (ctx) => {
  for (let i = 0; i < 5; i++) ctx.hub.link(`SSSS${i + 2}222`, `C-${i}`);
  const a = await agentOn(ctx);
  await a.agent.start();
  await until(() => a.cache.appliedSeq === 5, { what: 'synced' });
  await a.agent.catchUp();
  await ctx.stops.pop()!();
  const cp = join(ctx.dir, 'checkpoint.json');
  const buf = readFileSync(cp);
  buf[buf.length - 3] ^= 0x20;
  writeFileSync(cp, buf);
  ctx.hub.unlink('SSSS2222');
  const b = await agentOn(ctx);
  assert.is(b.cache.synced, false);
  assert.ok(ctx.lines.some((l) => l.includes('checkpoint is corrupt') && l.includes('rebuilt from a fresh snapshot')));
  await b.agent.start();
  await until(() => b.cache.synced && b.cache.appliedSeq === 6, { what: 'rebuilt' });
  assert.is(ctx.hub.requests.snapshot, 2);
  assert.is(b.cache.lookupMyKey('SSSS2222'), undefined);
  assert.is(b.cache.lookupMyKey('SSSS3222'), 'C-1');
});

test.run();
