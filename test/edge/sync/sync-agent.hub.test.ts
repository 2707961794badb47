// The sync agent against the real hub: device API over mutual TLS and MQTT over TLS with the
// device certificate from the hub's device CA, the hub's own change log, outbox and ACLs.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import type { SyncEvents } from '../../../edge/sync/sync-agent.ts';
import { issuerKeyOf } from '../../../shared/cert-identity.ts';
import { createLogger } from '../../../shared/log.ts';
import { edgeCommandTopic } from '../../../shared/topics.ts';
import { crlRevoking, registerHolder, type TestHub } from '../../helpers/hub.ts';
import { until } from '../../helpers/polling.ts';
import { counterLink, startHubWithEdge, type EdgeTls } from '../../helpers/enrolled-edge.ts';
import { edgeStack } from '../../helpers/edge-stack.ts';

interface Ctx {
  h: TestHub;
  ca: TestCa;
  edge: EdgeTls;
  dir: string;
}
const test = suite<Ctx>('sync agent against the hub', {} as Ctx);
const log = createLogger('hub-sync-test', { level: (process.env.TEST_LOG as 'info' | undefined) ?? 'silent' });

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ({ h: ctx.h, edge: ctx.edge } = await startHubWithEdge({ ca: ctx.ca, edgeId: 'lib-counter-1', service: { requireHolderProof: false } }));
  ctx.dir = mkdtempSync(join(tmpdir(), 'hub-sync-'));
});
test.after(async (ctx) => {
  await ctx.h.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

test('syncs over mutual TLS, applies a counter link live and purges a CRL suspension', async (ctx) => {
  // One link before the edge starts: it comes with the snapshot.
  const first = await registerHolder(ctx.h);
  assert.is(await counterLink(ctx.h.hub, ctx.edge, first.cert.certDer, 'L-1'), 201);

  const { cache, state, agent } = await edgeStack(ctx.h.hub, ctx.edge, { dir: ctx.dir, version: '0.1.0-e2e', log });
  const purged: SyncEvents['purged'][] = [];
  agent.events.on('purged', (p) => void purged.push(p));
  try {
    await agent.start();
    await until(() => cache.synced && agent.connected, { what: 'synced and connected' });
    await agent.catchUp();
    assert.is(cache.lookupMyKey(first.mykeyId), 'L-1');
    const issuerKey = issuerKeyOf(ctx.ca.nameDer);
    // scrypt-v3: the certificate's identity includes its AKI (the CA's subject key identifier).
    const aki = Buffer.from(ctx.ca.subjectKeyId).toString('hex');
    assert.is(cache.lookupCert(issuerKey, first.cert.serial.toString(16), aki), 'L-1', 'certificate mode');
    assert.is(cache.lookupCert(issuerKey, first.cert.serial.toString(16)), undefined, 'never without the issuing key');

    // A second card linked at the counter arrives over MQTT.
    const second = await registerHolder(ctx.h);
    assert.is(await counterLink(ctx.h.hub, ctx.edge, second.cert.certDer, 'L-2'), 201);
    await until(() => cache.lookupMyKey(second.mykeyId) === 'L-2', { what: 'live link' });

    // The hub sees the edge's retained status with its applied sequence.
    const head = await ctx.h.hub.links.headSeq('library');
    await until(async () => (await ctx.h.hub.devices.get('lib-counter-1'))?.applied_seq === head && (await ctx.h.hub.devices.get('lib-counter-1'))?.online === 1, { what: 'hub has the status' });
    assert.is((await ctx.h.hub.devices.get('lib-counter-1'))?.health, 'ok');

    // The first card is revoked: the CRL check suspends the MyKey ID and the edge purges it at once.
    const der = await crlRevoking(ctx.ca, [first.cert.serial]);
    assert.is((await ctx.h.hub.crlManager.apply(der, 'test')).newlySuspended, 1);
    await until(() => cache.lookupMyKey(first.mykeyId) === undefined, { what: 'purged' });
    assert.is(cache.lookupCert(issuerKey, first.cert.serial.toString(16), aki), undefined);
    assert.is(cache.lookupMyKey(second.mykeyId), 'L-2');
    await until(() => purged.some((p) => p.kind === 'suspend'), { what: 'purge event' });

    // A resync command from the hub: answered on the reply topic, which the hub's ACL lets through
    // (an unauthorised publish would cost the edge its connection).
    const before = agent.stats();
    await ctx.h.hub.broker!.publish(edgeCommandTopic('lib-counter-1'), JSON.stringify({ transaction: 'tx-1', command: 'resync' }));
    await until(() => agent.stats().snapshots === before.snapshots + 1, { what: 'resynced' });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(agent.connected);
    assert.is(agent.stats().connects, before.connects, 'the reply did not cost the connection');
    assert.is(cache.lookupMyKey(second.mykeyId), 'L-2');
  } finally {
    await agent.stop();
    await state.close();
  }
  await until(async () => (await ctx.h.hub.devices.get('lib-counter-1'))?.online === 0, { what: 'hub sees it offline' });
});

test.run();
