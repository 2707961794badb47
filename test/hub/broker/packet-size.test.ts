// The packet-size limit at the MQTT fixed header (hub/broker/packet-guard.ts): an enrolled edge that
// announces a 200 MB PUBLISH, or a 200 MB CONNECT, over real TLS with a real device certificate, is
// cut off at the header, promptly, while the broker's memory does not move; the scanner itself is
// checked as a table over headers split across chunks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { createFixedHeaderScanner } from '../../../hub/broker/packet-guard.ts';
import { aedesTuning, MAX_MQTT_PACKET_BYTES } from '../../../hub/broker/broker.ts';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { edgeStatusTopic } from '../../../shared/topics.ts';
import { startFixture, type EdgeCreds, type Fixture } from './helpers/fixture.ts';
import { until } from '../../helpers/polling.ts';
import { stream, varint } from './helpers/mqtt-wire.ts';

let f: Fixture;
test.before(async () => {
  f = await startFixture();
});
test.after(async () => {
  await f.close();
});

const MB = 1024 * 1024;

/** MQTT 3.1.1 2.2.3 remaining length encoding. */
/** MQTT 3.1.1 1.5.3: a UTF-8 string with its two-byte length. */
const utf8 = (s: string) => [(Buffer.byteLength(s) >> 8) & 0xff, Buffer.byteLength(s) & 0xff, ...Buffer.from(s)];

/** MQTT 3.1.1 3.1: CONNECT, protocol level 4, clean session, keep alive 60 s. */
function connectPacket(clientId: string): Buffer {
  const body = [...utf8('MQTT'), 4, 0x02, 0, 60, ...utf8(clientId)];
  return Buffer.from([0x10, ...varint(body.length), ...body]);
}

/** MQTT 3.1.1 3.3: a QoS 0 PUBLISH whose payload is `payloadBytes` long. */
function publishPacket(topic: string, payloadBytes: number): Buffer {
  const head = utf8(topic);
  return Buffer.concat([Buffer.from([0x30, ...varint(head.length + payloadBytes), ...head]), Buffer.alloc(payloadBytes, 0x20)]);
}

function open(creds: EdgeCreds): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: f.port, ca: f.ca.certPem, cert: creds.certPem, key: creds.keyPem }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends CONNECT and resolves once CONNACK 0 arrives. */
async function session(creds: EdgeCreds): Promise<TLSSocket> {
  const s = await open(creds);
  const connack = new Promise<Buffer>((resolve) => s.once('data', resolve));
  s.write(connectPacket(creds.edgeId));
  const a = await connack;
  assert.equal([...a.subarray(0, 4)], [0x20, 0x02, 0x00, 0x00], 'CONNACK accepted');
  return s;
}

/** Samples the process's buffer memory while `work` runs; resolves with the peak growth in bytes. */
async function peakGrowth<T>(work: () => Promise<T>): Promise<{ value: T; grew: number }> {
  const base = process.memoryUsage();
  let peak = 0;
  const sample = () => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.arrayBuffers - base.arrayBuffers, m.rss - base.rss);
  };
  const timer = setInterval(sample, 5);
  try {
    const value = await work();
    sample();
    return { value, grew: peak };
  } finally {
    clearInterval(timer);
  }
}

const refusals = (code: string) => f.broker.refusals()[code] ?? 0;

test('the scanner judges every fixed header, however the stream is cut', () => {
  const limit = 1000;
  const ok = Buffer.concat([Buffer.from([0xc0, 0x00]), publishPacket('a/b', 900), Buffer.from([0xe0, 0x00]), publishPacket('x', 10)]);
  const big = Buffer.from([0x30, ...varint(200 * MB)]);
  const cases: [string, Buffer, string | undefined][] = [
    ['PINGREQ, PUBLISHes under the limit, DISCONNECT', ok, undefined],
    ['a PUBLISH announcing 200 MB', Buffer.concat([ok, big]), 'mqtt_packet_too_large'],
    ['a CONNECT announcing limit + 1', Buffer.from([0x10, ...varint(limit + 1)]), 'mqtt_packet_too_large'],
    ['a packet of exactly the limit', Buffer.concat([Buffer.from([0x30, ...varint(limit)]), Buffer.alloc(limit)]), undefined],
    ['five remaining-length bytes', Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]), 'mqtt_packet_malformed'],
  ];
  for (const [name, bytes, code] of cases) {
    for (const cut of [1, 2, 3, 7, bytes.length]) {
      const s = createFixedHeaderScanner(limit);
      let v: ReturnType<typeof s.push> = { ok: true };
      for (let i = 0; i < bytes.length && v.ok; i += cut) v = s.push(bytes.subarray(i, i + cut));
      assert.is(v.ok ? undefined : v.code, code, `${name}, chunks of ${cut}`);
    }
  }
  // A 200 MB announcement is refused on its second length byte already (the lower bound exceeds the limit).
  assert.is(createFixedHeaderScanner(limit).push(Buffer.from([0x30, 0xff, 0xff])).ok, false);
});

