// A change-log message goes to every edge under one packet identifier and is written to all of them
// from one encoding (hub/broker/encoded-publish.ts): what each edge gets over real TLS is still a
// correct MQTT 3.1.1 PUBLISH, QoS 1, with the payload intact. A session keeps the edge's commands
// (acknowledged ones are not sent again, an unacknowledged one comes back with its identifier) and no
// change-log message (hub/broker/session-store.ts).
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqttPacket, { type IPublishPacket as WirePublish } from 'mqtt-packet';
import { Writable } from 'node:stream';
import { encodedPublishCounts, installEncodedPublishWrites } from '../../../hub/broker/encoded-publish.ts';
import { edgeCommandTopic, serviceLogTopic } from '../../../shared/topics.ts';
import { until } from '../../helpers/polling.ts';
import { type EdgeCreds, type Fixture, startFixture } from './helpers/fixture.ts';

interface Got {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

/** Connects an edge (a resumed session: no SUBSCRIBE) and records every PUBLISH it gets. */
async function recording(f: Fixture, creds: EdgeCreds, o: Partial<IClientOptions> = {}): Promise<{ client: MqttClient; got: Got[] }> {
  const got: Got[] = [];
  const client = await f.connect(creds, o);
  client.on('message', (topic, payload, packet) => got.push({ topic, payload, packet }));
  return { client, got };
}

/** Connects an edge subscribed at QoS 1 to its service log (or `topic`) and records every PUBLISH it gets. */
async function edge(f: Fixture, creds: EdgeCreds, o: Partial<IClientOptions> = {}, topic = serviceLogTopic(creds.serviceId)): Promise<{ client: MqttClient; got: Got[] }> {
  const e = await recording(f, creds, o);
  await e.client.subscribeAsync(topic, { qos: 1 });
  return e;
}

/**
 * Connects an edge subscribed at QoS 1 to `topics` that takes every PUBLISH and never acknowledges
 * one: mqtt.js sends the PUBACK once handleMessage calls back, and here it never does. `leave()` cuts
 * its connection and waits until the broker has let it go.
 */
async function silentEdge(f: Fixture, creds: EdgeCreds, topics: string[]): Promise<{ held: IPublishPacket[]; leave: () => Promise<void> }> {
  const held: IPublishPacket[] = [];
  const client = await f.connect(creds);
  client.handleMessage = (packet) => void held.push(packet as IPublishPacket);
  await client.subscribeAsync(topics, { qos: 1 });
  return {
    held,
    async leave() {
      client.end(true);
      await until(() => !f.broker.connectedEdges().includes(creds.edgeId), { what: 'the silent edge to be gone' });
    },
  };
}

/** What mqtt-packet's writeToStream (as aedes calls it) puts on a stream, concatenated. */
function written(packet: WirePublish): { bytes: Buffer; error: () => Error | undefined } {
  const chunks: Buffer[] = [];
  let error: Error | undefined;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  sink.on('error', (e) => {
    error = e;
  });
  mqttPacket.writeToStream(packet, sink);
  return { bytes: Buffer.concat(chunks), error: () => error };
}

test('a PUBLISH written again from its encoding is the bytes mqtt-packet encodes for it, header by header', () => {
  installEncodedPublishWrites();
  const payload = randomBytes(1000);
  const base: WirePublish = { cmd: 'publish', topic: 'svc/library/log', payload, qos: 1, messageId: 7, dup: false, retain: false };
  const table: WirePublish[] = [
    base,
    base, // the same header again: written from the first encoding
    { ...base, messageId: 8 },
    { ...base, dup: true },
    { ...base, retain: true },
    { ...base, qos: 0, messageId: undefined },
    { ...base, topic: 'svc/points/log' },
    base,
  ];
  for (const p of table) assert.ok(written(p).bytes.equals(mqttPacket.generate(p)), JSON.stringify({ ...p, payload: p.payload.length }));
});

test('a PUBLISH mqtt-packet refuses still ends the stream with its error', async () => {
  installEncodedPublishWrites();
  const r = written({ cmd: 'publish', topic: 'svc/library/log', payload: Buffer.from('x'), qos: 1, dup: false, retain: false });
  const error = await until(r.error, { what: "the stream's error" });
  assert.match(error.message, /messageId/);
  assert.is(r.bytes.length, 0);
});

test("every edge of a service gets a message under one packet id, each message under its own from the service's counter, payloads intact", async () => {
  const f = await startFixture();
  try {
    const [a1, a2, b1] = await Promise.all([f.enroll('edge-a1', 'library'), f.enroll('edge-a2', 'library'), f.enroll('edge-b1', 'points')]);
    const [e1, e2, e3] = [await edge(f, a1), await edge(f, a2), await edge(f, b1)];
    const before = encodedPublishCounts();
    // A large batch (the burst's 64 KiB kind), another service's message in between, a small one.
    const library = [randomBytes(60_000), Buffer.from('{"seq":2}'), randomBytes(3000)];
    const points = Buffer.from('{"seq":7}');
    await f.broker.publish(serviceLogTopic('library'), library[0]);
    await f.broker.publish(serviceLogTopic('points'), points);
    await f.broker.publish(serviceLogTopic('library'), library[1]);
    await f.broker.publish(serviceLogTopic('library'), library[2]);
    await until(() => e1.got.length === 3 && e2.got.length === 3 && e3.got.length === 1, { what: 'every message at every edge' });

    for (const e of [e1, e2]) {
      assert.equal(
        e.got.map((g) => g.topic),
        Array(3).fill(serviceLogTopic('library')),
      );
      e.got.forEach((g, i) => {
        assert.ok(g.payload.equals(library[i]), `payload ${i} intact`);
        assert.is(g.packet.qos, 1);
        assert.is(g.packet.retain, false);
        assert.is(g.packet.dup, false);
      });
    }
    assert.ok(e3.got[0].payload.equals(points));
    const ids = e1.got.map((g) => g.packet.messageId);
    assert.equal(
      e2.got.map((g) => g.packet.messageId),
      ids,
      'the same packet ids at both edges',
    );
    assert.is(new Set(ids).size, 3, 'one packet id per message');
    // Each service draws its own: the other service's message took no number from the library's.
    const first = ids[0] ?? 0;
    assert.equal(ids, [first, first + 1, first + 2]);
    for (const id of ids) assert.ok(typeof id === 'number' && id >= 1 && id <= 65535, 'MQTT 3.1.1 2.3.1: a non-zero 16-bit identifier');
    const after = encodedPublishCounts();
    assert.ok(after.reused - before.reused >= 3, 'the second edge got the bytes encoded for the first');
  } finally {
    await f.close();
  }
});

test('an acknowledged command is not sent again when the edge resumes its session; one sent while it was away is', async () => {
  const f = await startFixture();
  try {
    const a1 = await f.enroll('edge-a1', 'library');
    const cmd = edgeCommandTopic('edge-a1');
    const first = await edge(f, a1, {}, cmd);
    await f.broker.publish(cmd, Buffer.from('{"c":1}'));
    await until(() => first.got.length === 1, { what: 'the first command' });
    // A graceful end: the PUBACK is on the wire before the DISCONNECT.
    await first.client.endAsync();
    await f.broker.publish(cmd, Buffer.from('{"c":2}'));
    const again = await edge(f, a1, {}, cmd);
    await f.broker.publish(cmd, Buffer.from('{"c":3}'));
    await until(() => again.got.length >= 2, { what: 'the queued and the new command' });
    assert.equal(
      again.got.map((g) => g.payload.toString()),
      ['{"c":2}', '{"c":3}'],
    );
    assert.is.not(again.got[0].packet.messageId, again.got[1].packet.messageId);
  } finally {
    await f.close();
  }
});

test('an unacknowledged command comes back under its packet id when the edge resumes its session', async () => {
  const f = await startFixture();
  try {
    const a1 = await f.enroll('edge-a1', 'library');
    const cmd = edgeCommandTopic('edge-a1');
    const { held, leave } = await silentEdge(f, a1, [cmd]);
    const payload = randomBytes(20_000);
    await f.broker.publish(cmd, payload);
    await until(() => held.length === 1, { what: 'the command at the edge' });
    await leave();

    const { got } = await recording(f, a1);
    await until(() => got.length === 1, { what: 'the redelivery' });
    assert.ok(got[0].payload.equals(payload));
    assert.is(got[0].packet.messageId, held[0].messageId, '[MQTT-4.4.0-1] the same packet id');
  } finally {
    await f.close();
  }
});

test('no change-log message is kept for a session: neither one sent while the edge was away nor one it left unacknowledged comes back (it catches up through /changes)', async () => {
  const f = await startFixture();
  try {
    const [a1, a2] = await Promise.all([f.enroll('edge-a1', 'library'), f.enroll('edge-a2', 'library')]);
    const cmd = edgeCommandTopic('edge-a1');
    const other = await edge(f, a2);
    // The edge takes a log message and never acknowledges it.
    const { held, leave } = await silentEdge(f, a1, [serviceLogTopic('library'), cmd]);
    await f.broker.publish(serviceLogTopic('library'), Buffer.from('{"seq":1}'));
    await until(() => held.length === 1 && other.got.length === 1, { what: 'the message at both edges' });
    await leave();
    // While it is away: a log message (kept for no session) and a command (kept for its session).
    await f.broker.publish(serviceLogTopic('library'), Buffer.from('{"seq":2}'));
    await f.broker.publish(cmd, Buffer.from('{"c":1}'));
    await until(() => other.got.length === 2, { what: 'the connected edge to get the second' });

    const { got } = await recording(f, a1);
    // A queued message goes out before anything new: had a log message been kept, it would come first.
    await until(() => got.length >= 1, { what: 'the queued command' });
    await f.broker.publish(serviceLogTopic('library'), Buffer.from('{"seq":3}'));
    await until(() => got.length >= 2, { what: 'the next log message' });
    assert.equal(
      got.map((g) => `${g.topic} ${g.payload.toString()}`),
      [`${cmd} {"c":1}`, `${serviceLogTopic('library')} {"seq":3}`],
    );
  } finally {
    await f.close();
  }
});

test.run();
