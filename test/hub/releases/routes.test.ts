// The hub's release routes through real sockets: the operator uploads only releases signed by a
// configured release key, bundles only with the signed digest and size; the device API serves the
// offer and bundle ranges over mutual TLS only; rollouts halt by hand or by their failure threshold.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { request as httpsRequest } from 'node:https';
import { createPrivateKey } from 'node:crypto';
import { rolloutBucket } from '../../../hub/releases/releases.ts';
import { generateReleaseKeys, manifestFor, signManifest, type ReleaseKeyPair } from '../../../provisioning/release/sign.ts';
import type { TestHub } from '../../helpers/hub.ts';
import { startHubWithEdge } from '../../helpers/enrolled-edge.ts';

const TOKEN = 'operator-token-for-release-routes';
interface Ctx {
  h: TestHub;
  keys: ReleaseKeyPair;
  edge: { certPem: string; keyPem: string; caPem: string };
  bundle: Buffer;
}
const test = suite<Ctx>('hub release routes', {} as Ctx);

test.before(async (ctx) => {
  ctx.keys = generateReleaseKeys();
  ({ h: ctx.h, edge: ctx.edge } = await startHubWithEdge({
    edgeId: 'lib-1',
    service: { requireHolderProof: false },
    overrides: { admin: { token: TOKEN }, releases: { publicKeys: [ctx.keys.publicKeyLine] } },
  }));
  ctx.bundle = Buffer.alloc(100_000, 3);
});
test.after(async (ctx) => ctx.h.close());

