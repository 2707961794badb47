// Edge status reaches the device repo (online, last seen, applied sequence, version, health, lag),
// the will marks an edge offline, and revoking a connected device drops it at once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { edgeStatusTopic, serviceLogTopic } from '../../../shared/topics.ts';
import { closed, nextMessage, startFixture, status, type Fixture } from './helpers/fixture.ts';
import { until } from '../../helpers/polling.ts';

let f: Fixture;
test.before(async () => {
  f = await startFixture();
});
test.after(async () => {
  await f.close();
});

test('a status message records online, applied seq, version, health and lag = head - applied', async () => {
  const edge = await f.enroll('edge-a', 'library');
  f.heads.set('library', 12);
  const c = await f.connect(edge);
  await c.publishAsync(edgeStatusTopic('edge-a'), JSON.stringify(status(edge, { appliedSeq: 9, version: '1.2.3', health: 'degraded' })), { qos: 1, retain: true });
  await until(async () => (await f.devices.get('edge-a'))?.applied_seq === 9, { what: 'status recorded' });
  const row = (await f.devices.get('edge-a'))!;
  assert.is(row.online, 1);
  assert.is(row.version, '1.2.3');
  assert.is(row.health, 'degraded');
  assert.is(row.lag, 3);
  assert.ok(row.last_seen_at! > Date.now() - 10_000);
  assert.equal(
    (await f.devices.lagHistory('edge-a')).map((s) => s.lag),
    [3],
  );
  c.end(true);
});

test('the will marks the edge offline when its connection drops', async () => {
  const edge = await f.enroll('edge-b', 'library');
  const c = await f.connect(edge, { will: { topic: edgeStatusTopic('edge-b'), payload: Buffer.from(JSON.stringify(status(edge, { online: false, appliedSeq: 4 }))), qos: 1, retain: true } });
  await until(async () => (await f.devices.get('edge-b'))?.online === 1, { what: 'online' });
  // An unclean end (no DISCONNECT) publishes the will (MQTT 3.1.1 3.1.2.5).
  c.stream.destroy();
  await until(async () => (await f.devices.get('edge-b'))?.online === 0, { what: 'offline' });
  assert.is((await f.devices.get('edge-b'))?.applied_seq, 4);
});

test('an edge without a will is marked offline when it disconnects', async () => {
  const edge = await f.enroll('edge-c', 'library');
  const c = await f.connect(edge);
  await until(async () => (await f.devices.get('edge-c'))?.online === 1, { what: 'online' });
  await c.endAsync();
  await until(async () => (await f.devices.get('edge-c'))?.online === 0, { what: 'offline' });
});

test('a second connection of the same edge takes over without marking it offline', async () => {
  const edge = await f.enroll('edge-d', 'library');
  const first = await f.connect(edge);
  const gone = closed(first);
  const second = await f.connect(edge);
  await gone;
  await new Promise((r) => setTimeout(r, 100));
  assert.is((await f.devices.get('edge-d'))?.online, 1);
  assert.equal(
    f.broker.connectedEdges().filter((e) => e === 'edge-d'),
    ['edge-d'],
  );
  second.end(true);
});

test('the will of a replaced connection does not mark the edge offline', async () => {
  const edge = await f.enroll('edge-h', 'library');
  const will = { topic: edgeStatusTopic('edge-h'), payload: Buffer.from(JSON.stringify(status(edge, { online: false }))), qos: 1 as const, retain: true };
  const first = await f.connect(edge, { will });
  const gone = closed(first);
  const second = await f.connect(edge, { will });
  await gone;
  await new Promise((r) => setTimeout(r, 150));
  assert.is((await f.devices.get('edge-h'))?.online, 1);
  second.end(true);
});

test('revoking a connected device disconnects it at once and it cannot come back', async () => {
  const edge = await f.enroll('edge-e', 'library');
  const other = await f.enroll('edge-f', 'library');
  const c = await f.connect(edge);
  const o = await f.connect(other);
  await o.subscribeAsync(serviceLogTopic('library'), { qos: 1 });
  const gone = closed(c, 1000);
  const r = await f.enrollment.revoke('edge-e', 'stolen');
  assert.ok(r.ok);
  await gone;
  assert.not.ok(f.broker.connectedEdges().includes('edge-e'));
  assert.is((await f.devices.get('edge-e'))?.status, 'revoked');
  assert.is((await f.refusedConnect(edge)).returnCode, 5);
  // Everyone else is untouched.
  const got = nextMessage(o, serviceLogTopic('library'));
  await f.broker.publish(serviceLogTopic('library'), '{"seq":13}');
  assert.is((await got).toString(), '{"seq":13}');
  assert.equal((await f.enrollment.revoke('edge-e', 'again')).ok, false);
  assert.equal((await f.enrollment.revoke('edge-nobody', 'x')).ok, false);
  o.end(true);
});

test('a connection whose certificate expires while connected is closed by the sweep', async () => {
  const { createBroker } = await import('../../../hub/broker/broker.ts');
  const server = await f.ca.serverCredentials();
  let clock = Date.now();
  const b = createBroker({
    deviceCa: f.ca,
    devices: f.devices,
    log: (await import('../../../shared/log.ts')).silentLogger,
    tls: { host: '127.0.0.1', port: 0, serverCert: server.certPem, serverKey: server.keyPem },
    headSeq: async () => 0,
    now: () => clock,
    expirySweepMs: 50,
  });
  const { tlsPort } = await b.start();
  try {
    const edge = await f.enroll('edge-i', 'library', { validityDays: 1 });
    const c = await f.connect(edge, { port: tlsPort });
    const gone = closed(c, 2000);
    clock += 2 * 86400_000;
    await gone;
    assert.equal(b.connectedEdges(), []);
    assert.is(b.refusals().cert_expired, 1);
  } finally {
    await b.stop();
  }
});

test('lag samples are kept per edge up to the cap', async () => {
  const { createDeviceRepo } = await import('../../../hub/store/device-repo.ts');
  const repo = createDeviceRepo(f.db, { lagSamplesPerEdge: 5 });
  await repo.enroll({ edgeId: 'edge-g', serviceId: 'library', certSerial: '01', certFingerprint: 'ff'.repeat(32), notAfter: Date.now() + 1e9 }, Date.now());
  for (let i = 0; i < 12; i++) await repo.recordStatus('edge-g', { online: true, appliedSeq: i, version: 'v', health: 'ok', lag: 12 - i, at: 1000 + i }, true);
  assert.equal(
    (await repo.lagHistory('edge-g')).map((s) => s.applied_seq),
    [7, 8, 9, 10, 11],
  );
  assert.equal((await repo.lagHistory('edge-a')).length, 1);
});

test.run();
