// PIN-checked touch (#14) with the whole edge agent (edge/main.ts) against a real hub: the service is
// set to `pin` at the hub, the agent learns it with its device config over mutual TLS (with the JPKI
// anchors), a touch of a registered and linked card opens the PIN pad on the kiosk page, the PIN posted
// to the page is checked by the card and the signature by the edge, and the service ID reaches the
// business system. No log record at any level holds the PIN; the state directory keeps the level.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, generateRsaKeyPair, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../../../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../../../provisioning/virtual-card/vpcd-slot.ts';
import { silentLogger, tapLogs } from '../../../shared/log.ts';
import { loadEdgeConfig } from '../../../edge/config.ts';
import { createEdgeAgent, type EdgeAgent } from '../../../edge/main.ts';
import type { TouchResult } from '../../../edge/handoff/index.ts';
import { removeCard, requirePcscd, vpcdReaderName } from '../../helpers/pcsc.ts';
import { agentConfig, enrollEdge } from '../../helpers/enrolled-edge.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';

const READER = vpcdReaderName(0);
const PIN = '4826';

interface Ctx {
  ca: TestCa;
  h: TestHub;
  dir: string;
  received: TouchResult[];
  server: Server;
  slot: VpcdSlot;
  agent: EdgeAgent;
  logs: string[];
  untap: () => void;
}
const test = suite<Ctx>('edge agent: PIN-checked touch', {} as Ctx);

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test.before(async (ctx) => {
  await requirePcscd();
  ctx.logs = [];
  ctx.untap = tapLogs((r) => ctx.logs.push(JSON.stringify(r)));
  ctx.ca = await createTestCa({ label: 'agent-pin' });
  ctx.h = await startTestHub({ ca: ctx.ca });
  await ctx.h.hub.start();
  await ctx.h.hub.links.createService({ id: 'points', name: 'Shopping street points' });
  await ctx.h.hub.links.setTouchAssurance('points', 'pin');
  const enrolled = await enrollEdge(ctx.h.hub, 'pts-counter-1', 'points');
  ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-edge-pin-'));
  ctx.received = [];
  ctx.server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      ctx.received.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => ctx.server.listen(0, '127.0.0.1', r));
  const webhook = `http://127.0.0.1:${(ctx.server.address() as AddressInfo).port}/touch`;
  const config = loadEdgeConfig({ env: {}, overrides: agentConfig(ctx.h.hub, enrolled, { dir: ctx.dir, webhook, logLevel: 'debug' }) });
  ctx.agent = createEdgeAgent(config, { log: silentLogger });
  ctx.slot = new VpcdSlot({ slot: 0, log: () => {} });
});

test.after(async (ctx) => {
  ctx.untap?.();
  await ctx.slot?.remove().catch(() => {});
  await ctx.agent?.stop();
  await ctx.h?.close();
  ctx.server?.closeAllConnections();
  await new Promise((r) => ctx.server?.close(r));
  rmSync(ctx.dir, { recursive: true, force: true });
});

test('a service set to PIN at the hub: the agent asks for the PIN on its kiosk page, the card signs, the service ID is handed over', async (ctx) => {
  const keys = await generateRsaKeyPair();
  const file = await makeCardFile({ ca: ctx.ca, keyPair: keys, pin: PIN, withMyKeyApp: false });
  const certDer = new Uint8Array(Buffer.from(file.jpki.authCert, 'base64'));
  const reg = await ctx.h.request('/v1/mykey-ids', { proof: await ctx.h.proof({ certDer, keyPair: keys } as IssuedCert) });
  assert.is(reg.status, 201, await reg.clone().text());
  const { mykeyId } = (await reg.json()) as { mykeyId: string };
  await ctx.h.hub.links.link({ serviceId: 'points', mykeyId, serviceUserId: 'PT-424242', by: 'test' });
  // The card of the same person with the MyKey ID written into its MyKey area.
  const withId = structuredClone(file);
  withId.mykey = { present: true, idArea: { reserved: true, content: Buffer.from(mykeyId, 'latin1').toString('hex') }, writeKey: file.mykey.writeKey };

  await ctx.agent.start();
  await waitFor('synced and connected', () => ctx.agent.cache.synced && ctx.agent.sync.connected && ctx.agent.cache.size === 2);
  await waitFor('the reader', () => ctx.agent.manager.readers().includes(READER));
  assert.is(ctx.agent.state.identity()?.touchAssurance, 'pin');
  assert.is(ctx.agent.state.identity()?.jpkiAnchors?.length, 1);

  for (const card of [withId, file]) {
    const before = ctx.received.length;
    await ctx.slot.insert(new VirtualCard(card));
    const kiosk = ctx.agent.kiosk!.url;
    await waitFor('the PIN pad', async () => ((await (await fetch(`${kiosk}/api/view`)).json()) as { screen: string }).screen === 'pin');
    assert.is(ctx.received.length, before, 'nothing is handed over before the PIN');
    const posted = await fetch(`${kiosk}/api/pin`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pin: PIN }) });
    assert.is(posted.status, 200, await posted.clone().text());
    await waitFor('the hand-off', () => ctx.received.length > before);
    const r = ctx.received[before];
    assert.equal([r.outcome, r.serviceUserId, r.serviceId], ['linked', 'PT-424242', 'points']);
    await removeCard(ctx.agent.manager, ctx.slot, READER);
  }
  assert.equal(ctx.agent.pinTouch.stats(), { pinTouches: 2, pinVerified: 2, pinFailures: 0 });
  const logged = ctx.logs.join('\n');
  assert.ok(ctx.logs.length > 0, 'the logs were tapped');
  assert.not.ok(logged.includes(PIN), 'no log record holds the PIN');
  await ctx.agent.state.flush();
  const meta = readFileSync(join(ctx.agent.config.stateDir, 'meta.json'), 'utf8');
  assert.not.ok(meta.includes(PIN), 'the state holds no PIN');
  assert.ok(meta.includes('"touchAssurance":"pin"'), 'the state keeps the level for a reboot offline');
});

test.run();
