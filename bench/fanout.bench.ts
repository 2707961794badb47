// Revocation fan-out: 1,000 edges of one service (plus a few of another), mqtt.js clients over TLS
// with their own device certificates in child processes (bench/fanout-edges.ts), subscribed as real
// edges are. Each revocation is a service cancelling one of its service IDs through the hub's links
// (hub/links/links.ts): one transaction writes the change-log entry and its outbox row, and the
// outbox publisher hands it to the broker. The time measured runs from just before that transaction
// to the moment the last edge has the entry (wall clock shared by the processes).
// The same fan-out runs through Mosquitto (Debian package) with the same certificates, the same TLS,
// the same client processes, the same commit and outbox, the hub publishing as an MQTT client. Every
// edge is connected to both brokers at once and revocations alternate between them, so both see the
// same load from whatever else runs on the machine.
//
//   npx tsx bench/run.ts fanout
//   FANOUT_EDGES=200 FANOUT_RUNS=20 npx tsx bench/fanout.bench.ts     (a quicker look)
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { mosquittoAcl } from '../hub/broker/acl.ts';
import { createBroker } from '../hub/broker/broker.ts';
import { edgeIdentity } from '../hub/broker/identity.ts';
import { mosquittoConfig } from '../hub/broker/mosquitto-config.ts';
import { createDeviceCsr, openDeviceCa } from '../hub/pki/device-ca.ts';
import { openDatabase } from '../hub/store/db.ts';
import { randomBytes } from 'node:crypto';
import { createLinks } from '../hub/links/links.ts';
import { createOutboxPublisher, type Publish } from '../hub/links/outbox-publisher.ts';
import { createDeviceRepo } from '../hub/store/device-repo.ts';
import { createLinkRepo } from '../hub/store/link-repo.ts';
import { createMyKeyRepo } from '../hub/store/mykey-repo.ts';
import { DEVICE_MIGRATIONS } from '../hub/store/schema/devices.ts';
import { randomMyKeyId } from '../shared/ids.ts';
import { createLogger } from '../shared/log.ts';
import { benchMain, percentile, progress, round } from './lib.ts';

const EDGES = Number(process.env.FANOUT_EDGES ?? 1000);
const OTHER_EDGES = Number(process.env.FANOUT_OTHER_EDGES ?? 24);
const CHILDREN = Number(process.env.FANOUT_CHILDREN ?? 3);
const RUNS = Number(process.env.FANOUT_RUNS ?? 100);
const WARMUP = 5;
// Long enough for the PUBACKs of one fan-out to settle before the next starts.
const GAP_MS = 100;
const SERVICE = 'library';
const here = fileURLToPath(new URL('.', import.meta.url));
const wall = () => performance.timeOrigin + performance.now();

interface Creds { edgeId: string; serviceId: string; certPem: string; keyPem: string }
type ChildMsg =
  | { type: 'ready'; connected: number; expected: number; ms: number }
  | { type: 'got'; seq: number; max: number; min: number; count: number }
  | { type: 'disconnected' }
  | { type: 'error'; error: string };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A child running a slice of the edges, with its file-descriptor limit raised for its sockets. */
