// Child process of the fan-out benchmark: the hub's side alone, so its RSS is the hub's own. It runs
// the device repo, the links with their change log and outbox, and the embedded broker; the outbox
// publishes either into aedes (in process) or, as a hub in front of a stock broker would, through an
// MQTT client to Mosquitto. Each revocation is a service cancelling one service ID: the clock starts
// just before that transaction (wall clock, shared by the processes on this machine).
//
// A burst (`burst`) is a CRL run's worth of suspensions of linked MyKey IDs written as the CRL manager
// writes them (hub/revocation/crl-match.ts writeRevocations: chunks of applyRevocations, each its own
// short transaction sized to a slice, the event loop free between them, the outboxes told through
// the `suspended` event every 250 ms or 1,300 suspensions, with `more` until the last); the outbox
// publishes what has committed as whole batched log messages (shared/sync.ts) while later chunks
// are still written, and the rest after the last.
//
// Parent -> hub: { type: 'start', dir, services }, { type: 'attach', target, port?, certPem?, keyPem? },
//                { type: 'revoke', count? }, { type: 'burst', count }, { type: 'stats' }, { type: 'stop' }
// Hub -> parent: { type: 'started', tlsPort }, { type: 'attached' }, { type: 'revoked', seq, t0, target, commitMs, publishedMs? },
//                { type: 'stats', rssMb, connected, handOffP50, messages, entries }, { type: 'stopped' }
import mqtt, { type MqttClient } from 'mqtt';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { createBroker, type Broker } from '../hub/broker/broker.ts';
import { loadHubConfig } from '../hub/config.ts';
import { createFanoutBus, wireFanout } from '../hub/fanout.ts';
import { createLinks } from '../hub/links/links.ts';
import { createOutboxPublisher, type Publish } from '../hub/links/outbox-publisher.ts';
import { openDeviceCa } from '../hub/pki/device-ca.ts';
import { SLICE_MS } from '../hub/revocation/crl-manager.ts';
import { acrossTurns, createSlicer, writeRevocations, type Hit } from '../hub/revocation/crl-match.ts';
import { openDatabase } from '../hub/store/db.ts';
import { createDeviceRepo } from '../hub/store/device-repo.ts';
import { createLinkRepo } from '../hub/store/link-repo.ts';
import { createMyKeyRepo } from '../hub/store/mykey-repo.ts';
import { sqlOf } from '../hub/store/sql.ts';
import { certIdentity } from '../shared/cert-identity.ts';
import { randomMyKeyId } from '../shared/ids.ts';
import { CURRENT_KEY_SCHEME } from '../shared/sync.ts';
import { createLogger } from '../shared/log.ts';
import { percentile, procMemoryMb } from './lib.ts';

type Msg =
  | { type: 'start'; dir: string; service: string; revocations: number }
  | { type: 'attach'; target: 'aedes' | 'mosquitto'; port?: number; certPem?: string; keyPem?: string }
  | { type: 'revoke'; count?: number }
  | { type: 'burst'; count: number }
  | { type: 'stats' }
  | { type: 'stop' };

const send = (m: unknown) => process.send!(m);
// To Mosquitto one message at a time, as the reference was measured; FANOUT_OUTBOX_WINDOW=config
// (or a number) publishes with the window the hub uses towards an external broker.
const external = loadHubConfig({ env: {} }).broker.external;
const OUTBOX_WINDOW = process.env.FANOUT_OUTBOX_WINDOW === 'config' ? external.outboxWindow : Number(process.env.FANOUT_OUTBOX_WINDOW ?? 1);
const OUTBOX_WINDOW_BYTES = 1024 * Number(process.env.FANOUT_OUTBOX_WINDOW_KB ?? external.outboxWindowKb);
const AEDES_WINDOW = Number(process.env.FANOUT_AEDES_WINDOW ?? 1);
// FANOUT_BATCH_VERSION=2: the outbox writes v2 batches (shared/sync.ts) instead of the compact v3.
const BATCH_VERSION = process.env.FANOUT_BATCH_VERSION === '2' ? 2 : process.env.FANOUT_BATCH_VERSION === '3' ? 3 : undefined;
const wall = () => performance.timeOrigin + performance.now();

let broker: Broker | undefined;
let db: ReturnType<typeof openDatabase> | undefined;
let outbox: ReturnType<typeof createOutboxPublisher> | undefined;
let revoke: (() => Promise<number>) | undefined;
let burst: ((count: number) => Promise<number>) | undefined;
let mq: MqttClient | undefined;
let caPem = '';
let target: 'aedes' | 'mosquitto' = 'aedes';
const handOff: number[] = [];
// FANOUT_TRACE: each message of a CRL-run burst, as `start ms after the commit began + hand-off ms (bytes)`.
let trace: string[] | undefined;
let trace0 = 0;
// FANOUT_PROFILE=<file>: a CPU profile of the hub from the first revocation to the next stats.
let profiler: Session | undefined;

