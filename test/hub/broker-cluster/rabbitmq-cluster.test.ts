// The hub as the authority of a real three-node RabbitMQ 3.10 cluster (MQTT plugin, TLS client
// certificate login, rabbitmq_auth_backend_http calling the hub's broker auth listener): enrolled
// edges get their service's change log, strangers and foreign topics are refused by the hub's
// decision, a revoked device is cut off at once through the management API, and an edge with two
// broker URLs fails over when its node is killed with kill -9 without missing an entry. One cluster
// is shared by the whole file (it takes tens of seconds to start).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeCache } from '../../../edge/cache/edge-cache.ts';
import { EdgeState } from '../../../edge/state/edge-state.ts';
import { SyncAgent } from '../../../edge/sync/sync-agent.ts';
import { createDeviceCsr, openDeviceCa, type DeviceCa } from '../../../hub/pki/device-ca.ts';
import { createTestCa, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { createLogger, tapLogs } from '../../../shared/log.ts';
import { edgeStatusTopic, serviceLogTopic } from '../../../shared/topics.ts';
import { issue, startTestHub, type TestHub } from '../../helpers/hub.ts';
import { until } from '../../helpers/polling.ts';
import { freePort, planRabbitCluster, rabbitAvailable, startRabbitCluster, type RabbitCluster } from './helpers/rabbit-cluster.ts';
import { counterLink, enrollEdge } from '../../helpers/enrolled-edge.ts';
import { refusalOf } from '../broker/helpers/refusal.ts';

interface Creds {
  edgeId: string;
  serviceId: string;
  certPem: string;
  keyPem: string;
}
interface Ctx {
  h: TestHub;
  ca: TestCa;
  deviceCa: DeviceCa;
  cluster: RabbitCluster;
  edges: Record<string, Creds>;
  dir: string;
  /** Refusals the hub's broker auth backend logged: their codes, in order. */
  refusals: string[];
  clients: Set<MqttClient>;
}
const test = suite<Ctx>('the hub as the authority of a three-node RabbitMQ cluster', {} as Ctx);
// Without rabbitmq-server (CI installs it) the tests are reported as skipped, never as passed.
const it = (name: string, fn: (ctx: Ctx) => Promise<void>) => {
  if (rabbitAvailable) return test(name, fn);
  console.log(`skipped (rabbitmq-server is not installed): ${name}`);
  test.skip(name, fn);
};
const log = createLogger('cluster-test', { level: (process.env.TEST_LOG as 'info' | undefined) ?? 'silent' });

test.before(async (ctx) => {
  if (!rabbitAvailable) return;
  ctx.refusals = [];
  ctx.clients = new Set();
  tapLogs((r) => {
    if (!r.name.includes('broker-cluster') && !r.name.includes('outbox')) return;
    if (process.env.TEST_LOG) console.error('HUBLOG', r.line.slice(0, 300));
    const rec = JSON.parse(r.line) as { msg?: string; code?: string };
    if (rec.msg?.startsWith('broker refused') && rec.code) ctx.refusals.push(rec.code);
  });
  const plan = await planRabbitCluster(3);
  const authPort = await freePort();
  const hubPassword = randomBytes(16).toString('hex');
  const mqttUrl = (i: number) => `mqtt://127.0.0.1:${plan.nodes[i]!.mqtt}`;
  const mgmtUrl = (i: number) => `http://127.0.0.1:${plan.nodes[i]!.mgmt}`;
  ctx.ca = await createTestCa();
  ctx.h = await startTestHub({
    ca: ctx.ca,
    overrides: {
      broker: {
        port: 0,
        // The hub publishes through node 1 first, on loopback: the kill -9 below takes it down with
        // the edge's node, so both move to node 2.
        external: { urls: [mqttUrl(0), mqttUrl(1)], password: hubPassword, managementUrls: [mgmtUrl(2), mgmtUrl(1)], managementUser: plan.admin.user, managementPassword: plan.admin.pass },
      },
      brokerAuth: { port: authPort },
      devices: { httpsPort: 0 },
    },
  });
  // The hub opens this same device CA at start; the nodes need its certificates first.
  ctx.deviceCa = await openDeviceCa(join(ctx.h.dir, 'device-ca'));
  const server = await ctx.deviceCa.serverCredentials();
  ctx.cluster = await startRabbitCluster({ plan, caPem: ctx.deviceCa.certPem, certPem: server.certPem, keyPem: server.keyPem, authBaseUrl: `http://127.0.0.1:${authPort}` }).catch((e: unknown) => {
    // uvu reports a failing `before` as failed tests without the cause.
    console.error(e);
    throw e;
  });
  console.log(`three-node RabbitMQ cluster up in ${ctx.cluster.startMs} ms; resident memory per node (MiB): ${ctx.cluster.memoryMiB().join(', ')}`);
  await ctx.h.hub.start();
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library', requireHolderProof: false });
  await ctx.h.hub.links.createService({ id: 'points', name: 'Shopping street points', requireHolderProof: false });
  ctx.edges = {};
  for (const [edgeId, serviceId] of [
    ['lib-1', 'library'],
    ['lib-2', 'library'],
    ['lib-3', 'library'],
    ['pts-1', 'points'],
  ] as const) {
    const r = await enrollEdge(ctx.h.hub, edgeId, serviceId);
    ctx.edges[edgeId] = { edgeId, serviceId, certPem: r.certPem, keyPem: r.keyPem };
  }
  ctx.dir = mkdtempSync(join(tmpdir(), 'cluster-sync-'));
});

test.after(async (ctx) => {
  if (!rabbitAvailable) return;
  for (const c of ctx.clients ?? []) c.end(true);
  await ctx.h?.close();
  await ctx.cluster?.stop();
  if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
});

function options(ctx: Ctx, creds: Creds, node: number, over: Partial<IClientOptions> = {}): IClientOptions {
  return {
    protocol: 'mqtts',
    host: '127.0.0.1',
    port: ctx.cluster.nodes[node]!.mqtts,
    protocolVersion: 4,
    clientId: creds.edgeId,
    clean: false,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ca: ctx.deviceCa.certPem,
    cert: creds.certPem,
    key: creds.keyPem,
    rejectUnauthorized: true,
    ...over,
  };
}

async function connect(ctx: Ctx, creds: Creds, node: number, over: Partial<IClientOptions> = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(options(ctx, creds, node, over));
  ctx.clients.add(c);
  return c;
}

/** Connects and expects a refusal: the CONNACK return code, or that the connection closed first. */
function refusedConnect(ctx: Ctx, creds: Creds, node: number, over: Partial<IClientOptions> = {}): Promise<{ returnCode?: number; error: string }> {
  const c = mqtt.connect(options(ctx, creds, node, over));
  ctx.clients.add(c);
  return refusalOf(c);
}

async function linked(ctx: Ctx, serviceUserId: string): Promise<string> {
  const cert = await issue(ctx.ca);
  const reg = await ctx.h.request('/v1/mykey-ids', { proof: await ctx.h.proof(cert) });
  if (reg.status !== 201) throw new Error(`register: ${reg.status}`);
  const { mykeyId } = (await reg.json()) as { mykeyId: string };
  const s = await counterLink(ctx.h.hub, { ...ctx.edges['lib-1']!, caPem: ctx.deviceCa.certPem }, cert.certDer, serviceUserId);
  if (s !== 201) throw new Error(`link: ${s}`);
  return mykeyId;
}

const closed = (c: MqttClient) => new Promise<void>((r) => (c.disconnected || !c.connected ? r() : c.once('close', () => r())));

it('an enrolled edge connects to any node with its device certificate and gets its service’s change log', async (ctx) => {
  const e = ctx.edges['lib-1']!;
  const c = await connect(ctx, e, 1);
  const granted = await c.subscribeAsync(serviceLogTopic('library'), { qos: 1 });
  assert.is(granted[0]?.qos, 1);
  const got: string[] = [];
  c.on('message', (topic) => void got.push(topic));
  await until(() => ctx.h.hub.outbox !== undefined, { what: 'the hub publisher is up' });
  await linked(ctx, 'L-100');
  await until(() => got.length > 0, { what: 'a change-log entry through the cluster' });
  assert.is(got[0], serviceLogTopic('library'));
  // Its own status, as the edge publishes it, passes the hub's rules (the connection stays up).
  await c.publishAsync(edgeStatusTopic('lib-1'), JSON.stringify({ edgeId: 'lib-1', serviceId: 'library', online: true, appliedSeq: 0, version: '0.1.0', health: 'ok', at: new Date().toISOString() }), {
    qos: 1,
    retain: true,
  });
  assert.ok(c.connected);
  await c.endAsync();
});

it('a certificate of the device CA that the hub never enrolled is refused by the hub (device_unknown)', async (ctx) => {
  const csr = await createDeviceCsr('stranger-1');
  const r = await ctx.deviceCa.issueDeviceCertificate(csr.csrDer, { edgeId: 'stranger-1', serviceId: 'library', validityDays: 30 });
  if (!r.ok) throw new Error(r.message);
  const before = ctx.refusals.length;
  const res = await refusedConnect(ctx, { edgeId: 'stranger-1', serviceId: 'library', certPem: r.value.certPem, keyPem: csr.keyPem }, 0);
  assert.ok(res.returnCode === 4 || res.returnCode === 5, `CONNACK ${res.returnCode} ${res.error}`);
  assert.ok(ctx.refusals.slice(before).includes('device_unknown'), ctx.refusals.join());
});

it('a certificate of another CA never gets past TLS', async (ctx) => {
  const other = await openDeviceCa(join(ctx.dir, 'other-ca'));
  const csr = await createDeviceCsr('lib-1');
  const r = await other.issueDeviceCertificate(csr.csrDer, { edgeId: 'lib-1', serviceId: 'library', validityDays: 30 });
  if (!r.ok) throw new Error(r.message);
  const res = await refusedConnect(ctx, { edgeId: 'lib-1', serviceId: 'library', certPem: r.value.certPem, keyPem: csr.keyPem }, 0);
  assert.is(res.returnCode, undefined, res.error);
});

it('an edge using another edge’s client id is refused (device_id_mismatch) and the other keeps its session', async (ctx) => {
  const victim = await connect(ctx, ctx.edges['lib-3']!, 1, { clean: true });
  const before = ctx.refusals.length;
  const res = await refusedConnect(ctx, ctx.edges['pts-1']!, 2, { clientId: 'lib-3', clean: true });
  assert.ok(res.returnCode !== undefined && res.returnCode > 0, `CONNACK ${res.returnCode} ${res.error}`);
  assert.ok(ctx.refusals.slice(before).includes('device_id_mismatch'), ctx.refusals.join());
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(victim.connected, 'the victim was not taken over');
  await victim.endAsync();
});

it('a password login under an edge’s name on the plain listener is refused (no certificate, no entry)', async (ctx) => {
  for (const password of ['', 'guess']) {
    const before = ctx.refusals.length;
    const res = await refusedConnect(ctx, ctx.edges['lib-1']!, 0, { protocol: 'mqtt', port: ctx.cluster.nodes[0]!.mqtt, cert: undefined, key: undefined, username: 'lib-1', password, clean: true });
    assert.ok(res.returnCode === 4 || res.returnCode === 5, `CONNACK ${res.returnCode} ${res.error}`);
    assert.ok(ctx.refusals.slice(before).includes('unauthorized'), ctx.refusals.join());
  }
  // Without a password at all, RabbitMQ refuses before asking the hub.
  const res = await refusedConnect(ctx, ctx.edges['lib-1']!, 0, { protocol: 'mqtt', port: ctx.cluster.nodes[0]!.mqtt, cert: undefined, key: undefined, username: 'lib-1', clean: true });
  assert.ok(res.returnCode === 4 || res.returnCode === 5, `CONNACK ${res.returnCode} ${res.error}`);
});

// RabbitMQ 3.10 answers a refused SUBSCRIBE by closing the connection (aedes answers SUBACK 0x80);
// either way nothing of the other topic is delivered, and the decision is the hub's.
async function refusedSubscribe(ctx: Ctx, filter: string): Promise<void> {
  const c = await connect(ctx, ctx.edges['lib-3']!, 0, { clean: true });
  const got: string[] = [];
  c.on('message', (t) => void got.push(t));
  const gone = closed(c);
  const granted = await c.subscribeAsync(filter, { qos: 1 }).then(
    (g) => g[0]?.qos,
    () => 'closed' as const,
  );
  if (granted !== 'closed') {
    assert.is(granted, 128);
    await c.endAsync();
  } else await gone;
  assert.equal(got, []);
}

it('subscribing to another service’s change log, or with a wildcard, is refused by the hub (topic_forbidden)', async (ctx) => {
  const before = ctx.refusals.length;
  await refusedSubscribe(ctx, serviceLogTopic('points'));
  await refusedSubscribe(ctx, 'mykey/v1/svc/+/log');
  assert.ok(ctx.refusals.slice(before).filter((x) => x === 'topic_forbidden').length >= 2, ctx.refusals.join());
});

it('publishing on another edge’s status topic costs the connection (topic_forbidden)', async (ctx) => {
  const c = await connect(ctx, ctx.edges['lib-3']!, 2, { clean: true });
  const before = ctx.refusals.length;
  const gone = closed(c);
  c.publish(edgeStatusTopic('lib-2'), JSON.stringify({ edgeId: 'lib-2', serviceId: 'library', online: false, appliedSeq: 0, version: '0.1.0', health: 'ok', at: new Date().toISOString() }), {
    qos: 1,
  });
  await gone;
  assert.ok(ctx.refusals.slice(before).includes('topic_forbidden'), ctx.refusals.join());
});

it('a revoked device is cut off at once and refused afterwards (device_revoked)', async (ctx) => {
  const e = ctx.edges['lib-2']!;
  const c = await connect(ctx, e, 1);
  assert.is((await c.subscribeAsync(serviceLogTopic('library'), { qos: 1 }))[0]?.qos, 1);
  const gone = closed(c);
  const t0 = Date.now();
  const r = await ctx.h.hub.enrollment!.revoke('lib-2', 'stolen');
  assert.ok(r.ok);
  await Promise.race([gone, new Promise((_, rej) => setTimeout(() => rej(new Error('still connected 5 s after revocation')), 5000))]);
  console.log(`revoked device cut off in ${Date.now() - t0} ms`);
  const before = ctx.refusals.length;
  const again = await refusedConnect(ctx, e, 2);
  assert.ok(again.returnCode === 4 || again.returnCode === 5, `CONNACK ${again.returnCode} ${again.error}`);
  assert.ok(ctx.refusals.slice(before).includes('device_revoked'), ctx.refusals.join());
});

it('an edge and the hub with two broker URLs fail over when their node is killed with kill -9, and the edge misses no entry', async (ctx) => {
  const e = ctx.edges['lib-1']!;
  const cache = new EdgeCache();
  const state = new EdgeState({ dir: join(ctx.dir, 'edge'), log });
  await state.open(cache);
  const agent = new SyncAgent({
    hubUrl: ctx.h.hub.addresses.deviceApi!,
    brokerUrl: [ctx.cluster.mqttsUrl(0), ctx.cluster.mqttsUrl(1)],
    tls: { ca: ctx.deviceCa.certPem, cert: e.certPem, key: e.keyPem },
    state,
    cache,
    version: '0.1.0-cluster',
    log,
    backoff: { minMs: 100, maxMs: 500 },
    // The hub's status subscription is a clean session: what an edge said while the hub was moving
    // to another node is gone, and the periodic status (60 s by default) tells it again.
    statusIntervalMs: 500,
  });
  const ids: Array<[string, string]> = [];
  try {
    await agent.start();
    await until(() => cache.synced && agent.connected, { what: 'synced and connected' });
    ids.push([await linked(ctx, 'F-1'), 'F-1']);
    await until(() => cache.lookupMyKey(ids[0]![0]) === 'F-1', { what: 'live entry before the kill' });
    const connects = agent.stats().connects;
    ctx.cluster.kill(0);
    // Entries appended while the edge's node is dead and the edge is moving to the other one.
    for (const n of [2, 3, 4]) ids.push([await linked(ctx, `F-${n}`), `F-${n}`]);
    await until(() => agent.connected && agent.stats().connects > connects, { what: 'reconnected to the other node' });
    ids.push([await linked(ctx, 'F-5'), 'F-5']);
    await until(() => ids.every(([m, s]) => cache.lookupMyKey(m) === s), { what: 'every entry applied' });
    // The hub's publisher moved too: its outbox is empty, every entry was taken by a node.
    await until(() => (ctx.h.hub.db.prepare('SELECT COUNT(*) AS n FROM mqtt_outbox').get() as { n: number }).n === 0, { what: 'the hub outbox drained' });
    // The hub reads the edge's status from the cluster: online, with every entry applied.
    const head = await ctx.h.hub.links.headSeq('library');
    await until(async () => (await ctx.h.hub.devices.get('lib-1'))?.applied_seq === head && (await ctx.h.hub.devices.get('lib-1'))?.online === 1, { what: 'the hub has the status' });
  } finally {
    await agent.stop();
    await state.close();
  }
});

test.run();
