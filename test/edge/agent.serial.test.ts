// The whole edge agent (edge/main.ts) end to end: a real hub with its device API and MQTT broker over
// TLS, the agent enrolled with a device certificate, and virtual cards touched through pcscd + vpcd.
// Touch -> hand-off received by a test HTTP server and shown on the kiosk page; a revocation at the hub
// stops the next hand-off; the state directory holds no trace of the touches; and `tsx edge/main.ts`
// stops cleanly on SIGTERM.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, generateRsaKeyPair, type CryptoKeyPair, type IssuedCert, type TestCa } from '../../provisioning/test-ca/ca.ts';
import { makeCardFile, type CardFile } from '../../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../../provisioning/virtual-card/vpcd-slot.ts';
import { silentLogger } from '../../shared/log.ts';
import { loadEdgeConfig } from '../../edge/config.ts';
import { createEdgeAgent, type EdgeAgent } from '../../edge/main.ts';
import type { TouchResult } from '../../edge/handoff/index.ts';
import { removeCard, requirePcscd, vpcdReaderName } from '../helpers/pcsc.ts';
import { crlRevoking, startTestHub, type TestHub } from '../helpers/hub.ts';
import { until } from '../helpers/polling.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';
import { agentConfig, enrollEdge } from '../helpers/enrolled-edge.ts';

const READER = vpcdReaderName(0);

interface Ctx {
  ca: TestCa;
  h: TestHub;
  dir: string;
  configFile: string;
  received: TouchResult[];
  hook: WebhookReceiver;
  slot: VpcdSlot;
  agent: EdgeAgent;
}
const test = suite<Ctx>('edge agent end to end', {} as Ctx);

/** A card whose key we hold (so the hub registration can be signed like the card signs). */
async function card(ctx: Ctx, keyPair: CryptoKeyPair, mykeyId?: string): Promise<{ file: CardFile; cert: IssuedCert }> {
  const file = await makeCardFile({ ca: ctx.ca, keyPair, ...(mykeyId ? { mykeyId } : { withMyKeyApp: false }) });
  const certDer = new Uint8Array(Buffer.from(file.jpki.authCert, 'base64'));
  return { file, cert: { certDer, keyPair } as IssuedCert };
}

async function register(ctx: Ctx, cert: IssuedCert): Promise<string> {
  const res = await ctx.h.request('/v1/mykey-ids', { proof: await ctx.h.proof(cert) });
  assert.is(res.status, 201, await res.clone().text());
  return ((await res.json()) as { mykeyId: string }).mykeyId;
}

/** Touches a card and returns its hand-off (or undefined when none comes within `ms`). */
async function touch(ctx: Ctx, file: CardFile, ms = 5000): Promise<TouchResult | undefined> {
  const before = ctx.received.length;
  const touchesBefore = ctx.agent.lookup.counters().touches;
  await ctx.slot.insert(new VirtualCard(file));
  await until(() => ctx.agent.lookup.counters().touches > touchesBefore, { what: 'the touch', timeoutMs: ms });
  await new Promise((r) => setTimeout(r, 100)); // a hand-off, if any, is on its way over loopback
  await removeCard(ctx.agent.manager, ctx.slot, READER);
  return ctx.received.length > before ? ctx.received[before] : undefined;
}

function stateDigest(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [
        f,
        createHash('sha256')
          .update(readFileSync(join(dir, f)))
          .digest('hex'),
      ]),
  );
}

test.before(async (ctx) => {
  await requirePcscd();
  ctx.ca = await createTestCa({ label: 'agent-e2e' });
  ctx.h = await startTestHub({ ca: ctx.ca });
  await ctx.h.hub.start();
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library' });
  const enrolled = await enrollEdge(ctx.h.hub, 'lib-counter-1');
  ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-edge-agent-'));

  ctx.received = [];
  ctx.hook = await startWebhookReceiver((r) => {
    ctx.received.push(JSON.parse(r.body));
    return 204;
  });
  const webhook = ctx.hook.url('/touch');

  const config = agentConfig(ctx.h.hub, enrolled, { dir: ctx.dir, webhook, logLevel: 'warn' });
  ctx.configFile = join(ctx.dir, 'edge.json');
  writeFileSync(ctx.configFile, JSON.stringify(config, null, 2));
  ctx.slot = new VpcdSlot({ slot: 0, log: () => {} });
});

test.after(async (ctx) => {
  await ctx.slot?.remove().catch(() => {});
  await ctx.agent?.stop();
  await ctx.h?.close();
  await ctx.hook?.close();
  rmSync(ctx.dir, { recursive: true, force: true });
  // Twice, on a busy machine, this file's process outlived its last test with no JS handle left (a
  // native one, not reproduced since). Say what is still referenced and end rather than hang the run.
  setTimeout(() => {
    const libuv = (process.report!.getReport() as unknown as { libuv: { type: string; is_active: boolean; is_referenced: boolean }[] }).libuv;
    console.error('[agent test] still running 10 s after the last test; referenced handles:', JSON.stringify(libuv.filter((h) => h.is_active && h.is_referenced).map((h) => h.type)));
    process.exit(process.exitCode ?? 0);
  }, 10_000).unref();
});