// FANOUT_PROFILE_AT=burst: from the first CRL-run burst instead.
async function startProfile(): Promise<void> {
  if (profiler) return;
  profiler = new Session();
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.start');
}

process.on('message', async (m: Msg) => {
  try {
    if (m.type === 'start') {
      const ca = await openDeviceCa(join(m.dir, 'device-ca'));
      caPem = ca.certPem;
      db = openDatabase(join(m.dir, 'hub.sqlite'));
      const devices = createDeviceRepo(db);
      const linkRepo = createLinkRepo(db);
      const mykeys = createMyKeyRepo(db);
      outbox = createOutboxPublisher({ repo: linkRepo, log: createLogger('bench-outbox', { level: 'error' }), ...(BATCH_VERSION ? { batchVersion: BATCH_VERSION } : {}) });
      const events = createFanoutBus(createLogger('bench-fanout', { level: 'error' }));
      // Wired as the hub wires it (hub/main.ts): `suspended` (a CRL run's chunks) and `outboxWritten` kick the outbox.
      wireFanout(events, { log: createLogger('bench-fanout', { level: 'error' }), outbox: outbox!, webhooks: { kick() {} }, disconnectEdge() {} });
      const links = createLinks({ sql: db, repo: linkRepo, mykeys, events });
      await links.createService({ id: m.service, name: 'Town library' });
      const serviceUserIds: string[] = [];
      /** Each link's MyKey ID and the id of its current binding (what a CRL run matches). */
      const linked: { mykeyId: string; bindingId: number }[] = [];
      const linkOne = async (i: number) => {
        const cert = { fingerprint: randomBytes(32).toString('hex'), issuerKey: 'b'.repeat(32), issuerKeyId: 'c'.repeat(40), serialHex: randomBytes(8).toString('hex'), notAfter: Date.now() + 1e10 };
        const r = await mykeys.createOrGet(cert, () => randomMyKeyId(randomBytes), Date.now());
        if (!('row' in r)) throw new Error('could not create a MyKey ID');
        const serviceUserId = `LIB-${String(i).padStart(6, '0')}`;
        // The keyed identities are stored ahead, as prepareKeys stores them after its scrypt runs on
        // the libuv pool (random here: the bench measures the fan-out, not the derivation).
        for (const identity of [`mykey:${r.row.id}`, `cert:${certIdentity(cert.issuerKey, cert.serialHex)}`])
          await linkRepo.insertKey(m.service, CURRENT_KEY_SCHEME, identity, randomBytes(16).toString('base64url'));
        await links.link({ serviceId: m.service, mykeyId: r.row.id, serviceUserId, by: 'bench' });
        serviceUserIds.push(serviceUserId);
        linked.push({ mykeyId: r.row.id, bindingId: (await mykeys.currentBinding(r.row.id))!.id });
      };
      // Set up in transactions of 1,000 links (tens of thousands of single commits take minutes here).
      const sql = sqlOf(db);
      const setup = (from: number, to: number) =>
        sql.tx(async () => {
          for (let i = from; i < to; i++) await linkOne(i);
        });
      for (let i = 0; i < m.revocations; i += 1000) await setup(i, Math.min(m.revocations, i + 1000));
      let next = 0;
      revoke = async () => (await links.unlink({ serviceId: m.service, serviceUserId: serviceUserIds[next++], by: 'service', reason: 'cancelled' })).entry.seq;
      // A CRL run's writing phase over the next `count` links (each a revoked current certificate,
      // as matchCrl finds them): writeRevocations driven as crl-manager.ts applyAsync drives it.
      burst = async (count) => {
        const hits: Hit[] = [];
        const at = Date.now();
        for (let i = 0; i < count; i++) {
          const l = linked[next++];
          hits.push({ bindingId: l.bindingId, mykeyId: l.mykeyId, state: 'current', revokedAt: at, reason: 'keyCompromise' });
        }
        // FANOUT_TRACE: each chunk as `start ms after t0:rows/ms`.
        const chunks: string[] = [];
        const repo = trace
          ? {
              ...mykeys,
              applyRevocations: async (...a: Parameters<typeof mykeys.applyRevocations>) => {
                const t = wall();
                const n = await mykeys.applyRevocations(...a);
                chunks.push(`${Math.round(t - trace0)}:${a[0].length}/${Math.round(wall() - t)}`);
                return n;
              },
            }
          : mykeys;
        await acrossTurns(writeRevocations(repo, hits, { now: () => Date.now(), slicer: createSlicer(SLICE_MS), report: () => undefined, events }));
        if (chunks.length > 0) process.stderr.write(`  hub chunks: ${chunks.join(' ')}\n`);
        return await links.headSeq(m.service);
      };
      const server = await ca.serverCredentials();
      broker = createBroker({
        deviceCa: ca,
        devices,
        log: createLogger('bench-broker', { level: 'error' }),
        tls: { host: '127.0.0.1', port: 0, serverCert: server.certPem, serverKey: server.keyPem },
        headSeq: async (s) => await links.headSeq(s),
      });
      const { tlsPort } = await broker.start();
      send({ type: 'started', tlsPort });
    } else if (m.type === 'attach') {
      let publish: Publish;
      if (m.target === 'aedes') {
        const b = broker!;
        publish = async (topic, payload) => {
          const t = performance.now();
          await b.publish(topic, payload, { qos: 1 });
          handOff.push(performance.now() - t);
          trace?.push(`${Math.round(wall() - trace0)}+${Math.round(performance.now() - t)}(${payload.length})`);
        };
      } else {
        mq ??= await mqtt.connectAsync({
          protocol: 'mqtts',
          host: '127.0.0.1',
          port: m.port,
          protocolVersion: 4,
          clientId: 'mykey-hub',
          ca: caPem,
          cert: m.certPem,
          key: m.keyPem,
          reconnectPeriod: 0,
        });
        const client = mq;
        publish = async (topic, payload) => {
          const t = performance.now();
          await client.publishAsync(topic, payload, { qos: 1 });
          trace?.push(`${Math.round(wall() - trace0)}+${Math.round(performance.now() - t)}(${payload.length})`);
        };
      }
      target = m.target;
      // One message at a time into aedes, as the hub publishes; to Mosquitto see OUTBOX_WINDOW.
      outbox!.attach(publish, m.target === 'mosquitto' ? { window: OUTBOX_WINDOW, windowBytes: OUTBOX_WINDOW_BYTES } : { window: AEDES_WINDOW, windowBytes: Number.POSITIVE_INFINITY });
      // Entries written before (the links made at start) go out first.
      await outbox!.drain();
      send({ type: 'attached' });
    } else if (m.type === 'revoke') {
      if (process.env.FANOUT_PROFILE && process.env.FANOUT_PROFILE_AT !== 'burst') await startProfile();
      // `count` > 1: a burst, as a CRL run suspending many MyKey IDs makes; each is its own commit.
      const t0 = wall();
      let seq = 0;
      for (let i = 0; i < (m.count ?? 1); i++) seq = await revoke!();
      send({ type: 'revoked', seq, t0, target, commitMs: wall() - t0 });
    } else if (m.type === 'burst') {
      if (process.env.FANOUT_PROFILE && process.env.FANOUT_PROFILE_AT === 'burst') await startProfile();
      const t0 = wall();
      if (process.env.FANOUT_TRACE) {
        trace = [];
        trace0 = t0;
      }
      const seq = await burst!(m.count);
      const commitMs = wall() - t0;
      await outbox!.drain(); // the broker has taken every message (aedes: written to every edge)
      if (trace) process.stderr.write(`  hub ${target} (t0 ${Math.round(trace0) % 100_000}): messages ${trace.join(' ')}\n`);
      trace = undefined;
      send({ type: 'revoked', seq, t0, target, commitMs, publishedMs: wall() - t0 });
    } else if (m.type === 'stats') {
      if (profiler) {
        const { profile } = await profiler.post('Profiler.stop');
        writeFileSync(process.env.FANOUT_PROFILE!, JSON.stringify(profile));
        profiler.disconnect();
        // One profile per run: later stats requests (the bench asks after each burst) find none.
        profiler = undefined;
        delete process.env.FANOUT_PROFILE;
      }
      (globalThis as { gc?: () => void }).gc?.();
      const mem = process.memoryUsage();
      // Resident memory of its own (heap, malloc, TLS buffers) apart from mapped files (the SQLite file's
      // memory map, code): the kernel may drop the latter under pressure and share it.
      send({
        type: 'stats',
        rssMb: mem.rss / 2 ** 20,
        rssAnonMb: procMemoryMb('self', 'RssAnon'),
        rssFileMb: procMemoryMb('self', 'RssFile'),
        heapMb: mem.heapUsed / 2 ** 20,
        externalMb: mem.external / 2 ** 20,
        arrayBuffersMb: mem.arrayBuffers / 2 ** 20,
        connected: broker?.connectedEdges().length ?? 0,
        handOffP50: percentile(handOff, 50),
        ...outbox!.stats(),
      });
      // The next figure covers what happens from now on.
      handOff.length = 0;
    } else if (m.type === 'stop') {
      outbox?.stop();
      mq?.end(true);
      await broker?.stop();
      db?.close();
      send({ type: 'stopped' });
      process.exit(0);
    }
  } catch (e) {
    send({ type: 'error', error: String((e as Error).stack ?? e) });
  }
});
process.on('disconnect', () => process.exit(0));
