// What an edge refuses, through the real stack, each with its own code reported to the hub and the
// running version kept: a bundle altered on the hub's disk, a manifest altered in the hub's store,
// a release signed by a key the edge does not trust, a downgrade not marked as allowed, a release
// that cannot update from the running version, a release for another service. The hub's own checks are bypassed in the store where
// they would stop the attack first: the edge trusts the release key, not the hub.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { generateReleaseKeys } from '../../../provisioning/release/sign.ts';
import { makeRelease, StandInEdge, upload, startUpdateBench, type UpdateBench } from './helpers.ts';
import { until } from '../../helpers/polling.ts';

const TOKEN = 'operator-token-for-refusals';
interface Ctx extends UpdateBench {
  edge: StandInEdge;
}
const test = suite<Ctx>('edge update refusals', {} as Ctx);

test.before(async (ctx) => {
  Object.assign(ctx, await startUpdateBench('mykey-refusals-', TOKEN));
  ctx.edge = await StandInEdge.create({ hub: ctx.h.hub, work: ctx.work, edgeId: 'lib-guard', serviceId: 'library', built: ctx.built, releaseKey: ctx.keys.publicKeyLine });
  ctx.edge.start();
  await ctx.edge.waitFor((l) => l.event === 'running');
});
test.after(async (ctx) => {
  await ctx.edge.stop();
  await ctx.h.close();
  rmSync(ctx.work, { recursive: true, force: true });
});

async function rollOut(ctx: Ctx, version: string) {
  const r = await ctx.h.hub.releases.startRollout({ version, edges: ['lib-guard'], maxFailures: 1 });
  assert.ok(r.ok, JSON.stringify(r));
  return r.ok ? r.value.id : 0;
}

async function refusedWith(ctx: Ctx, version: string, rolloutId: number, code: string): Promise<void> {
  const s = await until(
    async () => {
      const st = await ctx.h.hub.releaseRepo.edge('lib-guard');
      return st?.version === version && st.state === 'refused' && st;
    },
    { what: `the refusal of ${version}`, intervalMs: 100, detail: async () => JSON.stringify(await ctx.h.hub.releaseRepo.edge('lib-guard')) },
  );
  assert.is(s.code, code, JSON.stringify(s));
  assert.is(s.running, '1.0.0', 'the running version is kept');
  assert.ok(s.reason && s.reason.length > 0, 'with a reason');
  assert.is(ctx.edge.current(), null, 'nothing was switched to');
  // One refusal meets this rollout's threshold (maxFailures 1): it halts.
  assert.is((await ctx.h.hub.releaseRepo.rollout(rolloutId))?.state, 'halted');
}

test('a bundle altered on the hub (same size, one byte flipped) is refused as release_digest_mismatch', async (ctx) => {
  await upload(ctx.h.hub, TOKEN, makeRelease({ work: ctx.work, main: ctx.built.main, version: '1.3.1', keys: ctx.keys }));
  const file = ctx.h.hub.releases.bundlePath('1.3.1');
  const b = readFileSync(file);
  b[b.length - 1100] ^= 0xff;
  writeFileSync(file, b);
  await refusedWith(ctx, '1.3.1', await rollOut(ctx, '1.3.1'), 'release_digest_mismatch');
});

test('a manifest altered in the hub store (signature kept) is refused as release_signature_invalid', async (ctx) => {
  const rel = makeRelease({ work: ctx.work, main: ctx.built.main, version: '1.3.2', keys: ctx.keys });
  await upload(ctx.h.hub, TOKEN, rel);
  const m = JSON.parse(Buffer.from(rel.signed.manifest, 'base64url').toString()) as Record<string, unknown>;
  m.services = ['*'];
  m.minVersion = '0.0.1'; // any change at all to the signed bytes
  const forged = { ...rel.signed, manifest: Buffer.from(JSON.stringify(m)).toString('base64url') };
  ctx.h.hub.db.prepare('UPDATE releases SET signed = ? WHERE version = ?').run(JSON.stringify(forged), '1.3.2');
  await refusedWith(ctx, '1.3.2', await rollOut(ctx, '1.3.2'), 'release_signature_invalid');
});

test('a release signed by another key is refused by the hub at upload, and by the edge when a store holds it anyway', async (ctx) => {
  const rogue = generateReleaseKeys();
  const rel = makeRelease({ work: ctx.work, main: ctx.built.main, version: '1.3.3', keys: rogue });
  const res = await ctx.h.hub.app.request('/v1/admin/releases', {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(rel.signed),
  });
  assert.is(res.status, 422);
  assert.is(((await res.json()) as { code: string }).code, 'release_signature_invalid');
  // Written into the store behind the hub's back, with its bundle.
  const m = JSON.parse(Buffer.from(rel.signed.manifest, 'base64url').toString()) as { digest: string; size: number };
  await ctx.h.hub.releaseRepo.insertRelease({
    version: '1.3.3',
    signed: JSON.stringify(rel.signed),
    key_id: rel.signed.keyId,
    digest: m.digest,
    size: m.size,
    services: '["*"]',
    uploaded_at: Date.now(),
  });
  writeFileSync(ctx.h.hub.releases.bundlePath('1.3.3'), rel.bundle);
  await ctx.h.hub.releaseRepo.markBundleReady('1.3.3');
  await refusedWith(ctx, '1.3.3', await rollOut(ctx, '1.3.3'), 'release_signature_invalid');
});

test('an older release not marked as a downgrade is refused as release_downgrade_refused', async (ctx) => {
  await upload(ctx.h.hub, TOKEN, makeRelease({ work: ctx.work, main: ctx.built.main, version: '0.9.0', keys: ctx.keys }));
  await refusedWith(ctx, '0.9.0', await rollOut(ctx, '0.9.0'), 'release_downgrade_refused');
});

test('a release that updates only from a newer version is refused as release_min_version', async (ctx) => {
  await upload(ctx.h.hub, TOKEN, makeRelease({ work: ctx.work, main: ctx.built.main, version: '2.0.0', keys: ctx.keys, minVersion: '1.5.0' }));
  await refusedWith(ctx, '2.0.0', await rollOut(ctx, '2.0.0'), 'release_min_version');
});

test('a release for another service is never offered, and cannot be rolled out to this service', async (ctx) => {
  await upload(ctx.h.hub, TOKEN, makeRelease({ work: ctx.work, main: ctx.built.main, version: '1.4.0', keys: ctx.keys, services: ['museum'] }));
  const r = await ctx.h.hub.releases.startRollout({ version: '1.4.0', serviceId: 'library' });
  assert.is(r.ok ? 'ok' : r.code, 'release_wrong_service');
  await rollOut(ctx, '1.4.0'); // named edge, no service given: the hub still offers it only to museum edges
  await new Promise((res) => setTimeout(res, 700));
  assert.is.not((await ctx.h.hub.releaseRepo.edge('lib-guard'))?.version, '1.4.0');
  assert.is(ctx.edge.current(), null);
});

test("a release for another service offered anyway (the hub's store altered) is refused as release_wrong_service", async (ctx) => {
  await upload(ctx.h.hub, TOKEN, makeRelease({ work: ctx.work, main: ctx.built.main, version: '1.4.1', keys: ctx.keys, services: ['museum'] }));
  ctx.h.hub.db.prepare('UPDATE releases SET services = \'["*"]\' WHERE version = ?').run('1.4.1');
  await refusedWith(ctx, '1.4.1', await rollOut(ctx, '1.4.1'), 'release_wrong_service');
});

test.run();
