// A power cut at any point of an update leaves a working edge: each edge is killed (SIGKILL) at one
// step (mid-download, verify, unpack, switch, restart, self-test), its supervisor starts it again,
// and it ends on a good version with its state reported. A download cut off midway is resumed with
// Range, never restarted from zero and never unpacked half.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { UpdateStep } from '../../../edge/update/updater.ts';
import { makeRelease, StandInEdge, startRelay, upload, startUpdateBench, type UpdateBench } from './helpers.ts';
import { until } from '../../helpers/polling.ts';

const TOKEN = 'operator-token-for-power-cuts';
const PAD = 1_500_000;
interface Ctx extends UpdateBench {
  edges: StandInEdge[];
  relays: { close: () => Promise<void> }[];
  size: number;
}
const test = suite<Ctx>('edge update power cuts', {} as Ctx);

test.before(async (ctx) => {
  Object.assign(ctx, await startUpdateBench('mykey-powercut-', TOKEN));
  const rel = makeRelease({ work: ctx.work, main: ctx.built.main, version: '1.1.0', keys: ctx.keys, padBytes: PAD });
  ctx.size = rel.bundle.length;
  await upload(ctx.h.hub, TOKEN, rel);
  const r = await ctx.h.hub.app.request('/v1/admin/rollouts', {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ version: '1.1.0', serviceId: 'library', maxFailures: 100 }),
  });
  assert.is(r.status, 201);
  ctx.edges = [];
  ctx.relays = [];
});
test.after(async (ctx) => {
  await Promise.all(ctx.edges.map((e) => e.stop()));
  await Promise.all(ctx.relays.map((r) => r.close()));
  await ctx.h.close();
  rmSync(ctx.work, { recursive: true, force: true });
});

async function edgeState(ctx: Ctx, edgeId: string) {
  return await ctx.h.hub.releaseRepo.edge(edgeId);
}

async function settled(ctx: Ctx, e: StandInEdge): Promise<void> {
  await until(
    async () => {
      const s = await edgeState(ctx, e.edgeId);
      return s && s.state === 'installed' && s.running === '1.1.0' && e.current() === '1.1.0';
    },
    {
      what: `${e.edgeId} to settle on 1.1.0`,
      timeoutMs: 40_000,
      intervalMs: 150,
      detail: async () => `${JSON.stringify(await edgeState(ctx, e.edgeId))}, current ${e.current()}, exits ${JSON.stringify(e.exits)}, lines ${JSON.stringify(e.lines.slice(-6))}`,
    },
  );
}

/** What a working install looks like after a cut: `current` names a complete release, no scratch left behind once settled. */
function assertWhole(e: StandInEdge) {
  const cur = e.current();
  if (cur) assert.ok(existsSync(join(e.root, 'updates', 'releases', cur, 'main.js')), 'current points at a complete release');
  assert.not.ok(
    readdirSync(join(e.root, 'updates', 'releases')).some((n) => n.endsWith('.partial')),
    'no half-unpacked folder is kept',
  );
}

const STEPS: UpdateStep[] = ['verify', 'unpack', 'switch', 'restart', 'self_test'];

test('a power cut at each step (verify, unpack, switch, restart, self-test) leaves an edge that ends on the new version, reported installed', async (ctx) => {
  const edges = await Promise.all(
    STEPS.map((step) =>
      StandInEdge.create({
        hub: ctx.h.hub,
        work: ctx.work,
        edgeId: `cut-${step.replace('_', '-')}`,
        serviceId: 'library',
        built: ctx.built,
        releaseKey: ctx.keys.publicKeyLine,
        pauseAt: step,
        selfTestMs: 4000,
      }),
    ),
  );
  ctx.edges.push(...edges);
  for (const e of edges) e.start();
  await Promise.all(
    edges.map(async (e) => {
      await e.waitFor((l) => l.event === 'paused', 40_000);
      e.kill();
    }),
  );
  await Promise.all(edges.map((e) => settled(ctx, e)));
  for (const e of edges) {
    assertWhole(e);
    assert.ok(e.exits.includes(null), `${e.edgeId} was killed`);
  }
});

test('a power cut mid-download resumes from the bytes on disk (Range) and installs the whole bundle', async (ctx) => {
  const relay = await startRelay(ctx.h.hub.addresses.deviceApi!, { bytesPerTick: 16_384 });
  ctx.relays.push(relay);
  const e = await StandInEdge.create({ hub: ctx.h.hub, work: ctx.work, edgeId: 'cut-download', serviceId: 'library', built: ctx.built, releaseKey: ctx.keys.publicKeyLine, hubUrl: relay.url });
  ctx.edges.push(e);
  e.start();
  const part = join(e.root, 'updates', 'downloads', '1.1.0.part');
  // Polled often: the edge is cut while the download is under way.
  await until(() => existsSync(part) && statSync(part).size > 300_000, { what: 'the download to start' });
  e.kill();
  const kept = statSync(part).size;
  assert.ok(kept > 0 && kept < ctx.size, 'cut midway');
  await settled(ctx, e);
  assertWhole(e);
  assert.not.ok(existsSync(part), 'the download is removed once installed');
  // Resumed, not restarted: what crossed the link in all is less than the bundle plus what was kept.
  assert.ok(relay.relayed() < ctx.size + kept, `relayed ${relay.relayed()} for a ${ctx.size}-byte bundle with ${kept} kept`);
});

test('a download cut off midway is retried with Range and completes; one that never completes is reported and never unpacked', async (ctx) => {
  const relay = await startRelay(ctx.h.hub.addresses.deviceApi!, { cutAfter: 400_000, cuts: 1 });
  ctx.relays.push(relay);
  const e = await StandInEdge.create({ hub: ctx.h.hub, work: ctx.work, edgeId: 'cut-link', serviceId: 'library', built: ctx.built, releaseKey: ctx.keys.publicKeyLine, hubUrl: relay.url });
  ctx.edges.push(e);
  e.start();
  await settled(ctx, e);
  assertWhole(e);

  // Every connection cut: the edge says why and keeps running its version, with nothing unpacked.
  const dead = await startRelay(ctx.h.hub.addresses.deviceApi!, { cutAfter: 200_000, cuts: 1_000_000 });
  ctx.relays.push(dead);
  const f = await StandInEdge.create({ hub: ctx.h.hub, work: ctx.work, edgeId: 'cut-always', serviceId: 'library', built: ctx.built, releaseKey: ctx.keys.publicKeyLine, hubUrl: dead.url });
  ctx.edges.push(f);
  f.start();
  const s = await until(
    async () => {
      const st = await edgeState(ctx, f.edgeId);
      return st?.code === 'release_download_incomplete' && st;
    },
    { what: 'the report of the incomplete download', intervalMs: 100, detail: async () => JSON.stringify(await edgeState(ctx, f.edgeId)) },
  );
  assert.is(s.state, 'downloading');
  assert.is(s.running, '1.0.0');
  assert.is(f.current(), null, 'still the factory install');
  assert.not.ok(existsSync(join(f.root, 'updates', 'releases', '1.1.0')), 'nothing installed from a partial bundle');
});

test.run();
