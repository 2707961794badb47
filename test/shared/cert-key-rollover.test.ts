// A CA key rolled over under the same issuer Name, with a serial reused under the new key: holder B's
// card must never find holder A's service ID at an edge in certificate mode. From key scheme
// `scrypt-v3` on, the certificate identity names the issuing key (its authorityKeyIdentifier,
// RFC 5280 4.2.1.1; shared/cert-identity.ts). Through the real hub, device API over mutual TLS, MQTT
// over TLS, the edge's sync agent, cache and touch lookup with the card's certificate DER.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, rollOverTestCa, type IssuedCert, type TestCa } from '../../provisioning/test-ca/ca.ts';
import type { EdgeCache } from '../../edge/cache/edge-cache.ts';
import type { EdgeState } from '../../edge/state/edge-state.ts';
import type { SyncAgent } from '../../edge/sync/sync-agent.ts';
import { certIdentityOf } from '../../edge/lookup/cert-key.ts';
import type { LookupDecision } from '../../edge/lookup/index.ts';
import { issue, registerHolder, startTestHub, type TestHub } from '../helpers/hub.ts';
import { until } from '../helpers/polling.ts';
import { counterLink, enrollEdge, type EdgeTls } from '../helpers/enrolled-edge.ts';
import { edgeStack } from '../helpers/edge-stack.ts';

interface Edge {
  creds: EdgeTls;
  cache: EdgeCache;
  state: EdgeState;
  agent: SyncAgent;
  snapshots: number[];
  touch(cert: IssuedCert): Promise<LookupDecision>;
}

interface Ctx {
  h: TestHub;
  old: TestCa;
  next: TestCa;
  dirs: string[];
  edges: Edge[];
}
const t = suite<Ctx>('certificate identities across a CA key rollover', {} as Ctx);

t.before(async (ctx) => {
  ctx.old = await createTestCa({ label: 'jpki-old' });
  // The same subject Name bytes, a new key: both anchors live at once.
  ctx.next = await rollOverTestCa(ctx.old, { label: 'jpki-new' });
  ctx.h = await startTestHub({ ca: ctx.old, extraCas: [ctx.next] });
  await ctx.h.hub.start();
  ctx.dirs = [];
  ctx.edges = [];
});
t.after(async (ctx) => {
  for (const e of ctx.edges) {
    await e.agent.stop();
    await e.state.close();
  }
  await ctx.h.close();
  for (const d of ctx.dirs) rmSync(d, { recursive: true, force: true });
});

/** An edge of `serviceId`, enrolled, synced and connected. */
async function edgeOf(ctx: Ctx, serviceId: string, edgeId: string): Promise<Edge> {
  const creds = await enrollEdge(ctx.h.hub, edgeId, serviceId);
  const dir = mkdtempSync(join(tmpdir(), 'cert-key-rollover-'));
  ctx.dirs.push(dir);
  const { cache, state, agent, lookup } = await edgeStack(ctx.h.hub, creds, { dir, version: '0.1.0-certkey' });
  const snapshots: number[] = [];
  agent.events.on('snapshot', (s) => void snapshots.push(s.seq));
  const edge: Edge = { creds, cache, state, agent, snapshots, touch: async (cert) => (await lookup.touch('desk', { kind: 'cert', certDer: cert.certDer })).decision };
  ctx.edges.push(edge);
  await agent.start();
  await until(() => cache.synced && agent.connected, { what: 'synced and connected' });
  return edge;
}

t("holder B's card under the new CA key, with holder A's serial, is not linked; A's card still is", async (ctx) => {
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library', requireHolderProof: false });
  const edge = await edgeOf(ctx, 'library', 'library-desk-1');
  assert.is(edge.cache.scheme, 'scrypt-v3', 'a new service starts on the keys that name the issuing key');
  const serial = 0x4d794b6579n;
  const a = await issue(ctx.old, { serial });
  const aId = (await registerHolder(ctx.h, a)).mykeyId;
  assert.is(await counterLink(ctx.h.hub, edge.creds, a.certDer, 'LIB-A'), 201);
  await edge.agent.catchUp();
  await until(async () => (await edge.touch(a)).outcome === 'linked', { what: 'A linked at the edge' });

  // The CA key rolls over under the same name; the new key reuses A's serial for holder B.
  const b = await issue(ctx.next, { serial });
  const bId = (await registerHolder(ctx.h, b)).mykeyId;
  assert.is.not(bId, aId);
  // The hole: without the issuing key, both cards are one identity.
  const oldForm = [a, b].map((c) => certIdentityOf(c.certDer, 'scrypt-v2'));
  assert.ok(oldForm[0].ok && oldForm[1].ok && oldForm[0].value === oldForm[1].value, 'same name hash and serial');
  const newForm = [a, b].map((c) => certIdentityOf(c.certDer, 'scrypt-v3'));
  assert.ok(newForm[0].ok && newForm[1].ok && newForm[0].value !== newForm[1].value, 'the AKI tells them apart');

  assert.equal(await edge.touch(b), { outcome: 'not_linked' }, "B never gets A's service ID");
  assert.equal(await edge.touch(a), { outcome: 'linked', serviceUserId: 'LIB-A' });
});

t('a service on scrypt-v2 is re-keyed at start (rekeyAll) and its edge follows: the reused serial stops matching', async (ctx) => {
  const links = ctx.h.hub.links;
  await links.createService({ id: 'museum', name: 'Town museum', requireHolderProof: false });
  // A service from before the change: its edges hold scrypt-v2 keys (certificate without its key).
  await ctx.h.hub.linkRepo.setKeyScheme('museum', 'scrypt-v2');
  const edge = await edgeOf(ctx, 'museum', 'museum-gate-1');
  assert.is(edge.cache.scheme, 'scrypt-v2');
  const serial = 0x6d757365756dn;
  const a = await issue(ctx.old, { serial });
  await registerHolder(ctx.h, a);
  assert.is(await counterLink(ctx.h.hub, edge.creds, a.certDer, 'MUS-A'), 201);
  assert.is((await links.changesAfter('museum', 0))[0].keyScheme, 'scrypt-v2');
  await until(async () => (await edge.touch(a)).outcome === 'linked', { what: 'A linked at the edge' });
  const b = await issue(ctx.next, { serial });
  await registerHolder(ctx.h, b);
  // Under scrypt-v2 the hole is open: exactly what the re-key closes.
  assert.equal(await edge.touch(b), { outcome: 'linked', serviceUserId: 'MUS-A' }, 'the v2 collision this fix removes');

  // What the hub runs at start (hub/main.ts): every service on an older scheme moves to scrypt-v3.
  const moved = await links.rekeyAll();
  assert.ok(moved.includes('museum'));
  assert.not.ok(moved.includes('library'), 'a service already on the current scheme stays');
  const head = await links.headSeq('museum');
  const rekey = (await links.changesAfter('museum', head - 1))[0];
  assert.equal([rekey.kind, rekey.keyScheme], ['rekey', 'scrypt-v3']);
  await until(() => edge.snapshots.includes(head) && edge.cache.scheme === 'scrypt-v3', { what: 'the edge fetched the new snapshot' });
  assert.equal(await edge.touch(b), { outcome: 'not_linked' }, "B no longer gets A's service ID");
  assert.equal(await edge.touch(a), { outcome: 'linked', serviceUserId: 'MUS-A' });
  assert.is((await links.snapshot('museum')).keyScheme, 'scrypt-v3');
  assert.equal(await links.rekeyAll(), [], 'only once');
});

t.run();
