// PIN-checked touch (#14), the hub's side and the contract: a service's touch assurance is set by the
// operator (audited), is possession by default, and reaches the service's edges in the device config
// over mutual TLS together with the JPKI anchors; the edge's client takes it with the shared schema,
// keeps it in its state directory across a restart, and reads an absent field as possession.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa } from '../../provisioning/test-ca/ca.ts';
import { touchAssuranceOf } from '../../shared/device-api.ts';
import { EdgeCache } from '../../edge/cache/index.ts';
import { EdgeState } from '../../edge/state/index.ts';
import { HubClient } from '../../edge/sync/hub-client.ts';
import { enrollEdge } from '../helpers/enrolled-edge.ts';
import { startTestHub, type TestHub } from '../helpers/hub.ts';

const ADMIN = 'touch-assurance-admin-token-0123456789';
interface Ctx {
  h: TestHub;
  client: HubClient;
}
const test = suite<Ctx>('touch assurance', {} as Ctx);

test.before(async (ctx) => {
  ctx.h = await startTestHub({ ca: await createTestCa({ label: 'touch-assurance' }), overrides: { admin: { token: ADMIN } } });
  await ctx.h.hub.start();
  await ctx.h.hub.links.createService({ id: 'points', name: 'Shopping street points' });
  const { tls } = await enrollEdge(ctx.h.hub, 'pts-counter-1', 'points');
  ctx.client = new HubClient({ hubUrl: ctx.h.hub.addresses.deviceApi!, tls });
});
test.after(async (ctx) => ctx.h?.close());

const admin = (ctx: Ctx, method: string, path: string, body?: unknown) =>
  ctx.h.hub.app.request(path, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });

test('a service is possession by default, and its edge is told so with the JPKI anchors', async (ctx) => {
  const { value } = await ctx.client.config();
  assert.is(value.touchAssurance, 'possession');
  assert.equal(value.jpkiAnchors, [Buffer.from(ctx.h.ca.certDer).toString('base64')]);
  const list = (await (await admin(ctx, 'GET', '/v1/admin/services')).json()) as { id: string; touchAssurance?: string }[];
  assert.is(list.find((s) => s.id === 'points')?.touchAssurance, 'possession');
});

test('the operator requires the PIN (audited), and the edge learns it at its next config read', async (ctx) => {
  const res = await admin(ctx, 'PUT', '/v1/admin/services/points/touch-assurance', { touchAssurance: 'pin' });
  assert.is(res.status, 200, await res.clone().text());
  assert.is(((await res.json()) as { touchAssurance: string }).touchAssurance, 'pin');
  assert.is((await ctx.h.hub.linkRepo.service('points'))!.touch_assurance, 'pin');
  const { value } = await ctx.client.config();
  assert.is(value.touchAssurance, 'pin');
  assert.is(touchAssuranceOf(value.touchAssurance), 'pin');
});

test('bad values, unknown services and a missing operator token are refused', async (ctx) => {
  const bad = await admin(ctx, 'PUT', '/v1/admin/services/points/touch-assurance', { touchAssurance: 'face' });
  assert.is(bad.status, 400);
  assert.is(((await bad.json()) as { code: string }).code, 'validation_failed');
  const missing = await admin(ctx, 'PUT', '/v1/admin/services/nowhere/touch-assurance', { touchAssurance: 'pin' });
  assert.is(missing.status, 404);
  const anon = await ctx.h.hub.app.request('/v1/admin/services/points/touch-assurance', {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ touchAssurance: 'possession' }),
  });
  assert.is(anon.status, 401);
  assert.is((await ctx.h.hub.linkRepo.service('points'))!.touch_assurance, 'pin');
});

test('a service can be created requiring the PIN', async (ctx) => {
  const res = await admin(ctx, 'POST', '/v1/admin/services', { id: 'coupons', name: 'Coupons', touchAssurance: 'pin' });
  assert.is(res.status, 201, await res.clone().text());
  assert.is(((await res.json()) as { touchAssurance: string }).touchAssurance, 'pin');
});

test('the edge keeps what the hub said in its state directory (a reboot offline keeps requiring the PIN)', async (ctx) => {
  const dir = mkdtempSync(join(tmpdir(), 'pin-touch-state-'));
  try {
    const { value } = await ctx.client.config();
    const first = new EdgeState({ dir });
    await first.open(new EdgeCache());
    await first.setIdentity({ edgeId: value.edgeId, serviceId: value.serviceId, syncSecret: value.syncSecret });
    const changed = await first.setIdentity(value);
    assert.equal(changed, { changed: true, resync: false }, 'a new touch policy alone is stored without a resync');
    await first.close();
    const again = new EdgeState({ dir });
    await again.open(new EdgeCache());
    assert.is(again.identity()?.touchAssurance, 'pin');
    assert.equal(again.identity()?.jpkiAnchors, value.jpkiAnchors);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an absent level (a hub older than the field) is possession; a level this edge does not know is treated as the PIN', () => {
  assert.is(touchAssuranceOf(undefined), 'possession');
  assert.is(touchAssuranceOf('possession'), 'possession');
  assert.is(touchAssuranceOf('pin'), 'pin');
  assert.is(touchAssuranceOf('pin-and-face'), 'pin');
});

test.run();