test('an enrolled edge announcing a 200 MB PUBLISH is cut off at the fixed header; memory does not move', async () => {
  const edges = await Promise.all([1, 2, 3].map((i) => f.enroll(`edge-big-${i}`, 'library')));
  const sockets = await Promise.all(edges.map(session));
  const before = refusals('mqtt_packet_too_large');
  const header = Buffer.from([0x30, ...varint(200 * MB)]);
  // Three edges at once, each streaming up to 64 MB into its announced 200 MB.
  const { value: runs, grew } = await peakGrowth(() => Promise.all(sockets.map((s) => stream(s, header, 64 * MB))));
  for (const r of runs) {
    assert.ok(r.closed, 'the hub closed the connection');
    assert.ok(r.sent < 8 * MB, `closed after ${r.sent} bytes`);
    assert.ok(r.ms < 3000, `closed after ${r.ms} ms`);
  }
  assert.ok(grew < 8 * MB, `memory grew by ${(grew / MB).toFixed(1)} MB`);
  assert.is(refusals('mqtt_packet_too_large') - before, 3);
  await until(() => edges.every((e) => !f.broker.connectedEdges().includes(e.edgeId)), { what: 'edges offline' });
  const line = f.logs.find((l) => l.code === 'mqtt_packet_too_large');
  assert.match(String(line?.edgeId), /^edge-big-[123]$/, 'logged with the edge id');
  assert.is(line?.packetType, 3);
});

test('a CONNECT announcing 200 MB is cut off before the broker reads it', async () => {
  const edge = await f.enroll('edge-big-connect', 'library');
  const s = await open(edge);
  const before = refusals('mqtt_packet_too_large');
  const { value: r, grew } = await peakGrowth(() => stream(s, Buffer.from([0x10, ...varint(200 * MB)]), 64 * MB));
  assert.ok(r.closed && r.sent < 8 * MB, `closed: ${r.closed} after ${r.sent} bytes`);
  assert.ok(grew < 8 * MB, `memory grew by ${(grew / MB).toFixed(1)} MB`);
  assert.is(refusals('mqtt_packet_too_large') - before, 1);
});

test('a malformed remaining length closes the connection with its own code', async () => {
  const edge = await f.enroll('edge-malformed', 'library');
  const s = await session(edge);
  const r = await stream(s, Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]), 64 * MB);
  assert.ok(r.closed && r.sent < 8 * MB, `closed: ${r.closed} after ${r.sent} bytes`);
  assert.is(refusals('mqtt_packet_malformed'), 1);
});

test('a packet under the limit reaches the hooks: an oversized status payload gets payload_too_large, not the guard', async () => {
  const edge = await f.enroll('edge-under', 'library');
  const s = await session(edge);
  const before = { guard: refusals('mqtt_packet_too_large'), hook: refusals('payload_too_large') };
  const pkt = publishPacket(edgeStatusTopic(edge.edgeId), MAX_MQTT_PACKET_BYTES - 200);
  assert.ok(pkt.length - 5 <= MAX_MQTT_PACKET_BYTES);
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.on('error', () => undefined);
  s.write(pkt);
  await closed; // [MQTT-3.3.5-2] an unauthorized PUBLISH closes the connection
  assert.is(refusals('mqtt_packet_too_large'), before.guard);
  assert.is(refusals('payload_too_large') - before.hook, 1);
});

test('every tuning option the hub gives aedes is one the installed aedes has (and none is a packet-size limit)', () => {
  // aedes copies unknown options without a word: an option it does not have would protect nothing.
  const src = readFileSync(fileURLToPath(import.meta.resolve('aedes')), 'utf8');
  const block = /const defaultOptions = \{([\s\S]*?)\n\}/.exec(src)?.[1] ?? '';
  const known = new Set([...block.matchAll(/^\s*(\w+):/gm)].map((m) => m[1]));
  assert.ok(known.has('concurrency') && known.has('authorizePublish'), 'read aedes defaultOptions');
  for (const key of Object.keys(aedesTuning({}))) assert.ok(known.has(key), `aedes has no option ${key}`);
  assert.not.ok(
    [...known].some((k) => /packet/i.test(k)),
    'aedes grew a packet-size option: use it instead of packet-guard.ts',
  );
});

test.run();
