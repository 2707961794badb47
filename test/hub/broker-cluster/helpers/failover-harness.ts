// The fail-over harness (issue #12): a three-node RabbitMQ cluster, hubs publishing to it, and a fleet of edges running the real edge sync code (SyncAgent with
// its EdgeState and EdgeCache, edge/sync) with their own device certificates and every broker URL.
// Each edge records the seq of every entry it applied, in the order it applied them, and every
// snapshot, so a test can check that each entry was applied exactly once and in order.
//
// Hubs: `startHubs` runs one hub in this process (SQLite). Hub replicas that a test kills run as
// child processes on one PostgreSQL database (replica-hubs.ts); the change log is then written, and
// the edges enrolled, by this process on that database as a third party (`HubSide`), as another
// replica or the CLI would.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeCache } from '../../../../edge/cache/edge-cache.ts';
import { EdgeState } from '../../../../edge/state/edge-state.ts';
import { SyncAgent } from '../../../../edge/sync/sync-agent.ts';
import { createDeviceCsr, openDeviceCa, type DeviceCa } from '../../../../hub/pki/device-ca.ts';
import { createTestCa, type TestCa } from '../../../../provisioning/test-ca/ca.ts';
import { certIdentity } from '../../../../shared/cert-identity.ts';
import { randomMyKeyId } from '../../../../shared/ids.ts';
import { createLogger } from '../../../../shared/log.ts';
import { CURRENT_KEY_SCHEME } from '../../../../shared/sync.ts';
import type { DeviceEnrollment } from '../../../../hub/enrollment/device-enrollment.ts';
import type { Links } from '../../../../hub/links/links.ts';
import type { Sql } from '../../../../hub/store/sql.ts';
import type { Store } from '../../../../hub/store/store.ts';
import { merge, startTestHub, type TestHub } from '../../../helpers/hub.ts';
import { freePort, planRabbitCluster, startRabbitCluster, type RabbitCluster, type RabbitPlan } from './rabbit-cluster.ts';

/** Where a hub keeps its data: configuration overrides for hub `i` (and what to close at the end). */
export interface HubStore {
  name: string;
  /** Replicas share one store: a factory that can serve more than one hub says so. */
  shared: boolean;
  overrides(i: number): Promise<Record<string, unknown>>;
  close?(): Promise<void>;
}

/** Each hub its own SQLite file in its own data directory (the default): one hub only. */
export const sqliteStore: HubStore = { name: 'sqlite', shared: false, overrides: async () => ({}) };

export interface ClusterHubs {
  ca: TestCa;
  /** The device CA of hub 0: the broker nodes trust it and present its server certificate. */
  deviceCa: DeviceCa;
  plan: RabbitPlan;
  cluster: RabbitCluster;
  hubs: TestHub[];
  stop(): Promise<void>;
}

/**
 * Starts the broker cluster and `count` hubs publishing to it (every node's URL, in order), with the
 * broker's HTTP auth backend on hub 0.
 */
