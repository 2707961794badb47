// Who may connect: enrolled edges with their current certificate and their own client id. Refusals
// at the TLS handshake (unknown CA, expired) and at CONNACK (revoked, unknown, foreign id, foreign
// will), each logged with its code, while a good edge stays connected throughout.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { openDeviceCa } from '../../../hub/pki/device-ca.ts';
import { edgeStatusTopic, serviceLogTopic, edgeCommandTopic } from '../../../shared/topics.ts';
import { nextMessage, startFixture, status, type Fixture } from './helpers/fixture.ts';

let f: Fixture;
test.before(async () => {
  f = await startFixture({ plain: true });
});
test.after(async () => {
  await f.close();
});

const codes = () => f.logs.map((l) => l.code);

test('an enrolled edge connects and subscribes to its service log and its command topic', async () => {
  const edge = await f.enroll('edge-good', 'library');
  const c = await f.connect(edge);
  const granted = await c.subscribeAsync([serviceLogTopic('library'), edgeCommandTopic('edge-good')], { qos: 1 });
  assert.equal(
    granted.map((g) => g.qos),
    [1, 1],
  );
  assert.equal(f.broker.connectedEdges(), ['edge-good']);
  assert.is((await f.devices.get('edge-good'))?.online, 1);
  const got = nextMessage(c, serviceLogTopic('library'));
  await f.broker.publish(serviceLogTopic('library'), '{"seq":1}');
  assert.is((await got).toString(), '{"seq":1}');
  c.end(true);
});

test('a certificate from an unknown CA is refused at the TLS handshake', async () => {
  const other = await openDeviceCa(join(f.dir, 'other-ca'));
  const edge = await f.enroll('edge-foreign', 'library', { ca: other });
  const r = await f.refusedConnect(edge);
  assert.is(r.returnCode, undefined);
  await new Promise((res) => setTimeout(res, 50));
  assert.ok(codes().includes('cert_unknown_issuer'), JSON.stringify(f.logs));
});

test('an expired device certificate is refused with CONNACK 5 (so the edge knows to re-enroll)', async () => {
  const past = await openDeviceCa(join(f.dir, 'device-ca'), { now: () => new Date(Date.now() - 3 * 24 * 3600_000) });
  const edge = await f.enroll('edge-expired', 'library', { ca: past, validityDays: 1 });
  const r = await f.refusedConnect(edge);
  assert.is(r.returnCode, 5);
  assert.ok(codes().includes('cert_expired'), JSON.stringify(codes()));
});

test('a device certificate that is not yet valid is refused with CONNACK 5', async () => {
  const future = await openDeviceCa(join(f.dir, 'device-ca'), { now: () => new Date(Date.now() + 3 * 24 * 3600_000) });
  const edge = await f.enroll('edge-future', 'library', { ca: future, validityDays: 30 });
  const r = await f.refusedConnect(edge);
  assert.is(r.returnCode, 5);
  assert.ok(codes().includes('cert_not_yet_valid'), JSON.stringify(codes()));
});

test('an expired certificate from an unknown CA is still closed at the TLS handshake', async () => {
  const before = codes().filter((c) => c === 'cert_unknown_issuer').length;
  const other = await openDeviceCa(join(f.dir, 'other-old-ca'), { now: () => new Date(Date.now() - 3 * 24 * 3600_000) });
  const edge = await f.enroll('edge-stranger', 'library', { ca: other, validityDays: 1 });
  const r = await f.refusedConnect(edge);
  assert.is(r.returnCode, undefined);
  await new Promise((res) => setTimeout(res, 50));
  assert.is(codes().filter((c) => c === 'cert_unknown_issuer').length, before + 1, JSON.stringify(codes()));
});

test('a revoked device is refused with CONNACK 5 (not authorized)', async () => {
  const edge = await f.enroll('edge-revoked', 'library');
  assert.ok((await f.enrollment.revoke('edge-revoked', 'stolen')).ok);
  const r = await f.refusedConnect(edge);
  assert.is(r.returnCode, 5);
  assert.ok(codes().includes('device_revoked'));
});

