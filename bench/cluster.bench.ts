// The broker cluster (issue #12): the hub publishing its change log to a three-node RabbitMQ 3.10
// cluster (MQTT plugin, TLS client-certificate login, the hub's HTTP auth backend, a quorum queue per
// edge session), as test/hub/broker-cluster/ starts it.
//
//   cluster_fanout_burst_10k_ms   a CRL run of 10,000 suspensions committed in one transaction (as the
//                                 CRL manager commits them) until every one of 1,000 edges has the last
//                                 entry, through the cluster; beside fanout_burst_10k_ms (aedes in the
//                                 hub, bench/fanout.bench.ts). The edges are the light edges of that
//                                 benchmark (bench/fanout-edges.ts: mqtt.js over TLS with their own device
//                                 certificates, clean=false, subscribed as a real edge), in three child
//                                 processes, each on its own node.
//   failover_converge_ms          issue #12's scenario, as test/hub/broker-cluster/failover.test.ts: two
//                                 hub replicas as child processes on one PostgreSQL database, both
//                                 publishing to the cluster, behind a load balancer; 100 edges running the
//                                 real edge sync code (edge/sync) with all three nodes' URLs; during a
//                                 burst of 2,000 suspensions (chunks of 100, written on the shared database)
//                                 the node the most edges and both replicas are on AND the replica holding
//                                 the outbox lock are killed with kill -9: from the kills until every edge
//                                 has applied the last entry (each exactly once and in order, or the
//                                 benchmark fails). Also printed: the takeover of the outbox lock.
//   failover_broker_converge_ms   the same with one hub in this process (SQLite) and only the broker node
//                                 killed (what failover_converge_ms measured before the replicas);
//                                 CLUSTER_PART=failover-broker only.
//
// Each part starts a cluster of its own (tens of seconds on a busy machine). CLUSTER_EDGES and
// CLUSTER_BIG_BURST make a smaller run (other metric names then); CLUSTER_PART=burst or failover
// runs one part; CLUSTER_PART=classic runs the burst with the sessions on classic queues (one copy of
// a message per node instead of one per queue and replica, but a session dies with its node);
// CLUSTER_PART=failover-broker runs the broker-only fail-over. Without PostgreSQL 15 the (replica)
// fail-over part fails with a message.
//
//   npx tsx bench/run.ts cluster
//   CLUSTER_EDGES=300 npx tsx bench/cluster.bench.ts       (a quicker look)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createDeviceCsr } from '../hub/pki/device-ca.ts';
import { havePostgres } from '../test/helpers/pg.ts';
import { appliedProblem, linkMany, markOf, quorumSettled, startFleet, startHubs, suspendInChunks, type Fleet, type FleetEdge, type Mark } from '../test/hub/broker-cluster/helpers/failover-harness.ts';
import { rabbitAvailable } from '../test/hub/broker-cluster/helpers/rabbit-cluster.ts';
import { startReplicaHubs } from '../test/hub/broker-cluster/helpers/replica-hubs.ts';
import { benchMain, progress, round, type Metrics } from './lib.ts';

const EDGES = Number(process.env.CLUSTER_EDGES ?? 1000);
const BIG_BURST = Number(process.env.CLUSTER_BIG_BURST ?? 10_000);
const FLEET = Number(process.env.CLUSTER_FLEET ?? 100);
const BURST = Number(process.env.CLUSTER_BURST ?? 2000);
const CHILDREN = 3;
const SERVICE = 'library';
const here = fileURLToPath(new URL('.', import.meta.url));
const wall = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type ChildMsg =
  | { type: 'ready'; connected: number; expected: number; ms: number }
  | { type: 'got'; seq: number; max: number; min: number; count: number }
  | { type: 'disconnected' }
  | { type: 'error'; error: string };

/** A child of light edges (bench/fanout-edges.ts) under a raised descriptor limit. */
function startEdgesChild(): ChildProcess {
  const raise = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"';
  return spawn('sh', ['-c', raise, process.execPath, '--import', 'tsx', join(here, 'fanout-edges.ts')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

/** One message of a given type from a child. */
function next(c: ChildProcess, type: string, ms: number): Promise<ChildMsg> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => (c.off('message', on), reject(new Error(`no ${type} from an edge child in ${ms} ms`))), ms);
    const on = (m: ChildMsg) => {
      if (m.type === 'error') return (clearTimeout(t), c.off('message', on), reject(new Error(`edge child: ${m.error}`)));
      if (m.type !== type) return;
      clearTimeout(t);
      c.off('message', on);
      resolve(m);
    };
    c.on('message', on);
  });
}