function startChild(): ChildProcess {
  return fork(join(here, 'fanout-edges.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

class Edges {
  private waiters = new Map<string, Array<(m: ChildMsg) => void>>();
  private got = new Map<number, Array<{ max: number; count: number }>>();
  private gotWaiter?: { seq: number; resolve: () => void };
  constructor(readonly children: ChildProcess[]) {
    for (const c of children) {
      c.on('message', (m: ChildMsg) => {
        if (m.type === 'got') {
          const list = this.got.get(m.seq) ?? [];
          list.push({ max: m.max, count: m.count });
          this.got.set(m.seq, list);
          if (this.gotWaiter && this.gotWaiter.seq === m.seq && list.length === this.expectingChildren) this.gotWaiter.resolve();
          return;
        }
        if (m.type === 'error') throw new Error(`edge child: ${m.error}`);
        const q = this.waiters.get(m.type);
        q?.shift()?.(m);
      });
    }
  }
  expectingChildren = 0;
  private once(type: string): Promise<ChildMsg> {
    return new Promise((resolve) => {
      const q = this.waiters.get(type) ?? [];
      q.push(resolve);
      this.waiters.set(type, q);
    });
  }
  async connect(target: 'aedes' | 'mosquitto', port: number, caPem: string, credsFile: string, total: number): Promise<{ connected: number; expected: number; ms: number }> {
    const per = Math.ceil(total / this.children.length);
    const readies = this.children.map(() => this.once('ready'));
    this.children.forEach((c, i) => c.send({ type: 'connect', target, port, caPem, credsFile, from: i * per, to: Math.min(total, (i + 1) * per), service: SERVICE }));
    const rs = (await Promise.all(readies)) as Array<Extract<ChildMsg, { type: 'ready' }>>;
    this.expectingChildren = rs.filter((r) => r.expected > 0).length;
    return { connected: rs.reduce((s, r) => s + r.connected, 0), expected: rs.reduce((s, r) => s + r.expected, 0), ms: Math.max(...rs.map((r) => r.ms)) };
  }
  async disconnect(target: 'aedes' | 'mosquitto'): Promise<void> {
    const ds = this.children.map(() => this.once('disconnected'));
    for (const c of this.children) c.send({ type: 'disconnect', target });
    await Promise.all(ds);
  }
  /** Resolves with the arrival time of the last edge to get `seq`. */
  waitFor(seq: number, timeoutMs = 10_000): Promise<{ last: number; count: number }> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(t);
        this.gotWaiter = undefined;
        const list = this.got.get(seq)!;
        this.got.delete(seq);
        resolve({ last: Math.max(...list.map((g) => g.max)), count: list.reduce((s, g) => s + g.count, 0) });
      };
      const t = setTimeout(() => reject(new Error(`seq ${seq}: not every edge had it after ${timeoutMs} ms`)), timeoutMs);
      if ((this.got.get(seq)?.length ?? 0) === this.expectingChildren) return done();
      this.gotWaiter = { seq, resolve: done };
    });
  }
  exit(): void {
    for (const c of this.children) c.send({ type: 'exit' });
  }
}

/** The hub's side: links, change log and outbox over the bench database. */
function createRevoker(db: ReturnType<typeof openDatabase>, count: number) {
  const linkRepo = createLinkRepo(db);
  const mykeys = createMyKeyRepo(db);
  const outbox = createOutboxPublisher({ repo: linkRepo, log: createLogger('bench-outbox', { level: 'error' }) });
  const links = createLinks({ db, repo: linkRepo, mykeys, onOutbox: () => outbox.kick() });
  links.createService({ id: SERVICE, name: 'Town library' });
  const serviceUserIds: string[] = [];
  for (let i = 0; i < count; i++) {
    const serialHex = randomBytes(8).toString('hex');
    const r = mykeys.createOrGet({ fingerprint: randomBytes(32).toString('hex'), issuerKey: 'b'.repeat(32), serialHex, notAfter: Date.now() + 1e10 }, () => randomMyKeyId(randomBytes), Date.now());
    if (!('row' in r)) throw new Error('could not create a MyKey ID');
    const serviceUserId = `LIB-${String(i).padStart(6, '0')}`;
    links.link({ serviceId: SERVICE, mykeyId: r.row.id, serviceUserId, by: 'bench' });
    serviceUserIds.push(serviceUserId);
  }
  let next = 0;
  return {
    /** Where the outbox publishes. Entries written before now (the links above) go out first. */
    async attach(publish: Publish): Promise<void> {
      outbox.attach(publish);
      await outbox.drain();
    },
    /** The service cancels one service ID: commit (entry + outbox) and hand-off; returns the entry's seq. */
    revoke(): number {
      const { entry } = links.unlink({ serviceId: SERVICE, serviceUserId: serviceUserIds[next++], by: 'service', reason: 'cancelled' });
      return entry.seq;
    },
    stop: () => outbox.stop(),
  };
}

interface Target {
  label: 'aedes' | 'mosquitto';
  publish: Publish;
  sample: number[];
}

