// Two hub replicas on one PostgreSQL database behave as one hub, whichever replica a request reaches
// (through their real listeners): a challenge issued by one is accepted by the other, once; a rate
// limit counts across both; a console session signed in at one works at the other; an enrollment
// token claimed at one cannot be claimed at the other; a device revoked at one is refused at the
// other and its MQTT session on the other's broker is dropped; the scheduled CRL fetch runs once per
// period across both.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt, { type MqttClient } from 'mqtt';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { runConsoleCli } from '../../../hub/console/cli.ts';
import { createDeviceCsr } from '../../../hub/pki/device-ca.ts';
import { randomBytes } from 'node:crypto';
import { checkLogPayload } from '../../../edge/sync/log-message.ts';
import { signLikeCard } from '../../../provisioning/test-ca/ca.ts';
import { certIdentity } from '../../../shared/cert-identity.ts';
import { randomMyKeyId } from '../../../shared/ids.ts';
import { CURRENT_KEY_SCHEME } from '../../../shared/sync.ts';
import { serviceLogTopic } from '../../../shared/topics.ts';
import { issue } from '../../helpers/hub.ts';
import { havePostgres } from '../../helpers/pg.ts';
import { testIf } from '../../helpers/requires.ts';
import { until, within } from '../../helpers/polling.ts';
import { client, PASSWORD } from '../console/helpers/console-hub.ts';
import { deviceCall, startReplicas, type Replicas } from './helpers/replicas.ts';

const pgTest = testIf(havePostgres, 'PostgreSQL 15 is not installed');
let r: Replicas;

test.before(async () => {
  if (!havePostgres) return;
  // The register limit is strict here (burst 6, next token in 100 s) for the rate-limit test; the
  // other tests use it at most twice, on another route's bucket.
  r = await startReplicas(2, { rateLimits: { challenge: { perSecond: 10_000, burst: 10_000 }, register: { perSecond: 0.01, burst: 6 } }, webhooks: { allowHttp: true, allowPrivateTargets: true } });
  await r.hubs[0]!.links.createService({ id: 'library', name: 'Library' });
});
test.after(async () => {
  await r?.close();
});