export async function startHubs(o: { count?: number; store?: HubStore; nodes?: number; clusterTimeoutMs?: number; sessionQueueType?: 'quorum' | 'classic' } = {}): Promise<ClusterHubs> {
  const count = o.count ?? 1;
  const store = o.store ?? sqliteStore;
  // In-process hubs cannot be killed apart from the test: replicas that a test kills are child
  // processes behind a load balancer (replica-hubs.ts). More than one hub here needs a shared store,
  // or they would be several unrelated change logs.
  if (count > 1 && !store.shared) throw new Error(`hub replicas need a shared store; ${store.name} is one hub's own`);
  const plan = await planRabbitCluster(o.nodes ?? 3);
  const ca = await createTestCa();
  const hubs: TestHub[] = [];
  let cluster: RabbitCluster | undefined;
  try {
    const authPort = await freePort();
    const admin = plan.admin;
    const mqttUrls = plan.nodes.map((n) => `mqtt://127.0.0.1:${n.mqtt}`);
    const mgmtUrls = plan.nodes.map((n) => `http://127.0.0.1:${n.mgmt}`);
    for (let i = 0; i < count; i++) {
      hubs.push(
        await startTestHub({
          ca,
          overrides: merge(await store.overrides(i), {
            broker: { port: 0, external: { urls: mqttUrls, password: randomBytes(16).toString('hex'), managementUrls: mgmtUrls, managementUser: admin.user, managementPassword: admin.pass } },
            brokerAuth: { port: i === 0 ? authPort : await freePort() },
            devices: { httpsPort: 0 },
          }),
        }),
      );
    }
    // The hub opens this same device CA at start; the nodes need its certificates first.
    const deviceCa = await openDeviceCa(join(hubs[0]!.dir, 'device-ca'));
    const server = await deviceCa.serverCredentials();
    cluster = await startRabbitCluster({
      plan,
      caPem: deviceCa.certPem,
      certPem: server.certPem,
      keyPem: server.keyPem,
      authBaseUrl: `http://127.0.0.1:${authPort}`,
      timeoutMs: o.clusterTimeoutMs,
      sessionQueueType: o.sessionQueueType,
    });
    for (const h of hubs) await h.hub.start();
    const c = cluster;
    return {
      ca,
      deviceCa,
      plan,
      cluster: c,
      hubs,
      async stop() {
        for (const h of hubs) await h.close().catch(() => undefined);
        await c.stop();
        await store.close?.();
      },
    };
  } catch (e) {
    for (const h of hubs) await h.close().catch(() => undefined);
    await cluster?.stop();
    await store.close?.();
    throw e;
  }
}

/**
 * What writes the change log and enrolls the edges, through the store's own code: a hub in this
 * process (`sideOf`), or this process on the database hub replicas share (replica-hubs.ts).
 */
export interface HubSide {
  sql: Sql;
  mykeys: Store['mykeys'];
  linkRepo: Store['links'];
  links: Links;
  /** Entries were committed (by links, or by a CRL run): wake the outbox publisher (this hub's, or whichever replica holds it). */
  written(by: 'links' | 'crl'): Promise<void> | void;
  enroll: DeviceEnrollment['enroll'];
  /** The device API the edges sync from (https://...). */
  deviceApiUrl: string;
}

/** The side of a hub in this process. */
export function sideOf(h: TestHub): HubSide {
  const { store, mykeys, linkRepo, links, fanout } = h.hub;
  return {
    sql: store.sql,
    mykeys,
    linkRepo,
    links,
    // What the hub's own code emits after such a commit (a CRL run: `suspended`, hub/fanout.ts).
    written: (by) => void (by === 'crl' ? fanout.emit('suspended', { source: 'crl' }) : fanout.emit('outboxWritten', { source: 'links' })),
    enroll: (...args) => {
      if (!h.hub.enrollment) throw new Error('device enrollment is not running');
      return h.hub.enrollment.enroll(...args);
    },
    deviceApiUrl: h.hub.addresses.deviceApi!,
  };
}

const asSide = (h: TestHub | HubSide): HubSide => ('hub' in h ? sideOf(h) : h);

/** `count` MyKey IDs linked to `serviceId`, made through the store's code in one transaction (keys stored ahead). */
export async function linkMany(hub: TestHub | HubSide, serviceId: string, count: number): Promise<string[]> {
  const { sql, mykeys, linkRepo, links, written } = asSide(hub);
  const ids: string[] = [];
  await sql.tx(async () => {
    for (let i = 0; i < count; i++) {
      const cert = { fingerprint: randomBytes(32).toString('hex'), issuerKey: 'b'.repeat(32), issuerKeyId: 'c'.repeat(40), serialHex: randomBytes(8).toString('hex'), notAfter: Date.now() + 1e10 };
      const r = await mykeys.createOrGet(cert, () => randomMyKeyId(randomBytes), Date.now());
      if (!('row' in r)) throw new Error('could not create a MyKey ID');
      // The keyed identities stored ahead, as prepareKeys stores them after its scrypt (random here:
      // what is tested is the fan-out, not the derivation).
      for (const identity of [`mykey:${r.row.id}`, `cert:${certIdentity(cert.issuerKey, cert.serialHex)}`])
        await linkRepo.insertKey(serviceId, CURRENT_KEY_SCHEME, identity, randomBytes(16).toString('base64url'));
      await links.link({ serviceId, mykeyId: r.row.id, serviceUserId: `U-${ids.length}-${randomBytes(3).toString('hex')}`, by: 'test' });
      ids.push(r.row.id);
    }
  });
  await written('links');
  return ids;
}