/** Alternates revocations between the brokers (order swapped every round); returns each one's sample. */
async function measure(edges: Edges, revoker: ReturnType<typeof createRevoker>, targets: Target[]): Promise<void> {
  for (let i = 1; i <= WARMUP + RUNS; i++) {
    const order = i % 2 ? targets : [...targets].reverse();
    for (const t of order) {
      await revoker.attach(t.publish);
      const t0 = wall();
      const seq = revoker.revoke();
      const { last } = await edges.waitFor(seq);
      if (i > WARMUP) t.sample.push(last - t0);
      await new Promise((r) => setTimeout(r, GAP_MS));
    }
  }
  for (const t of targets) {
    const slowest = [...t.sample].sort((a, b) => b - a).slice(0, 5).map((x) => Math.round(x));
    progress(`${t.label}: p50 ${round(percentile(t.sample, 50), 2)} ms, p99 ${round(percentile(t.sample, 99), 2)} ms over ${t.sample.length} revocations; slowest ${slowest.join(', ')} ms`);
    if (process.env.FANOUT_TRACE) progress(`${t.label} in order: ${t.sample.map((x) => Math.round(x)).join(' ')}`);
  }
}

function waitListening(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => (Date.now() > end ? reject(new Error('mosquitto did not start')) : setTimeout(attempt, 50)));
    };
    attempt();
  });
}