test('refuses a config with every problem listed at once', () => {
  try {
    loadEdgeConfig({ env: {}, overrides: { edgeId: 'Bad Id', staleness: { policy: 'maybe' }, handoff: { targets: [{ type: 'webhook', url: 'ftp://x' }] } } });
    assert.unreachable('should have thrown');
  } catch (e) {
    const msg = (e as Error).message;
    for (const p of ['/edgeId', '/serviceId', '/hub', '/broker', '/tls', '/staleness/policy', '/handoff/targets/0']) assert.ok(msg.includes(p), `mentions ${p}`);
  }
});

test('a linked card touched on the reader is handed over, revoked at the hub it is not, and the state keeps no trace of touches', async (ctx) => {
  const keys = await generateRsaKeyPair();
  const byCert = await card(ctx, keys);
  const mykeyId = await register(ctx, byCert.cert);
  const byMyKey = await card(ctx, keys, mykeyId); // the same person's card with the MyKey ID written
  await ctx.h.hub.links.link({ serviceId: 'library', mykeyId, serviceUserId: 'LIB-424242', by: 'test' });

  ctx.agent = createEdgeAgent(loadEdgeConfig({ file: ctx.configFile, env: {} }), { log: silentLogger });
  await ctx.agent.start();
  await until(() => ctx.agent.cache.synced && ctx.agent.sync.connected && ctx.agent.cache.size === 2, { what: 'synced and connected' });
  await until(() => ctx.agent.manager.readers().includes(READER), { what: 'the reader' });

  const a = await touch(ctx, byMyKey.file);
  assert.equal([a?.outcome, a?.serviceUserId, a?.serviceId, a?.edgeId], ['linked', 'LIB-424242', 'library', 'lib-counter-1']);
  assert.not.ok(JSON.stringify(a).includes(mykeyId), 'the MyKey ID is not handed over');
  const view = (await (await fetch(`${ctx.agent.kiosk!.url}/api/view`)).json()) as { screen: string; result?: { serviceUserId?: string } };
  assert.equal([view.screen, view.result?.serviceUserId], ['result', 'LIB-424242']);

  const b = await touch(ctx, byCert.file);
  assert.equal([b?.outcome, b?.serviceUserId], ['linked', 'LIB-424242']);

  // Many touches: the state directory changes only in its aggregate counters.
  await ctx.agent.state.flush();
  const before = stateDigest(ctx.agent.config.stateDir);
  for (let i = 0; i < 5; i++) await touch(ctx, i % 2 ? byCert.file : byMyKey.file);
  await ctx.agent.state.flush();
  const after = stateDigest(ctx.agent.config.stateDir);
  for (const f of Object.keys(after)) if (f !== 'meta.json') assert.is(after[f], before[f], `${f} unchanged by touches`);
  const meta = readFileSync(join(ctx.agent.config.stateDir, 'meta.json'), 'utf8');
  for (const trace of ['Virtual PCD', mykeyId, 'LIB-424242', a!.transaction]) assert.not.ok(meta.includes(trace), `meta.json holds no ${trace}`);
  assert.is(ctx.agent.state.counters().touches, 7, 'only the aggregate counters moved');

  // The card is revoked: the hub's CRL check suspends the MyKey ID, the edge purges at once.
  const crl = await crlRevoking(ctx.ca, [BigInt('0x' + new (await import('node:crypto')).X509Certificate(byCert.cert.certDer).serialNumber)]);
  assert.is((await ctx.h.hub.crlManager.apply(crl, 'test')).newlySuspended, 1);
  await until(() => ctx.agent.cache.size === 0, { what: 'the purge' });
  for (const f of [byMyKey.file, byCert.file]) {
    const r = await touch(ctx, f);
    assert.is(r?.outcome, 'not_linked', 'a suspended MyKey ID is never handed over');
    assert.is(r?.serviceUserId, undefined);
  }
  await ctx.agent.stop();
});

test('tsx edge/main.ts runs from its config file and stops cleanly on SIGTERM', async (ctx) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'edge/main.ts', '--config', ctx.configFile], {
    cwd: join(import.meta.dirname, '../..'),
    env: { ...process.env, MYKEY_EDGE_LOG_LEVEL: 'info', MYKEY_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdout.resume();
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await until(() => err.includes('edge agent started'), { what: 'the agent to start' });
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000))]);
    assert.is(code, 0, err);
    assert.ok(err.includes('edge agent stopped'));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test.run();
