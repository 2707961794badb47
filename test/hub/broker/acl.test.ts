// What a connected edge may subscribe to and publish: only its own topics, exact names, valid
// payloads. Refused subscriptions get SUBACK 0x80 and the connection stays; refused publishes close
// the connection [MQTT-3.3.5-2]. Each refusal is logged with its code, and a good edge keeps
// receiving throughout.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MqttClient } from 'mqtt';
import { MAX_SYNC_PAYLOAD_BYTES } from '../../../shared/sync.ts';
import { edgeCommandTopic, edgeReplyTopic, edgeStatusTopic, serviceLogTopic } from '../../../shared/topics.ts';
import { closed, nextMessage, startFixture, status, type EdgeCreds, type Fixture } from './helpers/fixture.ts';

let f: Fixture;
let good: MqttClient;
let bad: EdgeCreds;
let goodCreds: EdgeCreds;
const received: string[] = [];

test.before(async () => {
  f = await startFixture();
  goodCreds = await f.enroll('edge-good', 'library');
  bad = await f.enroll('edge-bad', 'library');
  await f.enroll('edge-museum', 'museum');
  good = await f.connect(goodCreds);
  await good.subscribeAsync([serviceLogTopic('library'), edgeCommandTopic('edge-good')], { qos: 1 });
  good.on('message', (topic, payload) => received.push(`${topic} ${payload}`));
});
test.after(async () => {
  await f.close();
});

const lastCode = () => f.logs.at(-1)?.code;

const refusedSubscriptions: Array<[string, string]> = [
  ['a multi-level wildcard', '#'],
  ['a single-level wildcard over service logs', 'mykey/v1/svc/+/log'],
  ['a wildcard over edge topics', 'mykey/v1/edge/#'],
  ['another service’s change log', serviceLogTopic('museum')],
  ['another edge’s command topic', edgeCommandTopic('edge-good')],
  ['another edge’s status', edgeStatusTopic('edge-good')],
  ['the $SYS tree', '$SYS/#'],
  ['an unknown topic', 'mykey/v1/anything'],
];

for (const [what, topic] of refusedSubscriptions) {
  test(`refuses subscribing to ${what} with SUBACK 0x80 and keeps the connection`, async () => {
    const c = await f.connect(bad);
    // SUBACK 0x80 (MQTT 3.1.1 3.9.3): mqtt.js 5 turns a failure return code into a rejection.
    const err = await c.subscribeAsync(topic, { qos: 1 }).then(
      () => undefined,
      (e: Error) => e,
    );
    assert.match(String(err?.message), /Subscribe error/);
    assert.is(lastCode(), 'topic_forbidden');
    assert.ok(c.connected);
    c.end(true);
  });
}

test('grants its own service log and command topic', async () => {
  const c = await f.connect(bad);
  const granted = await c.subscribeAsync([serviceLogTopic('library'), edgeCommandTopic('edge-bad')], { qos: 1 });
  assert.equal(
    granted.map((g) => g.qos),
    [1, 1],
  );
  c.end(true);
});

const big = Buffer.alloc(MAX_SYNC_PAYLOAD_BYTES + 1, 0x20);
const refusedPublishes: Array<[string, () => string, () => Buffer | string, string]> = [
  ['on a service log topic (hub topics are the hub’s)', () => serviceLogTopic('library'), () => '{"seq":99}', 'topic_forbidden'],
  ['on another edge’s command topic', () => edgeCommandTopic('edge-good'), () => '{"transaction":"x","command":"ping"}', 'topic_forbidden'],
  ['another edge’s status', () => edgeStatusTopic('edge-good'), () => JSON.stringify(status(goodCreds)), 'topic_forbidden'],
  ['on an unknown topic', () => 'mykey/v1/unknown', () => '{}', 'topic_forbidden'],
  ['a status that is not JSON', () => edgeStatusTopic('edge-bad'), () => 'online!', 'validation_failed'],
  ['a status that does not match the schema', () => edgeStatusTopic('edge-bad'), () => JSON.stringify({ ...status(bad), appliedSeq: -1 }), 'validation_failed'],
  ['a status with an extra field', () => edgeStatusTopic('edge-bad'), () => JSON.stringify({ ...status(bad), lastCard: 'x' }), 'validation_failed'],
  ['a status speaking for another edge', () => edgeStatusTopic('edge-bad'), () => JSON.stringify(status(goodCreds)), 'device_id_mismatch'],
  ['a status naming another service', () => edgeStatusTopic('edge-bad'), () => JSON.stringify({ ...status(bad), serviceId: 'museum' }), 'device_id_mismatch'],
  ['an oversized status', () => edgeStatusTopic('edge-bad'), () => big, 'payload_too_large'],
  ['a reply that is not an envelope', () => edgeReplyTopic('edge-bad'), () => '[1,2]', 'validation_failed'],
];

for (const [what, topic, payload, code] of refusedPublishes) {
  test(`refuses publishing ${what}, logs ${code} and closes that connection`, async () => {
    const c = await f.connect(bad);
    const gone = closed(c);
    c.publish(topic(), payload(), { qos: 1 });
    await gone;
    assert.is(lastCode(), code);
  });
}

test('accepts its own status and command reply', async () => {
  const c = await f.connect(bad);
  await c.publishAsync(edgeStatusTopic('edge-bad'), JSON.stringify(status(bad, { appliedSeq: 3 })), { qos: 1, retain: true });
  await c.publishAsync(edgeReplyTopic('edge-bad'), JSON.stringify({ transaction: 't1', ok: true, data: {} }), { qos: 1 });
  assert.ok(c.connected);
  c.end(true);
});

test('nothing an edge published reached the good edge, and the good edge still receives the hub’s messages', async () => {
  assert.ok(good.connected);
  const got = nextMessage(good, edgeCommandTopic('edge-good'));
  await f.broker.publish(edgeCommandTopic('edge-good'), JSON.stringify({ transaction: 't2', command: 'ping' }));
  assert.is(JSON.parse((await got).toString()).command, 'ping');
  assert.equal(received, [`${edgeCommandTopic('edge-good')} {"transaction":"t2","command":"ping"}`]);
});

test('the hub refuses to publish outside the protocol topics or above the size limit', async () => {
  let e1: unknown;
  await f.broker.publish('other/topic', 'x').catch((e) => (e1 = e));
  assert.is((e1 as { code?: string }).code, 'topic_forbidden');
  let e2: unknown;
  await f.broker.publish(serviceLogTopic('library'), big).catch((e) => (e2 = e));
  assert.is((e2 as { code?: string }).code, 'payload_too_large');
});

test.run();
