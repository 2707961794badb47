// The outbox keeps several messages of a topic in flight to a clustered broker (broker.external.
// outboxWindow, #12), through the hub's real cluster publisher (mqtt.js, QoS 1) to a real broker (a
// Mosquitto standing in for a node). The hub's connection is cut mid-window, twice, by a TCP proxy in
// front of the broker: a subscriber that applies entries as an edge does (appliedSeq + 1, a seq
// already applied ignored, edge/sync/apply-queue.ts) still applies every entry, once and in order,
// with no gap, and the outbox ends empty.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt, { type MqttClient } from 'mqtt';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkLogPayload } from '../../../edge/sync/log-message.ts';
import { createExternalPublisher, type ExternalPublisher } from '../../../hub/broker-cluster/external-publisher.ts';
import { createLinks } from '../../../hub/links/links.ts';
import { createOutboxPublisher, type OutboxPublisher } from '../../../hub/links/outbox-publisher.ts';
import { openDatabase, type Db } from '../../../hub/store/db.ts';
import { createLinkRepo } from '../../../hub/store/link-repo.ts';
import { createMyKeyRepo } from '../../../hub/store/mykey-repo.ts';
import { sqlOf } from '../../../hub/store/sql.ts';
import { certIdentity } from '../../../shared/cert-identity.ts';
import { randomMyKeyId } from '../../../shared/ids.ts';
import { createLogger } from '../../../shared/log.ts';
import { CURRENT_KEY_SCHEME } from '../../../shared/sync.ts';
import { serviceLogTopic } from '../../../shared/topics.ts';
import { until } from '../../helpers/polling.ts';
import { testIf } from '../../helpers/requires.ts';
import { freePort } from '../broker/helpers/mosquitto.ts';

const haveMosquitto = spawnSync('mosquitto', ['-h']).error === undefined;
const mosquittoTest = testIf(haveMosquitto, 'Mosquitto is not installed');

const LINKS = 300;
const WINDOW = 8;
const log = createLogger('outbox-window-test', { level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'mykey-outbox-window-'));
let mosquitto: ChildProcess | undefined;
let proxy: Server | undefined;
let sub: MqttClient | undefined;
let ext: ExternalPublisher | undefined;
let outbox: OutboxPublisher | undefined;
let db: Db | undefined;

