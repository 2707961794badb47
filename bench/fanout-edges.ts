// Child process of the fan-out benchmark: a slice of the 1,000 edges, each an mqtt.js client over TLS
// with its own device certificate, connected the way a real edge is (client id = edge id, clean=false,
// a will on its status topic, subscribed at QoS 1 to its service log and its command topic, one
// retained status on connect). For every change-log message it reports when the last of its edges had
// it, by the seq of the message's last entry (a v1 entry, a v2 or v3 batch, shared/sync.ts): read from
// the bytes without parsing them, since 1,000 edges share this machine's cores here, where a real edge
// has a board of its own; or (FANOUT_EDGE_WORK=apply) once each edge has decoded, validated and
// applied it with the edge's own code, as a real edge does.
//
// Clock: arrival times are performance.timeOrigin + performance.now(), the same wall clock with
// sub-millisecond resolution in every process on this machine, so the parent can subtract its own.
//
// A child can hold its edges on two brokers at once (target 'aedes' and 'mosquitto'), so the parent
// can alternate revocations between them and both see the same machine load.
//
// Parent -> child: { type: 'connect', target, port, caPem, credsFile, from, to, service }, { type: 'disconnect', target }, { type: 'exit' }
// Child -> parent: { type: 'ready', connected, expected, ms }, { type: 'got', seq, max, min, count }, { type: 'disconnected' }
import mqtt, { type MqttClient } from 'mqtt';
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { checkLogPayload } from '../edge/sync/log-message.ts';
import { applyEntry } from '../shared/sync.ts';
import { edgeCommandTopic, edgeStatusTopic, serviceLogTopic } from '../shared/topics.ts';

interface Creds {
  edgeId: string;
  serviceId: string;
  certPem: string;
  keyPem: string;
}
type Msg = { type: 'connect'; target: string; port: number; caPem: string; credsFile: string; from: number; to: number; service: string } | { type: 'disconnect'; target: string } | { type: 'exit' };

const send = (m: unknown) => process.send!(m);
const wall = () => performance.timeOrigin + performance.now();

const clients = new Map<string, MqttClient[]>();
let profiler: Session | undefined;
const arrivals = new Map<number, { count: number; max: number; min: number }>();
let expected = 0;
// FANOUT_TRACE: first and last arrival of each message at this child's edges, written at disconnect.
const tracing = process.env.FANOUT_TRACE !== undefined;
const traced = new Map<number, { count: number; min: number; max: number }>();
let outOfOrder = 0;

function statusOf(c: Creds, online: boolean): string {
  return JSON.stringify({ edgeId: c.edgeId, serviceId: c.serviceId, online, appliedSeq: 0, version: 'bench', health: 'ok', at: new Date().toISOString() });
}

const SEQ = Buffer.from('"seq":');
const REMOVE = Buffer.from('"remove":');
const COUNT = Buffer.from(',"n":');
/** The decimal number at `i` (and where it ends). */
function numberAt(payload: Buffer, i: number): [number, number] {
  let x = 0;
  for (let c = payload[i]; c >= 0x30 && c <= 0x39; c = payload[++i]) x = x * 10 + (c - 0x30);
  return [x, i];
}
/**
 * The seq of the last entry in a log message: a v1 entry's `seq`; a v2 batch's first `seq` plus its
 * entries, counted by their one `remove` each (keys are base64url: no quote inside them); a v3
 * batch's first `seq` plus its count `n`, which follows it (shared/sync.ts).
 */
function lastSeq(payload: Buffer): number {
  const [seq, end] = numberAt(payload, payload.indexOf(SEQ) + SEQ.length);
  if (payload[1] !== 0x22 || payload[2] !== 0x76) return seq; // not {"v":
  if (payload[5] === 0x33 && payload.subarray(end, end + COUNT.length).equals(COUNT)) return seq + numberAt(payload, end + COUNT.length)[0] - 1;
  if (payload[5] !== 0x32) return seq;
  let n = 0;
  for (let at = payload.indexOf(REMOVE, end); at >= 0; at = payload.indexOf(REMOVE, at + REMOVE.length)) n++;
  return seq + n - 1;
}

/**
 * FANOUT_EDGE_WORK=apply: each edge does with a log message what a real edge does before its journal:
 * decodes and validates it with the edge's own code (edge/sync/log-message.ts) and applies its entries
 * in seq order to its own map (shared/sync.ts applyEntry); the arrival time is taken after that.
 * Default (`seq`): the last seq is read from the bytes, as above.
 */
