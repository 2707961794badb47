// Interop: the same protocol through a stock Mosquitto (Debian package) with the device CA, so edges
// work with any standard MQTT 3.1.1 broker. TLS client certificates are required, the CN is the
// username, and the ACL is the one acl.ts describes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { edgeIdentity } from '../../../hub/broker/identity.ts';
import { createDeviceCsr, openDeviceCa, type DeviceCa } from '../../../hub/pki/device-ca.ts';
import { edgeCommandTopic, edgeStatusTopic, serviceLogTopic } from '../../../shared/topics.ts';
import { nextMessage, status, type EdgeCreds } from './helpers/fixture.ts';
import { startMosquitto, type RunningMosquitto } from './helpers/mosquitto.ts';
import { testIf } from '../../helpers/requires.ts';

let haveMosquitto = true;
try {
  execFileSync('mosquitto', ['-h'], { stdio: 'ignore' });
} catch (e) {
  // `mosquitto -h` exits 3 after printing its usage; only a missing binary is a problem.
  haveMosquitto = (e as { code?: string }).code !== 'ENOENT';
}

let dir: string;
let ca: DeviceCa;
let mq: RunningMosquitto;
const creds: Record<string, EdgeCreds> = {};
const clients: MqttClient[] = [];

async function issue(edgeId: string, serviceId: string, issuer: DeviceCa = ca): Promise<EdgeCreds> {
  const { csrDer, keyPem } = await createDeviceCsr(edgeId);
  const r = await issuer.issueDeviceCertificate(csrDer, { edgeId, serviceId, validityDays: 2 });
  if (!r.ok) throw new Error(r.message);
  return { edgeId, serviceId, certPem: r.value.certPem, keyPem };
}

function options(c: EdgeCreds, over: Partial<IClientOptions> = {}): IClientOptions {
  return {
    protocol: 'mqtts',
    host: '127.0.0.1',
    port: mq.port,
    protocolVersion: 4,
    clientId: c.edgeId,
    clean: false,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ca: ca.certPem,
    cert: c.certPem,
    key: c.keyPem,
    ...over,
  };
}

async function connect(c: EdgeCreds, over: Partial<IClientOptions> = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(options(c, over));
  clients.push(client);
  return client;
}

test.before(async () => {
  if (!haveMosquitto) return;
  dir = mkdtempSync(join(tmpdir(), 'mykey-mosquitto-'));
  ca = await openDeviceCa(join(dir, 'device-ca'));
  creds.hub = await issue('mykey-hub', 'hub');
  creds.a = await issue('edge-a', 'library');
  creds.b = await issue('edge-b', 'library');
  creds.m = await issue('edge-m', 'museum');
  const server = await ca.serverCredentials();
  mq = await startMosquitto({
    dir,
    caPem: ca.certPem,
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    edges: [creds.a, creds.b, creds.m].map((c) => edgeIdentity(c.edgeId, c.serviceId, '', Infinity)),
    hubUser: 'mykey-hub',
  });
});
test.after(async () => {
  for (const c of clients) c.end(true);
  await mq?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

testIf(haveMosquitto, 'mosquitto is not installed')('an edge receives its service log and commands through Mosquitto, and reports its status', async () => {
  const hub = await connect(creds.hub);
  await hub.subscribeAsync(edgeStatusTopic('edge-a'), { qos: 1 });
  const a = await connect(creds.a, { will: { topic: edgeStatusTopic('edge-a'), payload: Buffer.from(JSON.stringify(status(creds.a, { online: false }))), qos: 1, retain: true } });
  const granted = await a.subscribeAsync([serviceLogTopic('library'), edgeCommandTopic('edge-a')], { qos: 1 });
  assert.equal(
    granted.map((g) => g.qos),
    [1, 1],
  );
  const entry = nextMessage(a, serviceLogTopic('library'));
  await hub.publishAsync(serviceLogTopic('library'), JSON.stringify({ seq: 1, kind: 'suspend', at: new Date().toISOString(), remove: ['AAAAAAAAAAAAAAAAAAAAAA'] }), { qos: 1 });
  assert.is(JSON.parse((await entry).toString()).seq, 1);
  const cmd = nextMessage(a, edgeCommandTopic('edge-a'));
  await hub.publishAsync(edgeCommandTopic('edge-a'), JSON.stringify({ transaction: 't', command: 'ping' }), { qos: 1 });
  assert.is(JSON.parse((await cmd).toString()).command, 'ping');
  const st = nextMessage(hub, edgeStatusTopic('edge-a'));
  await a.publishAsync(edgeStatusTopic('edge-a'), JSON.stringify(status(creds.a, { appliedSeq: 1 })), { qos: 1, retain: true });
  assert.is(JSON.parse((await st).toString()).appliedSeq, 1);
});

test('Mosquitto applies the same ACL: another service’s log and another edge’s commands are not delivered', async () => {
  if (!haveMosquitto) return;
  const hub = clients[0];
  const b = await connect(creds.b);
  // Mosquitto 2 grants the subscription but filters delivery by the ACL (its documented behaviour).
  await b.subscribeAsync([serviceLogTopic('museum'), edgeCommandTopic('edge-a'), serviceLogTopic('library')], { qos: 1 });
  const seen: string[] = [];
  b.on('message', (t) => seen.push(t));
  const lib = nextMessage(b, serviceLogTopic('library'));
  await hub.publishAsync(serviceLogTopic('museum'), '{"seq":1}', { qos: 1 });
  await hub.publishAsync(edgeCommandTopic('edge-a'), '{"transaction":"u","command":"ping"}', { qos: 1 });
  await hub.publishAsync(serviceLogTopic('library'), '{"seq":2}', { qos: 1 });
  await lib;
  assert.equal(seen, [serviceLogTopic('library')]);
});

test('Mosquitto refuses a certificate from another CA', async () => {
  if (!haveMosquitto) return;
  const other = await openDeviceCa(join(dir, 'other-ca'));
  const foreign = await issue('edge-a', 'library', other);
  const err = await mqtt.connectAsync(options(foreign)).then(
    (c) => {
      c.end(true);
      return undefined;
    },
    (e: Error) => e,
  );
  assert.ok(err, 'connected with a foreign certificate');
});

test.run();
