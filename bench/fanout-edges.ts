// Child process of the fan-out benchmark: a slice of the 1,000 edges, each an mqtt.js client over TLS
// with its own device certificate, connected the way a real edge is (client id = edge id, clean=false,
// a will on its status topic, subscribed at QoS 1 to its service log and its command topic, one
// retained status on connect). For every change-log message it reports when the last of its edges had
// it, by the seq of the message's last entry (a v1 entry or a v2 batch, shared/sync.ts): read from the
// bytes without parsing them, since 1,000 edges share this machine's cores here, where a real edge
// has a board of its own.
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
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
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
const arrivals = new Map<number, { count: number; max: number; min: number }>();
let expected = 0;

function statusOf(c: Creds, online: boolean): string {
  return JSON.stringify({ edgeId: c.edgeId, serviceId: c.serviceId, online, appliedSeq: 0, version: 'bench', health: 'ok', at: new Date().toISOString() });
}

const SEQ = Buffer.from('"seq":');
const REMOVE = Buffer.from('"remove":');
/**
 * The seq of the last entry in a log message: a v1 entry's `seq`, or a v2 batch's first `seq` plus
 * its entries, counted by their one `remove` each (keys are base64url: no quote inside them).
 */
function lastSeq(payload: Buffer): number {
  let i = payload.indexOf(SEQ) + SEQ.length;
  let seq = 0;
  for (let c = payload[i]; c >= 0x30 && c <= 0x39; c = payload[++i]) seq = seq * 10 + (c - 0x30);
  if (payload[5] !== 0x32 || payload[1] !== 0x22 || payload[2] !== 0x76) return seq; // not {"v":2
  let n = 0;
  for (let at = payload.indexOf(REMOVE, i); at >= 0; at = payload.indexOf(REMOVE, at + REMOVE.length)) n++;
  return seq + n - 1;
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
  client.on('message', (topic, payload) => {
    const t = wall();
    if (topic !== log || !track) return;
    const seq = lastSeq(payload);
    let a = arrivals.get(seq);
    if (!a) {
      a = { count: 0, max: 0, min: Infinity };
      arrivals.set(seq, a);
    }
    a.count++;
    if (t > a.max) a.max = t;
    if (t < a.min) a.min = t;
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
      send({ type: 'ready', connected: list.length, expected, ms: performance.now() - t0 });
    } catch (e) {
      send({ type: 'error', error: String(e) });
    }
  } else if (m.type === 'disconnect') {
    await Promise.all((clients.get(m.target) ?? []).map((c) => c.endAsync().catch(() => undefined)));
    clients.delete(m.target);
    send({ type: 'disconnected' });
  } else if (m.type === 'exit') {
    for (const list of clients.values()) for (const c of list) c.end(true);
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