/**
 * Suspends MyKey IDs as a CRL run does (mykeys.applyRevocations: the binding revoked, the MyKey ID
 * suspended, a `suspend` entry per link, all in one transaction per chunk, then `suspended` on the
 * fan-out bus), `chunk` at a time; `between(k)` runs after chunk k is committed. Returns the head seq.
 */
export async function suspendInChunks(
  hub: TestHub | HubSide,
  serviceId: string,
  ids: readonly string[],
  chunk: number,
  between: (k: number) => Promise<void> | void = () => undefined,
): Promise<number> {
  const { mykeys, written, links } = asSide(hub);
  for (let k = 0, from = 0; from < ids.length; k++, from += chunk) {
    const now = Date.now();
    const hits = [];
    for (const mykeyId of ids.slice(from, from + chunk)) {
      const b = (await mykeys.bindingsOf(mykeyId)).find((x) => x.state === 'current');
      if (!b) throw new Error('no current binding');
      hits.push({ bindingId: b.id, mykeyId, state: b.state, revokedAt: now, reason: 'keyCompromise' });
    }
    const n = await mykeys.applyRevocations(hits, now);
    if (n !== hits.length) throw new Error(`suspended ${n} of ${hits.length}`);
    await written('crl');
    await between(k);
  }
  return links.headSeq(serviceId);
}

export interface FleetEdge {
  edgeId: string;
  agent: SyncAgent;
  cache: EdgeCache;
  state: EdgeState;
  /** Seqs of applied entries, in the order the agent announced them. */
  applied: number[];
  /** Seqs of the snapshots it applied. */
  snapshots: number[];
  /** The broker URLs it was given, in its order. */
  urls: string[];
  /** Its last log lines (info and above), for the report of a failure. */
  log: string[];
}

export interface Fleet {
  edges: FleetEdge[];
  stop(): Promise<void>;
}

/**
 * Enrolls and starts `count` edges of `serviceId` through hub `h`, `parallel` at a time, each waiting
 * until it is synced and connected. `urlsFor(i)` gives edge i its broker URLs (all of the cluster's).
 */
