// The console's releases page on the hub's own app: an operator sees stored releases, starts a
// rollout with the form (CSRF and all), sees each edge's version and update state, and halts the
// rollout; a service administrator is refused.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createPrivateKey } from 'node:crypto';
import { runConsoleCli } from '../../../hub/console/cli.ts';
import { generateReleaseKeys, manifestFor, signManifest, type ReleaseKeyPair } from '../../../provisioning/release/sign.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';
import { client, PASSWORD } from '../console/helpers/console-hub.ts';

const TOKEN = 'operator-token-for-console';
interface Ctx {
  h: TestHub;
  keys: ReleaseKeyPair;
}
const test = suite<Ctx>('console releases page', {} as Ctx);

test.before(async (ctx) => {
  ctx.keys = generateReleaseKeys();
  ctx.h = await startTestHub({ overrides: { admin: { token: TOKEN }, releases: { publicKeys: [ctx.keys.publicKeyLine] } } });
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library', requireHolderProof: false });
  for (const [name, role, service] of [
    ['ops', 'operator'],
    ['libadmin', 'service-admin', 'library'],
  ] as const) {
    const code = await runConsoleCli(['add-operator', name, '--role', role, ...(service ? ['--service', service] : [])], ctx.h.hub.store, { out: () => undefined, readPassword: async () => PASSWORD });
    assert.is(code, 0);
  }
  const bundle = Buffer.alloc(1000, 1);
  const signed = signManifest(manifestFor(bundle, { version: '1.5.0', services: ['library'] }), createPrivateKey(ctx.keys.privateKeyPem));
  const auth = { authorization: `Bearer ${TOKEN}` };
  assert.is((await ctx.h.request('/v1/admin/releases', JSON.stringify(signed), { method: 'POST', headers: { ...auth, 'content-type': 'application/json' } })).status, 201);
  assert.is((await ctx.h.request('/v1/admin/releases/1.5.0/bundle', undefined, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: bundle })).status, 204);
});
test.after(async (ctx) => ctx.h.close());

test('an operator starts a rollout from the console, sees edge states live, and halts it', async (ctx) => {
  const b = client({ app: ctx.h.hub.app });
  await b.signIn('ops');
  const page = await b.get('/console/releases');
  assert.is(page.status, 200);
  assert.match(page.text, /1\.5\.0/);
  assert.match(page.text, /http-equiv="refresh"/);
  const bad = await b.post('/console/releases/rollouts', { version: '1.5.0', serviceId: 'museum', percent: '100', maxFailures: '1', edges: '' });
  assert.is(bad.status, 400);
  assert.match(bad.text, /release_wrong_service/);
  const ok = await b.post('/console/releases/rollouts', { version: '1.5.0', serviceId: 'library', percent: '50', maxFailures: '2', edges: '' });
  assert.is(ok.status, 200, ok.text.slice(0, 300));
  const id = (await ctx.h.hub.releaseRepo.rollouts())[0].id;
  await ctx.h.hub.releases.report('lib-9', 'library', { running: '1.4.0', state: 'downloading', version: '1.5.0' });
  const live = await b.get('/console/releases');
  assert.match(live.text, /data-edge="lib-9"/);
  assert.match(live.text, /downloading/);
  const halted = await b.post(`/console/releases/rollouts/${id}/halt`, {});
  assert.is(halted.status, 200);
  assert.is((await ctx.h.hub.releaseRepo.rollout(id))?.state, 'halted');
  // Without the CSRF token the form is refused.
  const forged = await b.post('/console/releases/rollouts', { version: '1.5.0' }, { csrf: null });
  assert.is(forged.status, 403);
});

test('a service administrator cannot see or start rollouts', async (ctx) => {
  const b = client({ app: ctx.h.hub.app });
  await b.signIn('libadmin');
  assert.is((await b.get('/console/releases')).status, 403);
  await b.get('/console/');
  assert.is((await b.post('/console/releases/rollouts', { version: '1.5.0' })).status, 403);
});

test.run();