const APPLY = process.env.FANOUT_EDGE_WORK === 'apply';
function applied(payload: Buffer, edge: { map: Map<string, string>; seq: number }): number {
  const v = checkLogPayload(payload);
  if (!v.ok) throw new Error(`an edge refused a log message: ${v.code} ${v.message}`);
  for (const e of v.value) {
    // Each bench edge has one client per broker and revocations alternate between them, so a client
    // sees only part of the log: what it skipped went through the other one (a real edge catches up).
    if (applyEntry(edge.map, edge.seq, e) === 'gap') applyEntry(edge.map, e.seq - 1, e);
    edge.seq = Math.max(edge.seq, e.seq);
  }
  return edge.seq;
}

async function connectOne(c: Creds, port: number, caPem: string, service: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync({
    protocol: 'mqtts',
    host: '127.0.0.1',
    port,
    protocolVersion: 4,
    clientId: c.edgeId,
    clean: false,
    keepalive: 60,
    reconnectPeriod: 0,
    connectTimeout: 30_000,
    ca: caPem,
    cert: c.certPem,
    key: c.keyPem,
    will: { topic: edgeStatusTopic(c.edgeId), payload: Buffer.from(statusOf(c, false)), qos: 1, retain: true },
  });
  const log = serviceLogTopic(c.serviceId);
  const track = c.serviceId === service;
  const edge = { map: new Map<string, string>(), seq: 0, last: 0 };
  client.on('message', (topic, payload) => {
    if (topic !== log || !track) return;
    const got = wall();
    const seq = APPLY ? applied(payload, edge) : lastSeq(payload);
    const t = APPLY ? wall() : got;
    // A message older than one this client already had: the broker changed the order of a topic.
    if (seq < edge.last) outOfOrder++;
    edge.last = Math.max(edge.last, seq);
    let a = arrivals.get(seq);
    if (!a) {
      a = { count: 0, max: 0, min: Infinity };
      arrivals.set(seq, a);
    }
    a.count++;
    if (t > a.max) a.max = t;
    if (t < a.min) a.min = t;
    if (tracing) {
      const tr = traced.get(seq) ?? { count: 0, min: Infinity, max: 0 };
      tr.count++;
      tr.min = Math.min(tr.min, t);
      tr.max = Math.max(tr.max, t);
      traced.set(seq, tr);
    }
    if (a.count === expected) {
      send({ type: 'got', seq, max: a.max, min: a.min, count: a.count });
      arrivals.delete(seq);
    }
  });
  await client.subscribeAsync([log, edgeCommandTopic(c.edgeId)], { qos: 1 });
  await client.publishAsync(edgeStatusTopic(c.edgeId), statusOf(c, true), { qos: 1, retain: true });
  return client;
}

process.on('message', async (m: Msg) => {
  if (m.type === 'connect') {
    const all = JSON.parse(readFileSync(m.credsFile, 'utf8')) as Creds[];
    const mine = all.slice(m.from, m.to);
    expected = mine.filter((c) => c.serviceId === m.service).length;
    const list: MqttClient[] = [];
    clients.set(m.target, list);
    const t0 = performance.now();
    let next = 0;
    // A bounded number of handshakes at a time, as a fleet coming back after an outage would not be.
    const worker = async () => {
      while (next < mine.length) {
        const c = mine[next++];
        list.push(await connectOne(c, m.port, m.caPem, m.service));
      }
    };
    try {
      await Promise.all(Array.from({ length: 16 }, worker));
      // FANOUT_PROFILE_EDGES=<prefix>: a CPU profile of this child from its last connect to its first disconnect.
      if (process.env.FANOUT_PROFILE_EDGES && m.target === 'mosquitto') {
        profiler = new Session();
        profiler.connect();
        await profiler.post('Profiler.enable');
        await profiler.post('Profiler.start');
      }
      send({ type: 'ready', connected: list.length, expected, ms: performance.now() - t0 });
    } catch (e) {
      send({ type: 'error', error: String(e) });
    }
  } else if (m.type === 'disconnect') {
    if (profiler) {
      const { profile } = await profiler.post('Profiler.stop');
      writeFileSync(`${process.env.FANOUT_PROFILE_EDGES}-${process.pid}.cpuprofile`, JSON.stringify(profile));
      profiler.disconnect();
      profiler = undefined;
    }
    if (tracing && traced.size > 0) {
      process.stderr.write(
        `  edges ${process.pid} (${outOfOrder} out of order): ${[...traced].map(([seq, tr]) => `${seq}:${tr.count}@${Math.round(tr.min) % 100_000}..${Math.round(tr.max) % 100_000}`).join(' ')}\n`,
      );
      traced.clear();
    }
    await Promise.all((clients.get(m.target) ?? []).map((c) => c.endAsync().catch(() => undefined)));
    clients.delete(m.target);
    send({ type: 'disconnected' });
  } else if (m.type === 'exit') {
    for (const list of clients.values()) for (const c of list) c.end(true);
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