test.after(async () => {
  outbox?.stop();
  await ext?.stop().catch(() => undefined);
  sub?.end(true);
  proxy?.close();
  if (mosquitto && mosquitto.exitCode === null) mosquitto.kill('SIGKILL');
  db?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A TCP proxy in front of the broker whose connections can be cut at once, as a node dying would cut them. */
async function startProxy(target: number): Promise<{ port: number; cut: () => number }> {
  const pairs = new Set<[Socket, Socket]>();
  proxy = createServer((c) => {
    const u = netConnect(target, '127.0.0.1');
    const pair: [Socket, Socket] = [c, u];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      c.destroy();
      u.destroy();
    };
    c.on('error', end).on('close', end);
    u.on('error', end).on('close', end);
    c.pipe(u);
    u.pipe(c);
  });
  const port = await new Promise<number>((resolve) => proxy!.listen(0, '127.0.0.1', () => resolve((proxy!.address() as { port: number }).port)));
  return {
    port,
    cut() {
      const n = pairs.size;
      for (const [c, u] of pairs) {
        c.destroy();
        u.destroy();
      }
      pairs.clear();
      return n;
    },
  };
}

mosquittoTest('with several messages in flight, a connection cut mid-window twice loses no entry and reorders none', async () => {
  const brokerPort = await freePort();
  writeFileSync(
    join(dir, 'mosquitto.conf'),
    [`listener ${brokerPort} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'max_queued_messages 100000', ...(process.getuid?.() === 0 ? ['user root'] : [])].join('\n') + '\n',
  );
  mosquitto = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  const { port: proxyPort, cut } = await startProxy(brokerPort);

  // The change log: LINKS links, then every one of them unlinked in one transaction (a CRL run's burst).
  db = openDatabase(join(dir, 'hub.sqlite'));
  const repo = createLinkRepo(db);
  const mykeys = createMyKeyRepo(db);
  const links = createLinks({ sql: db, repo, mykeys });
  await links.createService({ id: 'library', name: 'Library' });
  const users: string[] = [];
  await sqlOf(db).tx(async () => {
    for (let i = 0; i < LINKS; i++) {
      const cert = { fingerprint: randomBytes(32).toString('hex'), issuerKey: 'b'.repeat(32), issuerKeyId: 'c'.repeat(40), serialHex: randomBytes(8).toString('hex'), notAfter: Date.now() + 1e10 };
      const r = await mykeys.createOrGet(cert, () => randomMyKeyId(randomBytes), Date.now());
      if (!('row' in r)) throw new Error('no MyKey ID');
      for (const identity of [`mykey:${r.row.id}`, `cert:${certIdentity(cert.issuerKey, cert.serialHex)}`])
        await repo.insertKey('library', CURRENT_KEY_SCHEME, identity, randomBytes(16).toString('base64url'));
      const u = `U-${String(i).padStart(6, '0')}`;
      await links.link({ serviceId: 'library', mykeyId: r.row.id, serviceUserId: u, by: 'test' });
      users.push(u);
    }
    for (const u of users) await links.unlink({ serviceId: 'library', serviceUserId: u, by: 'service', reason: 'cancelled' });
  });
  const total = 2 * LINKS;

  // The subscriber, on the broker directly, applies entries as an edge does.
  sub = await until(
    () =>
      mqtt
        .connectAsync({ host: '127.0.0.1', port: brokerPort, protocolVersion: 4, clientId: `sub-${randomBytes(4).toString('hex')}`, clean: true, reconnectPeriod: 0, connectTimeout: 5000 })
        .catch(() => undefined),
    { timeoutMs: 30_000, what: 'Mosquitto to accept the subscriber' },
  );
  let applied = 0;
  let duplicates = 0;
  const problems: string[] = [];
  sub.on('message', (_topic, payload) => {
    const v = checkLogPayload(payload);
    if (!v.ok) {
      problems.push(`bad message: ${v.message}`);
      return;
    }
    for (const e of v.value) {
      if (e.seq <= applied) duplicates++;
      else if (e.seq === applied + 1) applied = e.seq;
      else problems.push(`seq ${e.seq} after ${applied}`);
    }
  });
  await sub.subscribeAsync(serviceLogTopic('library'), { qos: 1 });

  // The hub's cluster publisher, through the proxy; every publish counted while unconfirmed.
  ext = createExternalPublisher({ urls: [`mqtt://127.0.0.1:${proxyPort}`], username: 'mykey_hub', password: 'test-only', log, timeoutMs: 5000 });
  await until(() => ext!.connected || undefined, { timeoutMs: 30_000, what: 'the cluster publisher to connect' });
  let inFlight = 0;
  let maxInFlight = 0;
  let calls = 0;
  let cuts = 0;
  outbox = createOutboxPublisher({ repo, log, window: WINDOW, retryMs: 100, sweepMs: 500, maxBatchBytes: 1024 });
  outbox.attach(async (topic, payload) => {
    calls++;
    // Cut the hub's connection right after a window was filled: twice, a few messages apart.
    if ((calls === 20 || calls === 45) && cuts < 2) {
      setImmediate(() => {
        if (cut() > 0) cuts++;
      });
    }
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      await ext!.publish(topic, payload);
    } finally {
      inFlight--;
    }
  });

  await until(async () => applied === total && (await repo.pendingMqtt(1)).length === 0, {
    timeoutMs: 90_000,
    what: 'every entry applied and the outbox empty',
    detail: () => `applied ${applied} of ${total}; problems ${problems.slice(0, 5).join(', ')}`,
  });
  assert.equal(problems, [], 'no gap, no entry out of order');
  assert.is(cuts, 2, 'the hub’s connection was cut twice mid-window');
  assert.ok(maxInFlight >= 2 && maxInFlight <= WINDOW, `several messages in flight, at most the window (${maxInFlight})`);
  assert.ok(outbox.stats().messages >= 60, `many messages (${outbox.stats().messages})`);
  // Duplicates (messages republished after a cut) are ignored by seq; they are allowed, never needed.
  assert.ok(duplicates >= 0);
});

test.run();
