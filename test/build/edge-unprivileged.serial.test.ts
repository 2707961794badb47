// The built edge agent runs as its own unprivileged user, as provisioning/edge-service/mykey-edge.service
// runs it: the edge package installed with `npm ci --omit=dev`, `node main.js` started through setpriv
// as `mykey-edge` (no capabilities, no_new_privs), against a real hub (device API and MQTT over TLS)
// and the machine's real pcscd. It reaches the reader layer and syncs, and a linked card touched on a
// vpcd reader is handed over: pcscd let the unprivileged user open a context and connect to the card.
// The user is made here with useradd when missing (tests run as root).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { generateRsaKeyPair, type IssuedCert } from '../../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../../provisioning/virtual-card/vpcd-slot.ts';
import { requirePcscd, vpcdReaderName } from '../helpers/pcsc.ts';
import { testIf } from '../helpers/requires.ts';
import { buildEdgePackage, EDGE_READY, installPackage, openTempDir, spawnEdge, startEdgeSite, type EdgeSite, type RunningEdge } from './edge-fixture.ts';

const USER = 'mykey-edge';
const isRoot = process.getuid?.() === 0;
const t = testIf(isRoot, 'needs root to create the user and drop to it');
const ctx: { work?: string; pkg?: string; site?: EdgeSite; edge?: RunningEdge; slot?: VpcdSlot; uid?: number; gid?: number } = {};

/** The account the service runs as: a system user with no home and no login shell. */
function ensureUser(): { uid: number; gid: number } {
  const id = (flag: string) => spawnSync('id', [flag, USER], { encoding: 'utf8' });
  if (id('-u').status !== 0) {
    const r = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', USER], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`useradd ${USER}: ${r.stderr}`);
  }
  return { uid: Number(id('-u').stdout), gid: Number(id('-g').stdout) };
}

test.before(async () => {
  if (!isRoot) return;
  await requirePcscd();
  const { uid, gid } = ensureUser();
  Object.assign(ctx, { uid, gid });
  ctx.work = openTempDir('mykey-edge-user-');
  ctx.pkg = installPackage(await buildEdgePackage(ctx.work), ctx.work, 'opt-mykey-edge').dir;
  ctx.site = await startEdgeSite({ owner: { uid, gid }, config: { readers: { include: [vpcdReaderName(0)] } } });
  ctx.slot = new VpcdSlot({ slot: 0, log: () => {} });
});

test.after(async () => {
  await ctx.slot?.remove().catch(() => {});
  await ctx.edge?.stop();
  await ctx.site?.close();
  if (ctx.site) rmSync(ctx.site.dir, { recursive: true, force: true });
  if (ctx.work) rmSync(ctx.work, { recursive: true, force: true });
});

t('runs as mykey-edge, reaches the reader layer and syncs with the hub', async () => {
  const site = ctx.site!;
  ctx.edge = spawnEdge(ctx.pkg!, site.configFile, { user: USER });
  const ms = await ctx.edge.until(EDGE_READY, 60_000);
  assert.ok(ms > 0);
  const status = readFileSync(`/proc/${ctx.edge.child.pid}/status`, 'utf8');
  const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status)!.slice(1).map(Number);
  assert.equal(uids, [ctx.uid, ctx.uid, ctx.uid, ctx.uid], 'real, effective, saved and fs uid');
  assert.match(status, /^CapEff:\s+0+$/m, 'no capabilities');
  assert.match(status, /^NoNewPrivs:\s+1$/m);
  // The state directory was made by the agent, so it is the agent's.
  assert.is(statSync(join(site.dir, 'state')).uid, ctx.uid);
  assert.not.match(ctx.edge.log(), /EACCES|permission denied|SCARD_E_NO_ACCESS/i);
});

t('hands over a linked card touched on the reader (pcscd lets mykey-edge use the card)', async () => {
  const site = ctx.site!;
  const keyPair = await generateRsaKeyPair();
  const file = await makeCardFile({ ca: site.hub.ca, keyPair, withMyKeyApp: false });
  const cert = { certDer: new Uint8Array(Buffer.from(file.jpki.authCert, 'base64')), keyPair } as IssuedCert;
  const res = await site.hub.request('/v1/mykey-ids', { proof: await site.hub.proof(cert) });
  assert.is(res.status, 201, await res.clone().text());
  const { mykeyId } = (await res.json()) as { mykeyId: string };
  await site.hub.hub.links.link({ serviceId: 'library', mykeyId, serviceUserId: 'LIB-777001', by: 'test' });

  const edge = ctx.edge!;
  // The link reaches the edge over MQTT; a touch before it would be not_linked, so touch until linked.
  const deadline = Date.now() + 20_000;
  let line: { outcome?: string; serviceUserId?: string } | undefined;
  while (Date.now() < deadline && line?.outcome !== 'linked') {
    const before = edge.out().length;
    await ctx.slot!.insert(new VirtualCard(file));
    const seen = Date.now() + 5000;
    while (Date.now() < seen && !edge.out().slice(before).includes('\n')) await new Promise((r) => setTimeout(r, 25));
    await ctx.slot!.remove();
    const lines = edge.out().slice(before).trim().split('\n').filter(Boolean);
    line = lines.length ? (JSON.parse(lines[lines.length - 1]) as typeof line) : undefined;
    if (line?.outcome !== 'linked') await new Promise((r) => setTimeout(r, 300));
  }
  assert.equal([line?.outcome, line?.serviceUserId], ['linked', 'LIB-777001'], `${edge.out()}\n${edge.log()}`);
  assert.not.match(edge.log(), /EACCES|SCARD_E_NO_ACCESS/i);
});

t('stops cleanly on SIGTERM', async () => {
  assert.is(await ctx.edge!.stop(), 0, ctx.edge!.log());
});

test.run();
