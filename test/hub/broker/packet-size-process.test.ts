// The attack of the review, measured on the hub's own process: a hub runs in a child process; three
// enrolled edges at once each announce a 200 MB PUBLISH over real TLS and stream into it. Before the
// fixed-header limit the hub's RSS went from 114 to 1150 MB; now each connection is closed at the
// header and the hub's peak memory stays within a few MB.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { stream, varint } from './helpers/mqtt-wire.ts';

const MB = 1024 * 1024;

interface Ready {
  port: number;
  ca: string;
  edges: { edgeId: string; certPem: string; keyPem: string }[];
}
interface Mem {
  rss: number;
  arrayBuffers: number;
  peakRss: number;
  peakArrayBuffers: number;
  refusals: Record<string, number>;
}

let child: ChildProcessWithoutNullStreams;
let lines: AsyncIterator<string>;
let rl: Interface;
let ready: Ready;

async function next<T>(): Promise<T> {
  const r = await lines.next();
  if (r.done) throw new Error('the hub process ended');
  return JSON.parse(r.value) as T;
}
async function mem(): Promise<Mem> {
  child.stdin.write('mem\n');
  return next<Mem>();
}

test.before(async () => {
  child = spawn(process.execPath, ['--import', 'tsx', 'test/hub/broker/helpers/hub-process.ts', '3'], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stderr.resume();
  rl = createInterface({ input: child.stdout });
  lines = rl[Symbol.asyncIterator]();
  ready = await next<Ready>();
});
test.after(async () => {
  child.stdin.write('stop\n');
  await new Promise((r) => child.once('exit', r));
  rl.close();
});
const str = (s: string) => [0, Buffer.byteLength(s), ...Buffer.from(s)];

async function session(e: Ready['edges'][number]): Promise<TLSSocket> {
  const s = await new Promise<TLSSocket>((resolve, reject) => {
    const t = tlsConnect({ host: '127.0.0.1', port: ready.port, ca: ready.ca, cert: e.certPem, key: e.keyPem }, () => resolve(t));
    t.once('error', reject);
  });
  const body = [...str('MQTT'), 4, 0x02, 0, 60, ...str(e.edgeId)];
  const connack = new Promise<Buffer>((r) => s.once('data', r));
  s.write(Buffer.from([0x10, ...varint(body.length), ...body]));
  assert.equal([...(await connack).subarray(0, 4)], [0x20, 2, 0, 0]);
  return s;
}

test("three edges announcing 200 MB PUBLISHes at once: closed at the header, the hub process's memory does not move", async () => {
  const sockets = await Promise.all(ready.edges.map(session));
  const before = await mem();
  const runs = await Promise.all(sockets.map((s) => stream(s, Buffer.from([0x30, ...varint(200 * MB)]), 64 * MB)));
  const after = await mem();
  for (const r of runs) assert.ok(r.closed && r.sent < 8 * MB, `closed: ${r.closed} after ${(r.sent / MB).toFixed(1)} MB`);
  assert.is(after.refusals.mqtt_packet_too_large, 3);
  const rss = after.peakRss - before.rss;
  const buffers = after.peakArrayBuffers - before.arrayBuffers;
  assert.ok(rss < 8 * MB, `hub RSS grew by ${(rss / MB).toFixed(1)} MB`);
  assert.ok(buffers < 4 * MB, `hub buffers grew by ${(buffers / MB).toFixed(1)} MB`);
});

test.run();
