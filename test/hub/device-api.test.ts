// The hub as an edge sees it, through real sockets: enrolled with a device certificate, the edge
// reads its config and snapshot over mutual TLS, links at the counter, and receives the change over
// MQTT over TLS; a revoked device is refused.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { request as httpsRequest } from 'node:https';
import { createTestCa, type TestCa } from '../../provisioning/test-ca/ca.ts';
import { keyedIdentitySync, type ChangeEntry } from '../../shared/sync.ts';
import { serviceLogTopic } from '../../shared/topics.ts';
import { crlRevoking, issue, type TestHub } from '../helpers/hub.ts';
import { connectEdgeMqtt, deviceRequest, enrollEdge, startHubWithEdge } from '../helpers/enrolled-edge.ts';

interface Ctx {
  h: TestHub;
  ca: TestCa;
  edge: { certPem: string; keyPem: string; caPem: string };
}
const test = suite<Ctx>('device API', {} as Ctx);

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  // Possession only: links by the card's certificate without the PIN (the service's choice).
  ({ h: ctx.h, edge: ctx.edge } = await startHubWithEdge({ ca: ctx.ca, edgeId: 'lib-counter-1', service: { requireHolderProof: false } }));
});
test.after(async (ctx) => ctx.h.close());

test('an enrolled edge reads its config and snapshot over mutual TLS', async (ctx) => {
  const cfg = await deviceRequest(ctx.h.hub, ctx.edge, 'GET', '/v1/device/config');
  assert.is(cfg.status, 200, JSON.stringify(cfg.body));
  assert.is(cfg.body.edgeId, 'lib-counter-1');
  assert.is(cfg.body.serviceId, 'library');
  assert.is(Buffer.from(cfg.body.syncSecret, 'base64url').length, 32);
  const snap = await deviceRequest(ctx.h.hub, ctx.edge, 'GET', '/v1/device/snapshot');
  assert.is(snap.status, 200);
  assert.equal(snap.body.entries, []);
});

test('the device API refuses a client without a device certificate', async (ctx) => {
  // The handshake completes without a client certificate (enrollment redemption has none yet); the
  // device routes themselves refuse it (this used to be a failed handshake: see test/hub/listeners.test.ts).
  const url = new URL('/v1/device/config', ctx.h.hub.addresses.deviceApi);
  const r = await new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = httpsRequest(url, { ca: ctx.edge.caPem }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.is(r.status, 401);
  assert.is(r.body.code, 'device_cert_required');
  // The public listener does not serve the device API at all.
  const plain = await ctx.h.request('/v1/device/config');
  assert.is(plain.status, 404);
});

test('a counter registration links the card and reaches the edge over MQTT', async (ctx) => {
  const cert = await issue(ctx.ca);
  const reg = await ctx.h.request('/v1/mykey-ids', { proof: await ctx.h.proof(cert) });
  const mykeyId = ((await reg.json()) as { mykeyId: string }).mykeyId;

  const client = await connectEdgeMqtt(ctx.h.hub, 'lib-counter-1', ctx.edge, { clean: false });
  try {
    const got = new Promise<ChangeEntry>((resolve) => client.on('message', (_t, p) => resolve(JSON.parse(p.toString()))));
    await client.subscribeAsync(serviceLogTopic('library'), { qos: 1 });
    // The holder touched the card (certificate mode) and presented library card L-77.
    const r = await deviceRequest(ctx.h.hub, ctx.edge, 'POST', '/v1/device/links', { identity: { certificate: Buffer.from(cert.certDer).toString('base64') }, serviceUserId: 'L-77' });
    assert.is(r.status, 201, JSON.stringify(r.body));
    const entry = await got;
    assert.is(entry.kind, 'link');
    assert.is(entry.set?.serviceUserId, 'L-77');
    const secret = (await ctx.h.hub.links.service('library'))!.sync_secret;
    assert.ok(entry.set?.keys.includes(keyedIdentitySync(secret, 'mykey', mykeyId)));
    // The edge can also catch up over HTTP.
    const changes = await deviceRequest(ctx.h.hub, ctx.edge, 'GET', `/v1/device/changes?after=0`);
    assert.is(changes.body.headSeq, entry.seq);
    assert.equal(changes.body.entries.at(-1), entry);
    const bad = await deviceRequest(ctx.h.hub, ctx.edge, 'GET', `/v1/device/changes?after=-1`);
    assert.is(bad.status, 400);
    // An unregistered card cannot be linked.
    const stranger = await issue(ctx.ca);
    const nf = await deviceRequest(ctx.h.hub, ctx.edge, 'POST', '/v1/device/links', { identity: { certificate: Buffer.from(stranger.certDer).toString('base64') }, serviceUserId: 'L-78' });
    assert.is(nf.status, 404);
    assert.is(nf.body.code, 'mykey_id_not_found');
  } finally {
    await client.endAsync(true);
  }
});

test('a CRL revocation of a linked card reaches the edge as a suspension', async (ctx) => {
  const cert = await issue(ctx.ca);
  const reg = await ctx.h.request('/v1/mykey-ids', { proof: await ctx.h.proof(cert) });
  assert.is(reg.status, 201);
  const linked = await deviceRequest(ctx.h.hub, ctx.edge, 'POST', '/v1/device/links', { identity: { certificate: Buffer.from(cert.certDer).toString('base64') }, serviceUserId: 'L-99' });
  assert.is(linked.status, 201);
  const client = await connectEdgeMqtt(ctx.h.hub, 'lib-counter-1', ctx.edge, { clean: true });
  try {
    const got = new Promise<ChangeEntry>((resolve) =>
      client.on('message', (_t, p) => {
        const e = JSON.parse(p.toString()) as ChangeEntry;
        if (e.kind === 'suspend') resolve(e);
      }),
    );
    await client.subscribeAsync(serviceLogTopic('library'), { qos: 1 });
    const der = await crlRevoking(ctx.ca, [cert.serial]);
    const run = await ctx.h.hub.crlManager.apply(der, 'test');
    assert.is(run.newlySuspended, 1);
    const e = await got;
    assert.is(e.reason, 'keyCompromise');
    assert.ok(e.remove.length >= 1);
  } finally {
    await client.endAsync(true);
  }
});

test('a revoked device is refused by the device API', async (ctx) => {
  const creds = await enrollEdge(ctx.h.hub, 'lib-counter-2');
  assert.is((await deviceRequest(ctx.h.hub, creds, 'GET', '/v1/device/config')).status, 200);
  assert.ok((await ctx.h.hub.enrollment!.revoke('lib-counter-2', 'decommissioned')).ok);
  assert.is((await deviceRequest(ctx.h.hub, creds, 'GET', '/v1/device/config')).status, 401);
});

test.run();