async function post(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

pgTest('a challenge issued by replica A is accepted with its proof at replica B, and only once (challenge_replayed at A and at B)', async () => {
  const [a, b] = r.urls as [string, string];
  assert.is(r.hubs[0]!.replicas !== undefined && r.hubs[1]!.replicas !== undefined, true, 'both hubs run as replicas');
  const cert = await issue(r.ca);
  const ch = await post(`${a}/v1/challenges`, { purpose: 'register' });
  assert.is(ch.status, 201);
  const sig = await signLikeCard(cert.keyPair.privateKey, new Uint8Array(Buffer.from(ch.body.challenge, 'base64url')));
  const proof = { challenge: ch.body.challenge, certificate: Buffer.from(cert.certDer).toString('base64'), signature: Buffer.from(sig).toString('base64') };
  const registered = await post(`${b}/v1/mykey-ids`, { proof });
  assert.is(registered.status, 201, JSON.stringify(registered.body));
  for (const url of [a, b]) {
    const again = await post(`${url}/v1/mykey-ids`, { proof });
    assert.is(again.body.code, 'challenge_replayed', JSON.stringify(again.body));
  }
  // A challenge no replica issued is unknown to both.
  const forged = await post(`${b}/v1/mykey-ids`, { proof: { ...proof, challenge: Buffer.alloc(32, 7).toString('base64url') } });
  assert.is(forged.body.code, 'challenge_unknown');
});

pgTest('a rate limit counts a client across both replicas (429 rate_limited at either once the shared bucket is empty)', async () => {
  const [a, b] = r.urls as [string, string];
  // Burst 6 for this route: three requests at each replica pass the limit (and fail validation)...
  for (const url of [a, b, a, b, a, b]) {
    const res = await post(`${url}/v1/holder/unlink`, {});
    assert.is.not(res.status, 429, `${url}: ${JSON.stringify(res.body)}`);
  }
  // ...and the seventh is refused wherever it goes, though neither replica alone has seen six.
  for (const url of [a, b]) {
    const res = await post(`${url}/v1/holder/unlink`, {});
    assert.is(res.status, 429);
    assert.is(res.body.code, 'rate_limited');
  }
});

pgTest('a console session signed in at replica A works at replica B, and signing out at B ends it at A', async () => {
  const [a, b] = r.urls as [string, string];
  assert.is(await runConsoleCli(['add-operator', 'ops', '--role', 'operator'], r.hubs[0]!.store, { out: () => {}, readPassword: async () => PASSWORD }), 0);
  const atA = client({ app: r.hubs[0]!.app }, undefined, a);
  assert.is((await atA.signIn('ops')).status, 303);
  const atB = client({ app: r.hubs[1]!.app }, undefined, b);
  for (const [k, v] of atA.jar) atB.jar.set(k, v);
  const page = await atB.get('/console');
  assert.is(page.status, 200, page.location ?? '');
  assert.match(page.text, 'ops');
  // The session's CSRF token (in B's page) is the one A issued: a POST at B is accepted.
  const out = await atB.post('/console/logout', {});
  assert.is(out.status, 303);
  const after = await atA.get('/console');
  assert.is(after.status, 303, 'signed out at B, A sends the browser to sign in');
  assert.match(after.location ?? '', '/console/login');
});

pgTest('an enrollment token claimed at replica A cannot be claimed at replica B (enrollment_token_used)', async () => {
  const [hubA, hubB] = r.hubs as [(typeof r.hubs)[0], (typeof r.hubs)[0]];
  const { token } = await hubA.enrollmentTokens.issue({ serviceId: 'library', edgeId: 'library-02', by: 'ops' });
  const caPem = hubA.deviceCa!.certPem;
  const csr = await createDeviceCsr('library-02');
  const csrPem = `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from(csr.csrDer).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`;
  // Both at once: exactly one wins, wherever each lands.
  const [x, y] = await Promise.all([
    deviceCall(hubA, 'POST', '/v1/enrollments', { caPem }, { token, edgeId: 'library-02', csrPem }),
    deviceCall(hubB, 'POST', '/v1/enrollments', { caPem }, { token, edgeId: 'library-02', csrPem }),
  ]);
  const statuses = [x.status, y.status].sort();
  assert.equal(statuses, [201, 409], JSON.stringify([x.body, y.body]));
  assert.is((x.status === 409 ? x : y).body.code, 'enrollment_token_used');
  const later = await deviceCall(hubB, 'POST', '/v1/enrollments', { caPem }, { token, edgeId: 'library-02', csrPem });
  assert.is(later.body.code, 'enrollment_token_used');
});

/** Links a new MyKey ID to `serviceId` at `hub` (its keyed identities stored ahead, as prepareKeys would). */
async function linkOne(hub: Replicas['hubs'][number], serviceId: string, serviceUserId: string): Promise<void> {
  const cert = { fingerprint: randomBytes(32).toString('hex'), issuerKey: 'b'.repeat(32), issuerKeyId: 'c'.repeat(40), serialHex: randomBytes(8).toString('hex'), notAfter: Date.now() + 1e10 };
  const m = await hub.store.mykeys.createOrGet(cert, () => randomMyKeyId(randomBytes), Date.now());
  if (!('row' in m)) throw new Error('no MyKey ID');
  for (const identity of [`mykey:${m.row.id}`, `cert:${certIdentity(cert.issuerKey, cert.serialHex)}`])
    await hub.store.links.insertKey(serviceId, CURRENT_KEY_SCHEME, identity, randomBytes(16).toString('base64url'));
  await hub.links.link({ serviceId, mykeyId: m.row.id, serviceUserId, by: 'test' });
}

/** Connects an enrolled edge to a replica's embedded broker. */
async function edgeAt(hub: Replicas['hubs'][number], edgeId: string): Promise<{ client: MqttClient; options: mqtt.IClientOptions; creds: { caPem: string; certPem: string; keyPem: string } }> {
  const csr = await createDeviceCsr(edgeId);
  const enrolled = await r.hubs[0]!.enrollment!.enroll(csr.csrDer, { edgeId, serviceId: 'library', validityDays: 30 });
  if (!enrolled.ok) throw new Error(enrolled.message);
  const creds = { caPem: enrolled.value.caPem, certPem: enrolled.value.certPem, keyPem: csr.keyPem };
  const at = new URL(hub.addresses.mqtts!);
  const options: mqtt.IClientOptions = {
    protocol: 'mqtts',
    host: at.hostname,
    port: Number(at.port),
    protocolVersion: 4,
    clientId: edgeId,
    clean: false,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ca: creds.caPem,
    cert: creds.certPem,
    key: creds.keyPem,
    rejectUnauthorized: true,
  };
  // allowRetries false: a connection closed before its CONNACK rejects (by default connectAsync would
  // wait forever for a reconnect that reconnectPeriod 0 never makes).
  return { client: await within(mqtt.connectAsync(hub.addresses.mqtts!, options, false), `${edgeId} to connect to a replica's broker`), options, creds };
}

pgTest("change-log entries written at either replica reach edges on both replicas' embedded brokers, once and in order", async () => {
  const [hubA, hubB] = r.hubs as [Replicas['hubs'][number], Replicas['hubs'][number]];
  const edges = [await within(edgeAt(hubA, 'library-11'), 'the edge at A'), await within(edgeAt(hubB, 'library-12'), 'the edge at B')];
  const seen: number[][] = [[], []];
  edges.forEach((e, i) => {
    e.client.on('message', (_t, payload) => {
      const v = checkLogPayload(payload);
      if (v.ok) seen[i]!.push(...v.value.map((x) => x.seq));
    });
  });
  // What each edge was granted (0x80 is a refusal [MQTT-3.9.3]), and whether its connection closed:
  // told when the entries do not arrive.
  const granted: number[] = [];
  const closed = [false, false];
  edges.forEach((e, i) => {
    e.client.on('close', () => {
      closed[i] = true;
    });
  });
  for (const e of edges) granted.push(...(await within(e.client.subscribeAsync(serviceLogTopic('library'), { qos: 1 }), 'the SUBACK')).map((g) => g.qos));
  assert.equal(granted, [1, 1], 'both subscriptions granted at QoS 1');
  const before = await within(hubA.links.headSeq('library'), 'the head seq');
  for (const [i, hub] of [hubB, hubA, hubB].entries()) await within(linkOne(hub, 'library', `R-${i}`), `link ${i}`);
  const want = [before + 1, before + 2, before + 3];
  await until(() => seen.every((s) => s.length >= 3), {
    timeoutMs: 60_000,
    what: 'the entries on both brokers',
    detail: () =>
      `want ${JSON.stringify(want)}; edge on A saw ${JSON.stringify(seen[0])}, edge on B saw ${JSON.stringify(seen[1])}; outbox held by ${r.hubs.map((h) => h.replicas!.coordinator.holdsOutbox).join('/')}; edge connections closed ${closed.join('/')}\n${r.logs.slice(-20).join('\n')}`,
  });
  assert.equal(seen[0], want, 'the edge on A');
  assert.equal(seen[1], want, 'the edge on B');
  for (const e of edges) await within(e.client.endAsync(true), 'the edge to disconnect');
});

pgTest("a device revoked at replica A is refused at replica B, and its MQTT session on B's broker is dropped", async () => {
  const [hubA, hubB] = r.hubs as [(typeof r.hubs)[0], (typeof r.hubs)[0]];
  // Enrolled at A (edgeAt enrolls at the first replica), connected to B's broker.
  const { client: edge, options, creds } = await within(edgeAt(hubB, 'library-01'), 'the edge at B');
  let closed = false;
  edge.on('close', () => (closed = true));
  assert.is((await deviceCall(hubB, 'GET', '/v1/device/config', creds)).status, 200);
  const revoked = await hubA.enrollment!.revoke('library-01', 'stolen');
  assert.ok(revoked.ok);
  // B's broker drops the session though B did not revoke it (the notification from A).
  await until(() => closed, { timeoutMs: 20_000, what: "the edge's session on B to be dropped" });
  edge.end(true);
  // And B refuses the device from now on: MQTT and the device API.
  const refused = await new Promise<{ code?: number; error: string }>((resolve) => {
    const c = mqtt.connect(options);
    c.once('connect', () => {
      c.end(true);
      resolve({ error: 'connected' });
    });
    c.once('error', (e: Error & { code?: number | string }) => {
      c.end(true);
      resolve({ code: typeof e.code === 'number' ? e.code : undefined, error: e.message });
    });
    c.once('close', () => resolve({ error: 'closed before CONNACK' }));
  });
  assert.is.not(refused.error, 'connected');
  const api = await deviceCall(hubB, 'GET', '/v1/device/config', creds);
  // (The device API answers a revoked certificate as it does on one hub: 401 unauthorized.)
  assert.is(api.status, 401, JSON.stringify(api.body));
  assert.is(api.body.code, 'unauthorized');
});

pgTest("a revocation whose notification a replica missed (its listening connection was cut) still drops the edge's session there when it reconnects", async () => {
  const [hubA, hubB] = r.hubs as [Replicas['hubs'][number], Replicas['hubs'][number]];
  const edge = await within(edgeAt(hubB, 'library-21'), 'the edge at B');
  let closed = false;
  edge.client.on('close', () => (closed = true));
  // Revoked in the shared table without a word to the others (as if the NOTIFY were lost)...
  assert.ok(await hubA.devices.revoke('library-21', 'stolen', Date.now()));
  // ...and B's listening connection cut: B reconnects, sees it may have missed something, and checks.
  const pg = (await import('pg')).default;
  const admin = new pg.Client({ connectionString: r.dbUrl });
  await admin.connect();
  try {
    const cut = await admin.query('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [`mykey-hub-listen-${hubB.replicas!.coordinator.id}`]);
    assert.is(cut.rowCount, 1, "B's listening connection");
  } finally {
    await admin.end();
  }
  await until(() => closed, { timeoutMs: 20_000, what: "the edge's session on B to be dropped after B reconnects" });
  edge.client.end(true);
});

pgTest("a service's webhook notices are sent by one replica, the one that publishes the outbox", async () => {
  let posts = 0;
  // The first request is held unanswered: while it is in flight the notice is still due, so any
  // other sender asked now would send it a second time.
  let held: ServerResponse | undefined;
  const server: Server = createServer((req, res) => {
    posts++;
    req.resume();
    req.on('end', () => {
      if (posts === 1) held = res;
      else res.writeHead(200).end();
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  try {
    const holders = r.hubs.filter((h) => h.replicas!.coordinator.holdsOutbox);
    assert.is(holders.length, 1, 'one publisher');
    const [holder] = holders as [Replicas['hubs'][number]];
    const other = r.hubs.find((h) => h !== holder)!;
    await holder.links.createService({ id: 'museum', name: 'Museum', webhookUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}/notices` });
    // Written at the replica that does not publish: the publisher is told and sends it.
    await within(linkOne(other, 'museum', 'M-1'), 'the link at the other replica');
    await until(() => held !== undefined, { timeoutMs: 20_000, what: 'the notice' });
    assert.is(await other.webhooks.deliverDue(), 0, 'the other replica sends nothing');
    assert.is(posts, 1);
    held!.writeHead(200).end();
    await holder.webhooks.deliverDue();
    assert.is(posts, 1);
  } finally {
    await new Promise<void>((ok) => server.close(() => ok()));
  }
});

pgTest('the scheduled CRL fetch runs once per period across two replicas', async () => {
  const fetches: number[] = [];
  const server: Server = createServer((_req, res) => {
    fetches.push(Date.now());
    res.statusCode = 503;
    res.end();
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/jpki.crl`;
  const periodMs = 1000;
  try {
    // Both replicas on a one-second schedule for the same source (the config's minimum is 10 s).
    for (const h of r.hubs) {
      h.crlManager.stop();
      h.crlManager.start([url], periodMs);
    }
    await until(() => fetches.length >= 8, { timeoutMs: 60_000, what: 'eight CRL fetches' });
  } finally {
    for (const h of r.hubs) h.crlManager.stop();
    await new Promise<void>((ok) => server.close(() => ok()));
  }
  // Two replicas each fetching on their own would make about two fetches a period; claimed once per
  // period, consecutive fetches are at least 0.9 periods apart (a little slack for request latency).
  const window = fetches[7]! - fetches[0]!;
  const allowed = Math.floor(window / (0.9 * periodMs)) + 2;
  console.log(`CRL fetches: 8 in ${window} ms across two replicas (at most ${allowed} allowed for a ${periodMs} ms period)`);
  assert.ok(8 <= allowed, `8 fetches in ${window} ms: more than once per period`);
});

test.run();