export async function startFleet(
  hub: TestHub | HubSide,
  deviceCa: DeviceCa,
  o: { count: number; serviceId: string; urlsFor: (i: number) => string[]; parallel?: number; timeoutMs?: number },
): Promise<Fleet> {
  const side = asSide(hub);
  const dir = mkdtempSync(join(tmpdir(), 'mykey-fleet-'));
  const edges: FleetEdge[] = [];
  const stop = async () => {
    await Promise.all(
      edges.map(async (e) => {
        await e.agent.stop().catch(() => undefined);
        await e.state.close().catch(() => undefined);
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const creds: Array<{ edgeId: string; certPem: string; keyPem: string }> = [];
    for (let i = 0; i < o.count; i++) {
      const edgeId = `fo-${o.serviceId}-${String(i).padStart(4, '0')}`;
      const csr = await createDeviceCsr(edgeId);
      const r = await side.enroll(csr.csrDer, { edgeId, serviceId: o.serviceId, validityDays: 2 });
      if (!r.ok) throw new Error(r.message);
      creds.push({ edgeId, certPem: r.value.certPem, keyPem: csr.keyPem });
    }
    const deadline = Date.now() + (o.timeoutMs ?? 120_000);
    let next = 0;
    const worker = async () => {
      while (next < creds.length) {
        const i = next++;
        const c = creds[i]!;
        const cache = new EdgeCache();
        const stateDir = join(dir, c.edgeId);
        mkdirSync(stateDir);
        const lines: string[] = [];
        const log = createLogger(c.edgeId, { level: 'info', json: true, write: (line) => void (lines.push(line.slice(0, 400)) > 40 && lines.shift()) });
        const state = new EdgeState({ dir: stateDir, log });
        await state.open(cache);
        const urls = o.urlsFor(i);
        const agent = new SyncAgent({
          hubUrl: side.deviceApiUrl,
          brokerUrl: urls,
          tls: { ca: deviceCa.certPem, cert: c.certPem, key: c.keyPem },
          state,
          cache,
          version: '0.1.0-failover',
          log,
          backoff: { minMs: 200, maxMs: 2000 },
        });
        const e: FleetEdge = { edgeId: c.edgeId, agent, cache, state, applied: [], snapshots: [], urls, log: lines };
        agent.events.on('applied', ({ seq }) => void e.applied.push(seq));
        agent.events.on('snapshot', ({ seq }) => void e.snapshots.push(seq));
        edges.push(e);
        await agent.start();
        while (!(cache.synced && agent.connected)) {
          if (Date.now() > deadline) throw new Error(`edge ${c.edgeId} not synced and connected in time`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    };
    await Promise.all(Array.from({ length: o.parallel ?? 10 }, worker));
    return { edges, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Waits until the quorum queue of every one of `sessions` edge sessions has a leader and a member
 * online on every node (management API of node `via`). A queue declared moments before a node is
 * killed may not have started its members elsewhere yet: RabbitMQ 3.10 then leaves it without a
 * quorum until that node returns, and its edge without a CONNACK ("connack timeout") meanwhile. A
 * fleet's sessions are older than that in the field; a test kills a node only once they are settled.
 */
export async function quorumSettled(cluster: RabbitCluster, admin: { user: string; pass: string }, sessions: number, o: { via?: number; timeoutMs?: number } = {}): Promise<number> {
  const t0 = Date.now();
  const authz = 'Basic ' + Buffer.from(`${admin.user}:${admin.pass}`).toString('base64');
  const size = cluster.nodes.length;
  for (;;) {
    try {
      const res = await fetch(`${cluster.mgmtUrl(o.via ?? 1)}/api/queues/%2F?columns=name,type,members,online,leader`, { headers: { authorization: authz } });
      if (res.ok) {
        const qs = (await res.json()) as Array<{ name: string; type: string; members?: string[]; online?: string[]; leader?: string }>;
        const ready = qs.filter((q) => q.type === 'quorum' && q.name.startsWith('mqtt-subscription-') && q.leader && q.members?.length === size && q.online?.length === size);
        if (ready.length >= sessions) return Date.now() - t0;
      }
    } catch {
      /* the node is busy: ask again */
    }
    if (Date.now() - t0 > (o.timeoutMs ?? 60_000)) throw new Error(`the quorum queues of ${sessions} sessions did not settle on ${size} nodes in time`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Where an edge stands before a burst: its seq and how many entries it had announced. */
export interface Mark {
  seq: number;
  announced: number;
  snapshots: number;
}
export const markOf = (e: FleetEdge): Mark => ({ seq: e.cache.appliedSeq, announced: e.applied.length, snapshots: e.snapshots.length });

/**
 * What is wrong with what an edge applied since `m` up to `head`: every entry exactly once, in order,
 * without a snapshot in between. Undefined when all is right.
 */
export function appliedProblem(e: FleetEdge, m: Mark, head: number): string | undefined {
  const since = e.applied.slice(m.announced);
  // A snapshot at or before the mark's seq is the state the burst starts from (an edge finishing its
  // first sync as the mark is taken); one past it would have skipped entries instead of applying them.
  const late = e.snapshots.slice(m.snapshots).filter((seq) => seq > m.seq);
  if (late.length > 0) return `a snapshot since the mark (seq ${late.join(',')})`;
  for (let i = 0; i < since.length; i++) if (since[i] !== m.seq + 1 + i) return `applied #${i} since the mark is seq ${since[i]}, expected ${m.seq + 1 + i} (a gap, a duplicate or out of order)`;
  if (since.length !== head - m.seq) return `${since.length} entries applied, ${head - m.seq} expected`;
  if (e.cache.appliedSeq !== head) return `appliedSeq ${e.cache.appliedSeq}, head ${head}`;
  return undefined;
}