async function op(ctx: Ctx, method: string, path: string, body?: unknown, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) {
  const raw = Buffer.isBuffer(body);
  const res = await ctx.h.hub.app.request(path, {
    method,
    headers: { ...headers, ...(body !== undefined ? { 'content-type': raw ? 'application/octet-stream' : 'application/json' } : {}) },
    body: body === undefined ? undefined : raw ? (body as Buffer) : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

function device(
  ctx: Ctx,
  path: string,
  headers: Record<string, string> = {},
  creds: Partial<Ctx['edge']> = ctx.edge,
  body?: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      new URL(path, ctx.h.hub.addresses.deviceApi),
      {
        method: body === undefined ? 'GET' : 'POST',
        ca: ctx.edge.caPem,
        cert: creds.certPem,
        key: creds.keyPem,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const sign = (ctx: Ctx, version: string, bundle = ctx.bundle, keys = ctx.keys) => signManifest(manifestFor(bundle, { version, services: ['library'] }), createPrivateKey(keys.privateKeyPem));

test('uploads are refused without the operator token, unsigned, signed by another key or altered', async (ctx) => {
  const s = sign(ctx, '1.0.1');
  assert.is((await op(ctx, 'POST', '/v1/admin/releases', s, {})).body.code, 'unauthorized');
  assert.is((await op(ctx, 'POST', '/v1/admin/releases', { manifest: s.manifest, keyId: s.keyId })).body.code, 'validation_failed');
  assert.is((await op(ctx, 'POST', '/v1/admin/releases', sign(ctx, '1.0.1', ctx.bundle, generateReleaseKeys()))).body.code, 'release_signature_invalid');
  const bytes = Buffer.from(s.manifest, 'base64url');
  const altered = JSON.parse(bytes.toString());
  altered.version = '9.9.9';
  const r = await op(ctx, 'POST', '/v1/admin/releases', { ...s, manifest: Buffer.from(JSON.stringify(altered)).toString('base64url') });
  assert.is(r.status, 422);
  assert.is(r.body.code, 'release_signature_invalid');
  assert.equal((await op(ctx, 'GET', '/v1/admin/releases')).body, []);
});

test('a bundle is stored only with the signed digest and size', async (ctx) => {
  assert.is((await op(ctx, 'POST', '/v1/admin/releases', sign(ctx, '1.0.1'))).status, 201);
  assert.is((await op(ctx, 'POST', '/v1/admin/releases', sign(ctx, '1.0.1'))).body.code, 'release_exists');
  const wrong = Buffer.from(ctx.bundle);
  wrong[5] ^= 1;
  assert.is((await op(ctx, 'PUT', '/v1/admin/releases/1.0.1/bundle', wrong)).body.code, 'release_digest_mismatch');
  assert.is((await op(ctx, 'PUT', '/v1/admin/releases/1.0.1/bundle', Buffer.concat([ctx.bundle, Buffer.alloc(1)]))).body.code, 'release_size_mismatch');
  assert.is((await op(ctx, 'PUT', '/v1/admin/releases/1.0.1/bundle', ctx.bundle.subarray(1))).body.code, 'release_size_mismatch');
  assert.is((await op(ctx, 'POST', '/v1/admin/rollouts', { version: '1.0.1' })).body.code, 'release_not_found', 'no rollout without its bundle');
  assert.is((await op(ctx, 'PUT', '/v1/admin/releases/1.0.1/bundle', ctx.bundle)).status, 204);
  assert.is((await op(ctx, 'PUT', '/v1/admin/releases/1.0.1/bundle', ctx.bundle)).body.code, 'release_exists');
  assert.is((await op(ctx, 'GET', '/v1/admin/releases')).body[0].bundleReady, true);
});

test('the device API offers a rolled-out release and serves its bundle with Range over mutual TLS only', async (ctx) => {
  assert.equal(JSON.parse((await device(ctx, '/v1/device/update')).body.toString()), { release: null });
  const r = await op(ctx, 'POST', '/v1/admin/rollouts', { version: '1.0.1', serviceId: 'library' });
  assert.is(r.status, 201);
  const offer = JSON.parse((await device(ctx, '/v1/device/update')).body.toString());
  assert.is(offer.release.version, '1.0.1');
  assert.is(offer.release.bundle, '/v1/device/releases/1.0.1/bundle');
  const whole = await device(ctx, offer.release.bundle);
  assert.is(whole.status, 200);
  assert.ok(whole.body.equals(ctx.bundle));
  const part = await device(ctx, offer.release.bundle, { range: 'bytes=99990-' });
  assert.is(part.status, 206);
  assert.is(part.headers['content-range'], 'bytes 99990-99999/100000');
  assert.is(part.body.length, 10);
  const bad = await device(ctx, offer.release.bundle, { range: 'bytes=100000-' });
  assert.is(bad.status, 416);
  assert.is(JSON.parse(bad.body.toString()).code, 'range_not_satisfiable');
  const anon = await device(ctx, offer.release.bundle, {}, {});
  assert.is(JSON.parse(anon.body.toString()).code, 'device_cert_required');
  assert.is((await ctx.h.request('/v1/device/update')).status, 404, 'not on the public listener');
});

test('a halted rollout offers nothing; a rollout halts itself at its failure threshold', async (ctx) => {
  const list = (await op(ctx, 'GET', '/v1/admin/rollouts')).body;
  const id = list[0].id as number;
  assert.is((await op(ctx, 'POST', `/v1/admin/rollouts/${id}/halt`)).body.state, 'halted');
  assert.is((await op(ctx, 'POST', `/v1/admin/rollouts/${id}/halt`)).body.code, 'conflict');
  assert.equal(JSON.parse((await device(ctx, '/v1/device/update')).body.toString()), { release: null });
  const again = await op(ctx, 'POST', '/v1/admin/rollouts', { version: '1.0.1', edges: ['lib-1'], maxFailures: 1 });
  await ctx.h.hub.releases.report('lib-1', 'library', { running: '1.0.0', state: 'refused', version: '1.0.1', code: 'release_digest_mismatch', reason: 'test' });
  const v = (await op(ctx, 'GET', `/v1/admin/rollouts/${again.body.id}`)).body;
  assert.is(v.state, 'halted');
  assert.match(v.haltedReason, /release_digest_mismatch/);
  assert.is(v.edgeStates[0].code, 'release_digest_mismatch');
});

test('an edge reports its update state over mutual TLS; a malformed report is refused', async (ctx) => {
  const good = await device(ctx, '/v1/device/update', {}, ctx.edge, JSON.stringify({ running: '1.0.1', state: 'installed', version: '1.0.1' }));
  assert.is(good.status, 204);
  assert.is((await ctx.h.hub.releaseRepo.edge('lib-1'))?.state, 'installed');
  for (const bad of [
    { running: 'latest', state: 'installed' },
    { running: '1.0.1', state: 'pwned' },
    { running: '1.0.1', state: 'refused', code: 'Not A Code' },
    { running: '1.0.1', state: 'idle', extra: 1 },
  ]) {
    const r = await device(ctx, '/v1/device/update', {}, ctx.edge, JSON.stringify(bad));
    assert.is(r.status, 400, JSON.stringify(bad));
    assert.is(JSON.parse(r.body.toString()).code, 'validation_failed');
  }
  const anon = await device(ctx, '/v1/device/update', {}, {}, JSON.stringify({ running: '1.0.1', state: 'failed' }));
  assert.is(JSON.parse(anon.body.toString()).code, 'device_cert_required');
  assert.is((await ctx.h.hub.releaseRepo.edge('lib-1'))?.state, 'installed');
});

test('a percentage rollout picks a stable share of the edges', () => {
  let inside = 0;
  for (let i = 0; i < 2000; i++) if (rolloutBucket(7, `edge-${i}`) < 25) inside++;
  assert.ok(inside > 400 && inside < 600, `${inside} of 2000`);
  assert.is(rolloutBucket(7, 'edge-1'), rolloutBucket(7, 'edge-1'));
});

test.run();