test('a certificate the repo does not know (never enrolled) is refused with CONNACK 5', async () => {
  const edge = await f.enroll('edge-unrecorded', 'library', { record: false });
  const r = await f.refusedConnect(edge);
  assert.is(r.returnCode, 5);
  assert.ok(codes().includes('device_unknown'));
});

test('a superseded certificate is refused after the edge re-enrolls', async () => {
  const first = await f.enroll('edge-renewed', 'library');
  const second = await f.enroll('edge-renewed', 'library');
  const r = await f.refusedConnect(first);
  assert.is(r.returnCode, 5);
  const c = await f.connect(second);
  c.end(true);
});

test('an edge claiming another edge id is refused with CONNACK 2 (identifier rejected)', async () => {
  const edge = await f.enroll('edge-liar', 'library');
  const r = await f.refusedConnect(edge, { clientId: 'edge-good' });
  assert.is(r.returnCode, 2);
  assert.ok(codes().includes('device_id_mismatch'));
});

test('a will on another topic, speaking for another edge, saying online or not a status is refused with CONNACK 5', async () => {
  const edge = await f.enroll('edge-will', 'library');
  const other = { ...edge, edgeId: 'edge-good' };
  let r = await f.refusedConnect(edge, { will: { topic: edgeStatusTopic('edge-good'), payload: Buffer.from(JSON.stringify(status(other, { online: false }))), qos: 1, retain: true } });
  assert.is(r.returnCode, 5);
  r = await f.refusedConnect(edge, { will: { topic: edgeStatusTopic('edge-will'), payload: Buffer.from(JSON.stringify(status(other, { online: false }))), qos: 1, retain: true } });
  assert.is(r.returnCode, 5);
  r = await f.refusedConnect(edge, { will: { topic: edgeStatusTopic('edge-will'), payload: Buffer.from(JSON.stringify(status(edge, { online: true }))), qos: 1, retain: true } });
  assert.is(r.returnCode, 5);
  r = await f.refusedConnect(edge, { will: { topic: edgeStatusTopic('edge-will'), payload: Buffer.from('offline'), qos: 1, retain: true } });
  assert.is(r.returnCode, 5);
  const c = await f.connect(edge, { will: { topic: edgeStatusTopic('edge-will'), payload: Buffer.from(JSON.stringify(status(edge, { online: false }))), qos: 1, retain: true } });
  c.end(true);
});

test('the plain development listener trusts only enrolled client ids that match the username', async () => {
  const mqtt = (await import('mqtt')).default;
  const base = { host: '127.0.0.1', port: f.plainPort!, protocolVersion: 4 as const, reconnectPeriod: 0, connectTimeout: 3000 };
  const ok = await mqtt.connectAsync({ ...base, clientId: 'edge-good', username: 'edge-good' });
  ok.end(true);
  const refused = await mqtt.connectAsync({ ...base, clientId: 'edge-nobody', username: 'edge-nobody' }).then(
    () => -1,
    (e: { code?: number }) => e.code,
  );
  assert.is(refused, 2);
});

test('a plain listener on a non-loopback address is refused at construction', async () => {
  const { createBroker } = await import('../../../hub/broker/broker.ts');
  assert.throws(
    () =>
      createBroker({
        deviceCa: f.ca,
        devices: f.devices,
        log: { child: () => null } as never,
        tls: { host: '127.0.0.1', port: 0, serverCert: '', serverKey: '' },
        plain: { host: '0.0.0.0', port: 0 },
        headSeq: async () => 0,
      }),
    /loopback/,
  );
});

test('the good edge still receives messages after every refusal', async () => {
  const edge = await f.enroll('edge-good', 'library');
  const c = await f.connect(edge);
  await c.subscribeAsync(serviceLogTopic('library'), { qos: 1 });
  const got = nextMessage(c, serviceLogTopic('library'));
  await f.broker.publish(serviceLogTopic('library'), '{"seq":2}');
  assert.is((await got).toString(), '{"seq":2}');
  c.end(true);
});

test.run();
