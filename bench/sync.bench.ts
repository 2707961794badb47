// Edge sync: a full snapshot of 100,000 mappings fetched over HTTP from a loopback server serving
// the hub's JSON, parsed, schema-checked, applied into the cache and checkpointed (lowdb, fsync),
// timed by the agent itself from request to durable checkpoint; and live deltas through a real
// broker (aedes, in this process) into the cache and the journal.
//
// Targets (issue 5): snapshot_100k_ms <= 2000.
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchMain, percentile, progress, round } from './lib.ts';
import { EdgeCache } from '../edge/cache/edge-cache.ts';
import { EdgeState } from '../edge/state/edge-state.ts';
import { SyncAgent } from '../edge/sync/sync-agent.ts';
import type { ChangeEntry, Snapshot } from '../shared/sync.ts';
import { serviceLogTopic } from '../shared/topics.ts';

const MAPPINGS = Number(process.env.SYNC_BENCH_MAPPINGS ?? 100_000);
const DELTAS = Number(process.env.SYNC_BENCH_DELTAS ?? 20_000);
const RUNS = 3;

function key(secret: Buffer, s: string): string {
  return createHmac('sha256', secret).update(s).digest().subarray(0, 16).toString('base64url');
}

benchMain(async () => {
  const secret = randomBytes(32);
  // The hub's snapshot body, built once (two keys per person: MyKey ID and certificate).
  const entries: [string, string][] = [];
  for (let i = 0; i < MAPPINGS; i++) entries.push([key(secret, `mykey:${i}`), `LIB-${String(i >> 1).padStart(8, '0')}`]);
  const snapshot: Snapshot = { serviceId: 'library', seq: 1000, generatedAt: new Date().toISOString(), entries };
  const snapshotBody = Buffer.from(JSON.stringify(snapshot));
  progress(`snapshot body: ${(snapshotBody.length / 1e6).toFixed(1)} MB, ${MAPPINGS} mappings`);
  const log: ChangeEntry[] = [];

  const http = createHttpServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (body: string | Buffer) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    };
    if (url.pathname === '/v1/device/config') return json(JSON.stringify({ edgeId: 'edge-bench', serviceId: 'library', syncSecret: secret.toString('base64url') }));
    if (url.pathname === '/v1/device/snapshot') return json(snapshotBody);
    if (url.pathname === '/v1/device/changes') {
      const after = Number(url.searchParams.get('after'));
      const from = Math.max(0, after - 1000);
      return json(JSON.stringify({ headSeq: 1000 + log.length, entries: log.slice(from, from + 1000) }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const hubUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  const aedes = await Aedes.createBroker();
  const broker = createNetServer(aedes.handle);
  await new Promise<void>((r) => broker.listen(0, '127.0.0.1', r));
  const brokerUrl = `mqtt://127.0.0.1:${(broker.address() as AddressInfo).port}`;

  // Snapshot runs: each a fresh state directory, so each is a first start.
  const snapMs: number[] = [];
  const wallMs: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const dir = mkdtempSync(join(tmpdir(), 'sync-bench-'));
    const cache = new EdgeCache();
    const state = new EdgeState({ dir });
    await state.open(cache);
    const agent = new SyncAgent({ hubUrl, brokerUrl, state, cache, version: 'bench' });
    const done = new Promise<number>((r) => agent.events.once('snapshot', (e) => r(e.ms)));
    const t0 = performance.now();
    await agent.start();
    snapMs.push(await done);
    wallMs.push(performance.now() - t0);
    if (cache.size !== MAPPINGS) throw new Error(`cache has ${cache.size}`);
    await agent.stop();
    await state.close();
    rmSync(dir, { recursive: true, force: true });
    progress(`  snapshot run ${run + 1}: ${snapMs[run].toFixed(0)} ms (from start(): ${wallMs[run].toFixed(0)} ms)`);
  }

  // Live deltas through the broker: the agent applies and journals each before its PUBACK.
  const dir = mkdtempSync(join(tmpdir(), 'sync-bench-'));
  const cache = new EdgeCache();
  const state = new EdgeState({ dir });
  await state.open(cache);
  const agent = new SyncAgent({ hubUrl, brokerUrl, state, cache, version: 'bench' });
  await agent.start();
  await new Promise<void>((r) => {
    const t = setInterval(() => {
      if (agent.connected && cache.synced) {
        clearInterval(t);
        r();
      }
    }, 20);
  });
  await agent.catchUp();
  const pub = mqtt.connect(brokerUrl, { clientId: 'hub-bench', protocolVersion: 4 });
  await new Promise<void>((r) => pub.once('connect', () => r()));
  const last = 1000 + DELTAS;
  const applied = new Promise<void>((r) => agent.events.on('applied', (e) => void (e.seq === last && r())));
  const t0 = performance.now();
  for (let i = 1; i <= DELTAS; i++) {
    const k = entries[(i * 7919) % MAPPINGS][0];
    const e: ChangeEntry =
      i % 2
        ? { seq: 1000 + i, kind: 'unlink', at: new Date().toISOString(), remove: [k] }
        : { seq: 1000 + i, kind: 'link', at: new Date().toISOString(), remove: [k], set: { keys: [k], serviceUserId: `NEW-${i}` } };
    log.push(e);
    pub.publish(serviceLogTopic('library'), JSON.stringify(e), { qos: 1 });
  }
  await applied;
  const deltaMs = performance.now() - t0;
  const perS = DELTAS / (deltaMs / 1000);
  progress(`  ${DELTAS} deltas through aedes in ${deltaMs.toFixed(0)} ms: ${Math.round(perS)}/s (gaps ${agent.stats().gaps}, applied live ${agent.stats().applied})`);
  await pub.endAsync();
  await agent.stop();
  await state.close();
  rmSync(dir, { recursive: true, force: true });
  await new Promise((r) => broker.close(r));
  await new Promise<void>((r) => aedes.close(() => r()));
  await new Promise((r) => http.close(r));

  return {
    snapshot_100k_ms: { value: round(percentile(snapMs, 50), 0), unit: 'ms' },
    snapshot_100k_max_ms: { value: round(Math.max(...snapMs), 0), unit: 'ms' },
    snapshot_100k_from_start_ms: { value: round(percentile(wallMs, 50), 0), unit: 'ms' },
    mqtt_delta_apply_per_s: { value: Math.round(perS), unit: '1/s' },
  };
});