async function burstThroughCluster(queueType: 'quorum' | 'classic' = 'quorum'): Promise<Metrics> {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-cluster-bench-'));
  const setup = await startHubs({ count: 1, sessionQueueType: queueType });
  const children: ChildProcess[] = [];
  try {
    const h = setup.hubs[0]!;
    const c = setup.cluster;
    progress(`cluster up in ${c.startMs} ms`);
    await h.hub.links.createService({ id: SERVICE, name: 'Town library', requireHolderProof: false });
    let t = performance.now();
    const ids = await linkMany(h, SERVICE, BIG_BURST);
    progress(`${BIG_BURST} links in ${Math.round(performance.now() - t)} ms`);
    t = performance.now();
    const creds: Array<{ edgeId: string; serviceId: string; certPem: string; keyPem: string }> = [];
    for (let i = 0; i < EDGES; i++) {
      const edgeId = `edge-${String(i).padStart(4, '0')}`;
      const csr = await createDeviceCsr(edgeId);
      const r = await h.hub.enrollment!.enroll(csr.csrDer, { edgeId, serviceId: SERVICE, validityDays: 2 });
      if (!r.ok) throw new Error(r.message);
      creds.push({ edgeId, serviceId: SERVICE, certPem: r.value.certPem, keyPem: csr.keyPem });
    }
    progress(`${EDGES} edges enrolled in ${Math.round(performance.now() - t)} ms`);
    const credsFile = join(dir, 'edges.json');
    writeFileSync(credsFile, JSON.stringify(creds), { mode: 0o600 });
    // The entries of the links went out before any edge had a session: the outbox is empty.
    const outboxRows = () => (h.hub.db.prepare('SELECT COUNT(*) AS n FROM mqtt_outbox').get() as { n: number }).n;
    for (let end = Date.now() + 60_000; outboxRows() > 0 && Date.now() < end; ) await sleep(100);
    for (let i = 0; i < CHILDREN; i++) children.push(startEdgesChild());
    const per = Math.ceil(EDGES / CHILDREN);
    t = performance.now();
    const readies = children.map((ch) => next(ch, 'ready', 600_000));
    // Child i's edges on node i: the cluster holds a third of the sessions on each node.
    children.forEach(
      (ch, i) =>
        void ch.send({ type: 'connect', target: 'rabbit', port: c.nodes[i]!.mqtts, caPem: setup.deviceCa.certPem, credsFile, from: i * per, to: Math.min(EDGES, (i + 1) * per), service: SERVICE }),
    );
    const rs = (await Promise.all(readies)) as Array<Extract<ChildMsg, { type: 'ready' }>>;
    const connected = rs.reduce((s, r) => s + r.connected, 0);
    progress(`${connected} edges connected through the cluster in ${Math.round(performance.now() - t)} ms; node memory (MiB) ${c.memoryMiB().join(', ')}`);
    if (connected !== EDGES) throw new Error(`only ${connected} of ${EDGES} edges connected`);
    await sleep(1000);
    const before = await h.hub.links.headSeq(SERVICE);
    const head = before + BIG_BURST;
    const gots = children.map(
      (ch) =>
        new Promise<Extract<ChildMsg, { type: 'got' }>>((resolve) => {
          const on = (m: ChildMsg) => {
            if (m.type === 'got' && m.seq === head) ch.off('message', on), resolve(m);
          };
          ch.on('message', on);
        }),
    );
    const out0 = h.hub.outbox.stats();
    const t0 = wall();
    const seq = await suspendInChunks(h, SERVICE, ids, BIG_BURST);
    const commitMs = wall() - t0;
    if (seq !== head) throw new Error(`head ${seq}, expected ${head}`);
    // When the cluster had confirmed the last message to the hub (it waits for every edge's queue).
    const taken = (async () => {
      for (const end = Date.now() + 300_000; outboxRows() > 0 && Date.now() < end; ) await sleep(20);
      return outboxRows() > 0 ? NaN : wall() - t0;
    })();
    const got = await Promise.race([Promise.all(gots), sleep(300_000).then(() => undefined)]);
    if (!got) throw new Error(`not every edge had seq ${head} after 300 s`);
    const takenMs = await taken;
    const ms = Math.max(...got.map((g) => g.max)) - t0;
    const first = Math.min(...got.map((g) => g.min)) - t0;
    const out = h.hub.outbox.stats();
    progress(
      `a CRL run of ${BIG_BURST} suspensions reached all ${EDGES} edges through the cluster in ${Math.round(ms)} ms (commit ${Math.round(commitMs)} ms, the first edge had the last entry at ${Math.round(first)} ms, ` +
        `all confirmed to the hub at ${Math.round(takenMs)} ms; ${out.messages - out0.messages} messages for ${out.entries - out0.entries} entries, published with up to broker.external.outboxWindow (32) messages and outboxWindowKb (128 KiB) in flight per topic); node memory (MiB) ${c.memoryMiB().join(', ')}`,
    );
    if (queueType === 'classic') progress('(sessions on classic queues: one copy per node, but a session does not outlive its node)');
    const name = (queueType === 'classic' ? 'classic_' : '') + (EDGES === 1000 && BIG_BURST === 10_000 ? 'cluster_fanout_burst_10k_ms' : `cluster_fanout_${EDGES}_burst_${BIG_BURST}_ms`);
    return { [name]: { value: round(ms, 1), unit: 'ms' } };
  } finally {
    for (const ch of children) if (ch.exitCode === null) ch.kill('SIGKILL');
    await setup.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Fails the benchmark when an edge applied an entry twice, out of order, or skipped one. */
function checkApplied(edges: FleetEdge[], marks: Map<FleetEdge, Mark>, head: number): void {
  const problems = edges.map((e) => appliedProblem(e, marks.get(e)!, head)).filter(Boolean);
  if (problems.length) throw new Error(`${problems.length} edges applied wrongly: ${problems.slice(0, 3).join('; ')}`);
}

async function untilAtHead(edges: FleetEdge[], head: number): Promise<void> {
  for (let end = Date.now() + 300_000; !edges.every((e) => e.cache.appliedSeq === head && e.agent.connected); ) {
    if (Date.now() > end) throw new Error(`${edges.filter((e) => e.cache.appliedSeq !== head).length} edges not at the head 300 s after the burst`);
    await sleep(20);
  }
}

/** Issue #12: a broker node and the hub replica publishing the outbox killed during the burst. */
async function failover(): Promise<Metrics> {
  if (!havePostgres) throw new Error("PostgreSQL 15 is not installed (the hub replicas' store)");
  let ids: string[] = [];
  const setup = await startReplicaHubs({
    count: 2,
    startTimeoutMs: 600_000,
    whileStarting: async (side) => {
      await side.links.createService({ id: SERVICE, name: 'Town library', requireHolderProof: false });
      ids = await linkMany(side, SERVICE, BURST);
    },
  });
  let fleet: Fleet | undefined;
  try {
    const { side, cluster: c, replicas } = setup;
    progress(`cluster up in ${c.startMs} ms; two hub replicas on PostgreSQL`);
    for (let end = Date.now() + 120_000; !setup.publisher(); ) {
      if (Date.now() > end) throw new Error('no replica took the outbox lock');
      await sleep(50);
    }
    const t = performance.now();
    fleet = await startFleet(side, setup.deviceCa, { count: FLEET, serviceId: SERVICE, urlsFor: (i) => [0, 1, 2].map((k) => c.mqttsUrl((i + k) % 3)), timeoutMs: 600_000 });
    progress(`${FLEET} edges (edge/sync) synced and connected in ${Math.round(performance.now() - t)} ms`);
    const edges = fleet.edges;
    const before = await side.links.headSeq(SERVICE);
    for (let end = Date.now() + 120_000; !edges.every((e) => e.cache.appliedSeq === before); ) {
      if (Date.now() > end) throw new Error('edges not at the head before the burst');
      await sleep(50);
    }
    const marks = new Map(edges.map((e) => [e, markOf(e)]));
    await quorumSettled(c, setup.plan.admin, FLEET, { timeoutMs: 300_000 });
    const holder = setup.publisher()!;
    const survivor = replicas.find((r) => r !== holder)!;
    let killedAt = 0;
    const head = await suspendInChunks(side, SERVICE, ids, 100, async (k) => {
      if (k === Math.floor(BURST / 100 / 4) - 1) {
        // Once the publisher has handed some of the burst to the cluster, as the test does.
        for (let end = Date.now() + 120_000; !edges.some((e) => e.cache.appliedSeq > before); ) {
          if (Date.now() > end) throw new Error('no entry of the burst reached an edge');
          await sleep(10);
        }
        c.kill(0);
        holder.kill();
        killedAt = wall();
      }
      await sleep(20);
    });
    const committedAt = wall();
    await untilAtHead(edges, head);
    const ms = wall() - killedAt;
    const afterCommit = wall() - committedAt;
    await sleep(500);
    checkApplied(edges, marks, head);
    const takeover = survivor.publishingAt !== undefined ? `${Math.round(survivor.publishingAt - killedAt)} ms` : 'not yet';
    const stats = edges.map((e) => e.agent.stats());
    progress(
      `node 1 and ${holder.name} (the outbox publisher) killed during ${BURST} suspensions: ${survivor.name} took the outbox over after ${takeover}; all ${FLEET} edges at the head ${Math.round(ms)} ms after the kills (${Math.round(afterCommit)} ms after the burst's last commit); ` +
        `duplicates ignored ${stats.reduce((s, x) => s + x.duplicates, 0)}, gaps caught up ${stats.reduce((s, x) => s + x.gaps, 0)}`,
    );
    const name = FLEET === 100 && BURST === 2000 ? 'failover_converge_ms' : `failover_${FLEET}_edges_${BURST}_converge_ms`;
    return { [name]: { value: round(ms, 1), unit: 'ms' } };
  } finally {
    await fleet?.stop();
    await setup.stop();
  }
}

/** Only a broker node killed, one hub in this process (what failover_converge_ms was before the replicas). */
async function failoverBrokerOnly(): Promise<Metrics> {
  const setup = await startHubs({ count: 1 });
  let fleet: Fleet | undefined;
  try {
    const h = setup.hubs[0]!;
    const c = setup.cluster;
    progress(`cluster up in ${c.startMs} ms`);
    await h.hub.links.createService({ id: SERVICE, name: 'Town library', requireHolderProof: false });
    const ids = await linkMany(h, SERVICE, BURST);
    const t = performance.now();
    fleet = await startFleet(h, setup.deviceCa, { count: FLEET, serviceId: SERVICE, urlsFor: (i) => [0, 1, 2].map((k) => c.mqttsUrl((i + k) % 3)), timeoutMs: 600_000 });
    progress(`${FLEET} edges (edge/sync) synced and connected in ${Math.round(performance.now() - t)} ms`);
    const edges = fleet.edges;
    const marks = new Map(edges.map((e) => [e, markOf(e)]));
    await quorumSettled(c, setup.plan.admin, FLEET, { timeoutMs: 300_000 });
    let killedAt = 0;
    const head = await suspendInChunks(h, SERVICE, ids, 100, async (k) => {
      if (k === Math.floor(BURST / 100 / 4) - 1) {
        c.kill(0);
        killedAt = wall();
      }
      await sleep(20);
    });
    await untilAtHead(edges, head);
    const ms = wall() - killedAt;
    await sleep(500);
    checkApplied(edges, marks, head);
    const stats = edges.map((e) => e.agent.stats());
    progress(
      `node 1 killed during ${BURST} suspensions: all ${FLEET} edges at the head ${Math.round(ms)} ms after the kill; duplicates ignored ${stats.reduce((s, x) => s + x.duplicates, 0)}, gaps caught up ${stats.reduce((s, x) => s + x.gaps, 0)}`,
    );
    const name = FLEET === 100 && BURST === 2000 ? 'failover_broker_converge_ms' : `failover_broker_${FLEET}_edges_${BURST}_converge_ms`;
    return { [name]: { value: round(ms, 1), unit: 'ms' } };
  } finally {
    await fleet?.stop();
    await setup.stop();
  }
}

benchMain(async () => {
  if (!rabbitAvailable) throw new Error('rabbitmq-server is not installed (/usr/lib/rabbitmq/bin/rabbitmq-server)');
  const which = process.env.CLUSTER_PART;
  // CLUSTER_PART=classic: the burst with sessions on classic queues instead (a comparison; not in the results).
  if (which === 'classic') return burstThroughCluster('classic');
  // CLUSTER_PART=failover-broker: the broker-only fail-over (one hub, no replica killed).
  if (which === 'failover-broker') return failoverBrokerOnly();
  return {
    ...(which === 'failover' ? {} : await burstThroughCluster()),
    ...(which === 'burst' ? {} : await failover()),
  };
});
