// The real built agent updates itself: `npm run build`'s edge package installed read-only, started
// through its boot.js with a separate updates folder (as the enrolled unit runs it) under a supervisor
// that restarts it like systemd; a signed release of the same package rolls out and passes the agent's
// own self-test (online and synced, reader layer up, a lookup); a release that crashes at load is
// rolled back by the launcher's boot count and reported as update_crashed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { buildAll } from '../../../scripts/build.ts';
import { generateReleaseKeys, manifestFor, signManifest, type ReleaseKeyPair } from '../../../provisioning/release/sign.ts';
import { packFolder } from '../../../provisioning/release/tar.ts';
import type { TestHub } from '../../helpers/hub.ts';
import { upload, startReleaseHub } from './helpers.ts';
import { enrollEdge } from '../../helpers/enrolled-edge.ts';
import { until } from '../../helpers/polling.ts';

const TOKEN = 'operator-token-for-real-agent';
const ROOT = join(import.meta.dirname, '..', '..', '..');
interface Ctx {
  h: TestHub;
  work: string;
  keys: ReleaseKeyPair;
  pkg: string;
  install: string;
  updates: string;
  child?: ChildProcess;
  stopped: boolean;
  output: string;
}
const test = suite<Ctx>('real agent update', {} as Ctx);

function run(ctx: Ctx, config: string) {
  if (ctx.stopped) return;
  const c = spawn(process.execPath, [join(ctx.install, 'boot.js'), '--updates-dir', ctx.updates, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  ctx.child = c;
  c.stdout!.on('data', (d: Buffer) => (ctx.output = (ctx.output + d.toString()).slice(-20_000)));
  c.stderr!.on('data', (d: Buffer) => (ctx.output = (ctx.output + d.toString()).slice(-20_000)));
  c.on('exit', () => setTimeout(() => run(ctx, config), 100));
}

test.before(async (ctx) => {
  ctx.work = mkdtempSync(join(tmpdir(), 'mykey-real-update-'));
  ctx.keys = generateReleaseKeys();
  ctx.stopped = false;
  ctx.output = '';
  await buildAll(join(ctx.work, 'dist'), ['edge']);
  ctx.pkg = join(ctx.work, 'dist', 'edge');
  ctx.install = join(ctx.work, 'opt');
  cpSync(ctx.pkg, ctx.install, { recursive: true });
  // The checkout's node_modules stands in for `npm ci --omit=dev` (test/build covers that install).
  symlinkSync(join(ROOT, 'node_modules'), join(ctx.install, 'node_modules'));
  ctx.updates = join(ctx.work, 'var', 'updates');
  ctx.h = await startReleaseHub(ctx.keys, TOKEN);
  const e = await enrollEdge(ctx.h.hub, 'lib-real');
  const tls = join(ctx.work, 'tls');
  mkdirSync(tls);
  writeFileSync(join(tls, 'ca.pem'), e.caPem);
  writeFileSync(join(tls, 'cert.pem'), e.certPem);
  writeFileSync(join(tls, 'key.pem'), e.keyPem);
  const config = join(ctx.work, 'edge.json');
  writeFileSync(
    config,
    JSON.stringify({
      edgeId: 'lib-real',
      serviceId: 'library',
      hub: { url: ctx.h.hub.addresses.deviceApi },
      broker: { url: ctx.h.hub.addresses.mqtts },
      tls: { ca: join(tls, 'ca.pem'), cert: join(tls, 'cert.pem'), key: join(tls, 'key.pem') },
      stateDir: join(ctx.work, 'var', 'state'),
      kiosk: { enabled: false },
      registration: { enabled: false },
      // No reader of this machine: the vpcd slots belong to the serial tests running meanwhile, whose
      // cards this agent would otherwise touch (its reader layer is up all the same, as the self-test asks).
      readers: { include: ['no reader of this test'] },
      updates: { releaseKey: ctx.keys.publicKeyLine, checkSeconds: 5, selfTestSeconds: 30 },
      logLevel: 'warn',
    }),
  );
  run(ctx, config);
});
test.after(async (ctx) => {
  ctx.stopped = true;
  const c = ctx.child;
  if (c && c.exitCode === null && c.signalCode === null) await new Promise<void>((r) => (c.once('exit', () => r()), c.kill('SIGKILL')));
  await ctx.h.close();
  rmSync(ctx.work, { recursive: true, force: true });
});

async function edgeReaches(ctx: Ctx, pred: (s: { running: string; state: string; code: string | null }) => boolean, what: string) {
  return until(
    async () => {
      const s = await ctx.h.hub.releaseRepo.edge('lib-real');
      return s && pred(s) && s;
    },
    { what, timeoutMs: 90_000, intervalMs: 250, detail: async () => `${JSON.stringify(await ctx.h.hub.releaseRepo.edge('lib-real'))}\n${ctx.output.slice(-3000)}` },
  );
}

const current = (ctx: Ctx) => {
  try {
    return readlinkSync(join(ctx.updates, 'current')).split('/').pop();
  } catch {
    return null;
  }
};

test('the built agent installs a signed release of itself, restarts into it and passes its own self-test', async (ctx) => {
  const bundle = packFolder(ctx.pkg);
  await upload(ctx.h.hub, TOKEN, { bundle, signed: signManifest(manifestFor(bundle, { version: '0.2.0', services: ['library'] }), createPrivateKey(ctx.keys.privateKeyPem)) });
  const r = await ctx.h.hub.releases.startRollout({ version: '0.2.0', serviceId: 'library' });
  assert.ok(r.ok);
  const s = await edgeReaches(ctx, (x) => x.running === '0.2.0' && x.state === 'installed', 'installed');
  assert.is(s.code, null);
  assert.is(current(ctx), '0.2.0');
  // Its status (the console's edge list) names the release it runs.
  await until(async () => (await ctx.h.hub.devices.get('lib-real'))?.version === '0.2.0', { what: 'the status naming 0.2.0', intervalMs: 200 });
  assert.is((await ctx.h.hub.devices.get('lib-real'))?.version, '0.2.0');
});

test('a release that crashes at load is rolled back by the launcher and reported as update_crashed', async (ctx) => {
  const src = join(ctx.work, 'broken');
  mkdirSync(src);
  writeFileSync(join(src, 'main.js'), "throw new Error('broken at load');\n");
  const bundle = packFolder(src);
  await upload(ctx.h.hub, TOKEN, { bundle, signed: signManifest(manifestFor(bundle, { version: '0.3.0' }), createPrivateKey(ctx.keys.privateKeyPem)) });
  const r = await ctx.h.hub.releases.startRollout({ version: '0.3.0', maxFailures: 1 });
  assert.ok(r.ok);
  const s = await edgeReaches(ctx, (x) => x.state === 'rolled_back', 'rolled back');
  assert.is(s.code, 'update_crashed');
  assert.is(s.running, '0.2.0');
  assert.is(current(ctx), '0.2.0');
  assert.is((await ctx.h.hub.releaseRepo.rollout(r.ok ? r.value.id : 0))?.state, 'halted');
});

test.run();
