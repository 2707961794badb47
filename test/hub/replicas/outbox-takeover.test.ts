// The outbox has one publisher across hub replicas, and another takes over when it dies: two hub
// processes on one PostgreSQL database publish the change log to one broker (a Mosquitto standing in
// for the shared, clustered broker); during a burst of change-log entries the replica holding the
// publisher lock is killed with kill -9, and the other takes over within 5 s. An MQTT subscriber that
// applies entries the way an edge does (appliedSeq + 1, a seq already applied ignored) applies every
// entry exactly once and in order, with no gap. The takeover time is printed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt from 'mqtt';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkLogPayload } from '../../../edge/sync/log-message.ts';
import { createLinks } from '../../../hub/links/links.ts';
import { REPLICA_CHANNEL } from '../../../hub/replicas/coordinator.ts';
import { openPostgresStore } from '../../../hub/store/postgres.ts';
import { certIdentity } from '../../../shared/cert-identity.ts';
import { randomMyKeyId } from '../../../shared/ids.ts';
import { CURRENT_KEY_SCHEME } from '../../../shared/sync.ts';
import { serviceLogTopic } from '../../../shared/topics.ts';
import { freePort } from '../broker/helpers/mosquitto.ts';
import { freshPgDatabase, havePostgres } from '../../helpers/pg.ts';
import { testIf } from '../../helpers/requires.ts';
import { startReplicaProcess, type ReplicaProcess } from './helpers/replica-process.ts';
import { until } from '../../helpers/polling.ts';

const haveMosquitto = spawnSync('mosquitto', ['-h']).error === undefined;
const pgTest = testIf(havePostgres && haveMosquitto, 'PostgreSQL 15 or Mosquitto is not installed');

const ENTRIES = 600;
const children: ChildProcess[] = [];
const replicas: ReplicaProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'mykey-takeover-'));

test.after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const r of replicas) r.kill();
  rmSync(dir, { recursive: true, force: true });
});

pgTest('kill -9 of the replica publishing the outbox mid-burst: the other takes over within 5 s, and a subscriber applies every entry once, in order', async () => {
  // The shared broker: a plain, anonymous Mosquitto on loopback.
  const port = await freePort();
  writeFileSync(
    join(dir, 'mosquitto.conf'),
    [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'max_queued_messages 100000', ...(process.getuid?.() === 0 ? ['user root'] : [])].join('\n') + '\n',
  );
  const mosquitto = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  children.push(mosquitto);

  const dbUrl = await freshPgDatabase('mykey_takeover');
  // This process writes the change log as a third party would (another replica, the CLI); it never publishes.
  const store = await openPostgresStore(dbUrl, { poolSize: 4 });
  const links = createLinks({ sql: store.sql, repo: store.links, mykeys: store.mykeys });
  await links.createService({ id: 'library', name: 'Library' });
  const mykeyIds: string[] = [];
  for (let i = 0; i < ENTRIES; i++) {
    const cert = { fingerprint: randomBytes(32).toString('hex'), issuerKey: 'b'.repeat(32), issuerKeyId: 'c'.repeat(40), serialHex: randomBytes(8).toString('hex'), notAfter: Date.now() + 1e10 };
    const r = await store.mykeys.createOrGet(cert, () => randomMyKeyId(randomBytes), Date.now());
    if (!('row' in r)) throw new Error('no MyKey ID');
    for (const identity of [`mykey:${r.row.id}`, `cert:${certIdentity(cert.issuerKey, cert.serialHex)}`])
      await store.links.insertKey('library', CURRENT_KEY_SCHEME, identity, randomBytes(16).toString('base64url'));
    mykeyIds.push(r.row.id);
  }

  const startHub = (name: string) => {
    const r = startReplicaProcess({
      name,
      dir,
      config: {
        dataDir: join(dir, 'data'),
        store: { url: dbUrl, poolSize: 4 },
        http: { port: 0 },
        broker: { port: 0, external: { urls: [`mqtt://127.0.0.1:${port}`], username: 'mykey_hub', password: 'test-only' } },
        brokerAuth: { port: 0 },
        devices: { httpsPort: 0 },
      },
    });
    replicas.push(r);
    return r;
  };
  const a = startHub('a');
  await a.listening();
  await until(() => a.publishingAt !== undefined, { timeoutMs: 30_000, what: 'replica A to take the outbox lock' });
  const b = startHub('b');
  await b.listening();
  assert.is(b.publishingAt, undefined, 'one publisher at a time');

  // The subscriber applies entries as an edge does.
  const sub = await mqtt.connectAsync({ host: '127.0.0.1', port, protocolVersion: 4, clientId: `sub-${randomBytes(4).toString('hex')}`, clean: true, reconnectPeriod: 500 });
  let applied = 0;
  let duplicates = 0;
  const gaps: string[] = [];
  const appliedAt: number[] = [];
  sub.on('message', (_topic, payload) => {
    const v = checkLogPayload(payload);
    if (!v.ok) {
      gaps.push(`bad message: ${v.message}`);
      return;
    }
    for (const e of v.value) {
      if (e.seq <= applied) duplicates++;
      else if (e.seq === applied + 1) {
        applied = e.seq;
        appliedAt.push(Date.now());
      } else gaps.push(`seq ${e.seq} after ${applied}`);
    }
  });
  await sub.subscribeAsync(serviceLogTopic('library'), { qos: 1 });

  // The burst: links written one after another; the publisher is told as a replica would tell it.
  const tell = () => store.sql.run('SELECT pg_notify(?, ?)', [REPLICA_CHANNEL, JSON.stringify({ from: 'test', event: { type: 'outboxWritten' } })]);
  let killedAt = 0;
  for (let i = 0; i < ENTRIES; i++) {
    await links.link({ serviceId: 'library', mykeyId: mykeyIds[i]!, serviceUserId: `U-${String(i).padStart(6, '0')}`, by: 'test' });
    if (i % 10 === 9) await tell();
    // Halfway through the burst, once A has published some of it, A is killed; the rest is written after.
    if (i === ENTRIES / 2) {
      await until(() => applied >= 50, { timeoutMs: 30_000, what: 'the first entries through replica A' });
      a.kill();
      killedAt = a.killedAt!;
    }
  }
  await tell();
  await until(() => b.publishingAt !== undefined, { timeoutMs: 30_000, what: 'replica B to take over the outbox' });
  const takeoverMs = b.publishingAt! - killedAt;
  await until(() => applied >= ENTRIES || gaps.length > 0, { timeoutMs: 60_000, what: `all ${ENTRIES} entries (applied ${applied})` });
  const firstAfter = appliedAt.find((t) => t > b.publishingAt!);
  console.log(
    `outbox takeover: replica B took the publisher lock ${takeoverMs} ms after kill -9 of A (the subscriber's next entry ${firstAfter ? firstAfter - killedAt : '?'} ms after); ${applied} entries applied once and in order, ${duplicates} re-deliveries ignored by seq`,
  );
  assert.equal(gaps, []);
  assert.is(applied, ENTRIES);
  assert.is(await links.headSeq('library'), ENTRIES);
  assert.ok(takeoverMs < 5000, `took over after ${takeoverMs} ms`);
  // Nothing left behind in the outbox.
  await until(async () => (await store.links.pendingMqtt(10)).length === 0, { timeoutMs: 20_000, what: 'an empty outbox' });
  await sub.endAsync(true);
  await b.stop();
  mosquitto.kill('SIGTERM');
  await store.close();
});

test.run();
