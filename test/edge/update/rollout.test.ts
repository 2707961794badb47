// Firmware-style updates through the real stack: a real hub (operator API, device API over mutual
// TLS), signed releases, stand-in edges running the real updater from boot.js under a supervisor that
// restarts them like systemd. A release rolls out to several edges; a broken one is rolled back by
// every edge that tried it and the rollout halts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import { makeRelease, StandInEdge, upload, startUpdateBench, type UpdateBench } from './helpers.ts';
import { until } from '../../helpers/polling.ts';

const TOKEN = 'operator-token-for-updates';
interface Ctx extends UpdateBench {
  edges: StandInEdge[];
}
const test = suite<Ctx>('edge update rollout', {} as Ctx);

test.before(async (ctx) => {
  Object.assign(ctx, await startUpdateBench('mykey-update-', TOKEN));
  ctx.edges = [];
  for (const id of ['lib-a', 'lib-b', 'lib-c']) {
    ctx.edges.push(await StandInEdge.create({ hub: ctx.h.hub, work: ctx.work, edgeId: id, serviceId: 'library', built: ctx.built, releaseKey: ctx.keys.publicKeyLine }));
  }
  for (const e of ctx.edges) e.start();
  await Promise.all(ctx.edges.map((e) => e.waitFor((l) => l.event === 'running')));
});
test.after(async (ctx) => {
  await Promise.all(ctx.edges.map((e) => e.stop()));
  await ctx.h.close();
  rmSync(ctx.work, { recursive: true, force: true });
});

async function admin(ctx: Ctx, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await ctx.h.hub.app.request(path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

test('a release rolled out to a service reaches every edge, each restarts into it and reports it installed', async (ctx) => {
  await upload(ctx.h.hub, TOKEN, makeRelease({ work: ctx.work, main: ctx.built.main, version: '1.1.0', keys: ctx.keys }));
  const r = await admin(ctx, 'POST', '/v1/admin/rollouts', { version: '1.1.0', serviceId: 'library', maxFailures: 2 });
  assert.is(r.status, 201, JSON.stringify(r.body));
  const done = await until(
    async () => {
      const v = await admin(ctx, 'GET', `/v1/admin/rollouts/${r.body.id}`);
      const states = v.body.edgeStates as { edgeId: string; running: string; state: string }[];
      return states.length === 3 && states.every((s) => s.state === 'installed' && s.running === '1.1.0') ? v.body : undefined;
    },
    { what: 'every edge installed 1.1.0', intervalMs: 150 },
  );
  assert.is(done.state, 'active');
  for (const e of ctx.edges) {
    assert.is(e.current(), '1.1.0');
    assert.ok(e.exits.includes(75), 'each edge exited with the restart code after switching');
  }
  // The operator sees each edge's version and state.
  const all = await admin(ctx, 'GET', '/v1/admin/edge-updates');
  assert.equal(
    all.body.map((e: { running: string }) => e.running),
    ['1.1.0', '1.1.0', '1.1.0'],
  );
});

test('a broken release (its self-test fails) is rolled back by every edge that tried it, with the reason, and the rollout halts', async (ctx) => {
  await upload(ctx.h.hub, TOKEN, makeRelease({ work: ctx.work, main: ctx.built.main, version: '1.2.0', keys: ctx.keys, pass: false }));
  const r = await admin(ctx, 'POST', '/v1/admin/rollouts', { version: '1.2.0', serviceId: 'library', maxFailures: 2 });
  assert.is(r.status, 201);
  const halted = await until(
    async () => {
      const v = await admin(ctx, 'GET', `/v1/admin/rollouts/${r.body.id}`);
      return v.body.state === 'halted' ? v.body : undefined;
    },
    { what: 'the rollout halted', intervalMs: 150 },
  );
  assert.ok(halted.failures >= 2);
  assert.match(halted.haltedReason, /update_self_test_failed/, JSON.stringify(halted));
  // Every edge that took the release went back by itself; none runs it, and none is offered it again.
  await until(async () => (ctx.edges.every((e) => e.current() === '1.1.0') ? true : undefined), { what: 'every edge runs 1.1.0 again', intervalMs: 150 });
  // An edge that had already taken the release when the rollout halted finishes its rollback too.
  const v = await until(
    async () => {
      const r2 = await admin(ctx, 'GET', `/v1/admin/rollouts/${r.body.id}`);
      return (r2.body.edgeStates as { state: string }[]).every((s) => s.state === 'rolled_back') ? r2 : undefined;
    },
    { what: 'every edge that took 1.2.0 rolled back', intervalMs: 150 },
  );
  assert.ok(v.body.edgeStates.length >= 2);
  for (const s of v.body.edgeStates as { state: string; running: string; code: string; reason: string }[]) {
    assert.is(s.running, '1.1.0');
    assert.is(s.code, 'update_self_test_failed');
    assert.match(s.reason, /bundled/);
  }
  for (const e of ctx.edges) assert.is(e.current(), '1.1.0');
});

test.run();
