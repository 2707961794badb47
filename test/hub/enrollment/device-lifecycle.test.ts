// POST /v1/device/revoke and /v1/device/rotate on the device listener, through real mutual TLS: only
// the device itself, with its current certificate, can revoke or rotate it, and nothing in a body can
// point either at another edge.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Type } from '@sinclair/typebox';
import { DeviceRevokeResponse } from '../../../shared/device-api.ts';
import { MyKeyError } from '../../../shared/errors.ts';
import { HubHttpClient, type HubTls } from '../../../shared/hub-client.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';
import { enrollEdge, rotateDevice } from '../../helpers/enrolled-edge.ts';

interface Ctx {
  h: TestHub;
}
const test = suite<Ctx>('device lifecycle routes', {} as Ctx);

test.before(async (ctx) => {
  ctx.h = await startTestHub();
  await ctx.h.hub.start();
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library' });
});
test.after(async (ctx) => ctx.h.close());

async function enroll(ctx: Ctx, edgeId: string): Promise<HubTls> {
  return (await enrollEdge(ctx.h.hub, edgeId)).tls;
}

const client = (ctx: Ctx, tls: HubTls) => new HubHttpClient({ baseUrl: ctx.h.hub.addresses.deviceApi!, tls, timeoutMs: 5000 });
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: unknown) => (e instanceof MyKeyError ? e.code : `other: ${String(e)}`),
  );

test('a device revokes only itself: a body naming another edge is refused, and the other edge stays active', async (ctx) => {
  const mine = await enroll(ctx, 'lib-self-1');
  await enroll(ctx, 'lib-self-2');
  const c = client(ctx, mine);
  assert.is(await codeOf(c.call({ method: 'POST', path: '/v1/device/revoke', body: { edgeId: 'lib-self-2' }, schema: DeviceRevokeResponse, what: 'revoke' })), 'validation_failed');
  assert.is((await ctx.h.hub.devices.get('lib-self-2'))?.status, 'active');
  assert.is((await ctx.h.hub.devices.get('lib-self-1'))?.status, 'active');
  const r = await c.call({ method: 'POST', path: '/v1/device/revoke', body: { reason: 'stolen' }, schema: DeviceRevokeResponse, what: 'revoke' });
  assert.is(r.value.edgeId, 'lib-self-1');
  assert.is((await ctx.h.hub.devices.get('lib-self-1'))?.status, 'revoked');
  assert.is((await ctx.h.hub.devices.get('lib-self-2'))?.status, 'active');
  // Its certificate is done: the device API refuses it from now on.
  assert.is(await codeOf(c.call({ method: 'GET', path: '/v1/device/config', what: 'config' })), 'unauthorized');
});

test('without a device certificate, revoke and rotate are device_cert_required', async (ctx) => {
  const anon = client(ctx, { ca: ctx.h.hub.deviceCa!.certPem });
  for (const path of ['/v1/device/revoke', '/v1/device/rotate']) {
    assert.is(await codeOf(anon.call({ method: 'POST', path, body: {}, what: path })), 'device_cert_required', path);
  }
});

test('a superseded certificate cannot rotate: after a rotation is used, the old one is unauthorized', async (ctx) => {
  const old = await enroll(ctx, 'lib-self-3');
  const r = await rotateDevice(client(ctx, old), 'lib-self-3');
  const fresh: HubTls = { cert: r.certPem, key: r.keyPem, ca: r.caPem };
  await client(ctx, fresh).call({ method: 'GET', path: '/v1/device/config', what: 'config' });
  assert.is(await codeOf(rotateDevice(client(ctx, old), 'lib-self-3')), 'unauthorized');
});

test('the device document lists both routes with the device auth errors', async (ctx) => {
  const Doc = Type.Object({ paths: Type.Record(Type.String(), Type.Record(Type.String(), Type.Object({ responses: Type.Record(Type.String(), Type.Object({ description: Type.String() })) }))) });
  const doc = await new HubHttpClient({ baseUrl: ctx.h.hub.addresses.deviceApi!, tls: { ca: ctx.h.hub.deviceCa!.certPem } }).call({
    method: 'GET',
    path: '/openapi.json',
    schema: Doc,
    what: 'doc',
    maxBytes: 4 * 1024 * 1024,
  });
  for (const path of ['/v1/device/revoke', '/v1/device/rotate']) {
    const op = doc.value.paths[path].post;
    assert.match(op.responses['401'].description, 'device_cert_required', path);
    assert.match(op.responses['400'].description, 'validation_failed', path);
  }
  assert.match(doc.value.paths['/v1/device/rotate'].post.responses['400'].description, 'csr_invalid');
  const raw = (await (await fetch(`${ctx.h.hub.addresses.http}/openapi.json`)).json()) as { paths: Record<string, unknown> };
  assert.not.ok(raw.paths['/v1/device/revoke'], 'the public document does not list device routes');
});

test.run();