benchMain(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-fanout-'));
  const children: ChildProcess[] = [];
  let mosquitto: ChildProcess | undefined;
  try {
    progress(`issuing ${EDGES + OTHER_EDGES} device certificates`);
    const ca = await openDeviceCa(join(dir, 'device-ca'));
    const db = openDatabase(join(dir, 'hub.sqlite'));
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'devices'").get()) for (const m of DEVICE_MIGRATIONS) db.exec(m.sql);
    const devices = createDeviceRepo(db);
    const revoker = createRevoker(db, 2 * (WARMUP + RUNS));
    const ids: Array<[string, string]> = [];
    for (let i = 0; i < EDGES; i++) ids.push([`edge-${String(i).padStart(4, '0')}`, SERVICE]);
    for (let i = 0; i < OTHER_EDGES; i++) ids.push([`museum-edge-${String(i).padStart(3, '0')}`, 'museum']);
    // Interleave the services so every child has edges of both.
    ids.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const creds: Creds[] = [];
    const t0 = performance.now();
    for (const [edgeId, serviceId] of ids) {
      const { csrDer, keyPem } = await createDeviceCsr(edgeId);
      const r = await ca.issueDeviceCertificate(csrDer, { edgeId, serviceId, validityDays: 2 });
      if (!r.ok) throw new Error(r.message);
      devices.enroll({ edgeId, serviceId, certSerial: r.value.serialHex, certFingerprint: r.value.fingerprint, notAfter: r.value.notAfter.getTime() }, Date.now());
      creds.push({ edgeId, serviceId, certPem: r.value.certPem, keyPem });
    }
    const hubCsr = await createDeviceCsr('mykey-hub');
    const hubCert = await ca.issueDeviceCertificate(hubCsr.csrDer, { edgeId: 'mykey-hub', serviceId: 'hub', validityDays: 2 });
    if (!hubCert.ok) throw new Error(hubCert.message);
    progress(`issued in ${Math.round(performance.now() - t0)} ms`);
    const credsFile = join(dir, 'edges.json');
    writeFileSync(credsFile, JSON.stringify(creds), { mode: 0o600 });
    const server = await ca.serverCredentials();

    for (let i = 0; i < CHILDREN; i++) children.push(startChild());
    const edges = new Edges(children);

    // --- the hub's embedded aedes broker -------------------------------------------------------
    const broker = createBroker({
      deviceCa: ca,
      devices,
      log: createLogger('bench-broker', { level: 'error' }),
      tls: { host: '127.0.0.1', port: 0, serverCert: server.certPem, serverKey: server.keyPem },
      headSeq: () => 0,
    });
    const { tlsPort } = await broker.start();
    const handOff: number[] = [];
    const aedes: Target = {
      label: 'aedes',
      publish: async (topic, payload) => {
        const t = performance.now();
        await broker.publish(topic, payload, { qos: 1 });
        handOff.push(performance.now() - t);
      },
      sample: [],
    };
    await revoker.attach(aedes.publish);
    (globalThis as { gc?: () => void }).gc?.();
    const baseMb = process.memoryUsage().rss / 2 ** 20;
    let c = await edges.connect('aedes', tlsPort, ca.certPem, credsFile, creds.length);
    progress(`aedes: ${c.connected} edges connected in ${Math.round(c.ms)} ms (${c.expected} of ${SERVICE})`);
    if (c.connected !== creds.length || broker.connectedEdges().length !== creds.length) throw new Error(`only ${broker.connectedEdges().length} edges connected`);

    // --- Mosquitto beside it ---------------------------------------------------------------------
    const port = await freePort();
    const file = (name: string, text: string) => {
      const p = join(dir, name);
      writeFileSync(p, text, { mode: 0o600 });
      return p;
    };
    const conf = file(
      'mosquitto.conf',
      mosquittoConfig({
        host: '127.0.0.1',
        port,
        cafile: file('ca.pem', ca.certPem),
        certfile: file('server.pem', server.certPem),
        keyfile: file('server-key.pem', server.keyPem),
        aclFile: file('acl', mosquittoAcl(creds.map((x) => edgeIdentity(x.edgeId, x.serviceId, '', Infinity)), 'mykey-hub')),
        extra: [...(process.getuid?.() === 0 ? ['user root'] : []), 'max_connections -1'],
      }),
    );
    // Mosquitto's own descriptor limit must cover every edge.
    mosquitto = spawn('sh', ['-c', 'ulimit -n 65536 2>/dev/null; exec mosquitto -c "$0"', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let mqErr = '';
    mosquitto.stderr!.on('data', (d) => (mqErr = (mqErr + d).slice(-4096)));
    mosquitto.once('exit', (code) => code && progress(`mosquitto exited with ${code}: ${mqErr}`));
    await waitListening(port, 5000);
    const hub = await mqtt.connectAsync({
      protocol: 'mqtts',
      host: '127.0.0.1',
      port,
      protocolVersion: 4,
      clientId: 'mykey-hub',
      ca: ca.certPem,
      cert: hubCert.value.certPem,
      key: hubCsr.keyPem,
      reconnectPeriod: 0,
    });
    const mq: Target = {
      label: 'mosquitto',
      publish: async (topic, payload) => {
        await hub.publishAsync(topic, payload, { qos: 1 });
      },
      sample: [],
    };
    c = await edges.connect('mosquitto', port, ca.certPem, credsFile, creds.length);
    progress(`mosquitto: ${c.connected} edges connected in ${Math.round(c.ms)} ms`);

    await measure(edges, revoker, [aedes, mq]);
    progress(`aedes publish() until queued for every subscriber: p50 ${round(percentile(handOff.slice(-RUNS), 50), 2)} ms`);
    (globalThis as { gc?: () => void }).gc?.();
    const rssMb = process.memoryUsage().rss / 2 ** 20;
    progress(`hub RSS with ${broker.connectedEdges().length} edges connected: ${round(rssMb, 1)} MB (${round(baseMb, 1)} MB before they connected)`);
    await edges.disconnect('aedes');
    await edges.disconnect('mosquitto');
    await broker.stop();
    hub.end(true);
    revoker.stop();
    edges.exit();
    db.close();
    const hubSample = aedes.sample;
    const mqSample = mq.sample;

    const p99 = percentile(hubSample, 99);
    const mq99 = percentile(mqSample, 99);
    progress(`aedes p99 / mosquitto p99 = ${round(p99 / mq99, 2)} (target <= 1.5; target p99 <= 250 ms)`);
    const n = EDGES === 1000 ? '1000' : String(EDGES);
    return {
      [`fanout_${n}_p50_ms`]: { value: round(percentile(hubSample, 50), 2), unit: 'ms' },
      [`fanout_${n}_p99_ms`]: { value: round(p99, 2), unit: 'ms' },
      [`mosquitto_fanout_${n}_p50_ms`]: { value: round(percentile(mqSample, 50), 2), unit: 'ms' },
      [`mosquitto_fanout_${n}_p99_ms`]: { value: round(mq99, 2), unit: 'ms' },
      [`hub_rss_${n}_edges_mb`]: { value: round(rssMb, 1), unit: 'MB' },
    };
  } finally {
    for (const ch of children) if (ch.exitCode === null) ch.kill('SIGKILL');
    if (mosquitto && mosquitto.exitCode === null) mosquitto.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});
