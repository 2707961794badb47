// The sync agent against the real hub: device API over mutual TLS and MQTT over TLS with the
// device certificate from the hub's device CA, the hub's own change log, outbox and ACLs.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeviceCsr } from '../../../hub/pki/device-ca.ts';
import { createTestCa, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { EdgeCache } from '../../../edge/cache/edge-cache.ts';
import { EdgeState } from '../../../edge/state/edge-state.ts';
import { SyncAgent, type SyncEvents } from '../../../edge/sync/sync-agent.ts';
import { issuerKeyOf } from '../../../shared/cert-identity.ts';
import { createLogger } from '../../../shared/log.ts';
import { edgeCommandTopic } from '../../../shared/topics.ts';
import { issue, startTestHub, type TestHub } from '../../helpers/hub.ts';
import { waitFor } from './helpers/sync-suite.ts';

interface Ctx {
  h: TestHub;
  ca: TestCa;
  edge: { certPem: string; keyPem: string; caPem: string };
  dir: string;
}
const test = suite<Ctx>('sync agent against the hub', {} as Ctx);
const log = createLogger('hub-sync-test', { level: (process.env.TEST_LOG as 'info' | undefined) ?? 'silent' });

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.h = await startTestHub({ ca: ctx.ca, overrides: { broker: { port: 0 }, devices: { httpsPort: 0 } } });
  await ctx.h.hub.start();
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library', requireHolderProof: false });
  const csr = await createDeviceCsr('lib-counter-1');
  const enrolled = await ctx.h.hub.enrollment!.enroll(csr.csrDer, { edgeId: 'lib-counter-1', serviceId: 'library', validityDays: 30 });
  if (!enrolled.ok) throw new Error(enrolled.message);
  ctx.edge = { certPem: enrolled.value.certPem, keyPem: csr.keyPem, caPem: enrolled.value.caPem };
  ctx.dir = mkdtempSync(join(tmpdir(), 'hub-sync-'));
});
test.after(async (ctx) => {
  await ctx.h.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

// A counter registration, as edge/register will make it: the card's certificate and the service card number.
function counterLink(ctx: Ctx, certDer: Uint8Array, serviceUserId: string): Promise<number> {
  const url = new URL('/v1/device/links', ctx.h.hub.addresses.deviceApi);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', ca: ctx.edge.caPem, cert: ctx.edge.certPem, key: ctx.edge.keyPem, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ identity: { certificate: Buffer.from(certDer).toString('base64') }, serviceUserId }));
  });
}

async function registered(ctx: Ctx) {
  const cert = await issue(ctx.ca);
  const reg = await ctx.h.request('/v1/mykey-ids', { proof: await ctx.h.proof(cert) });
  if (reg.status !== 201) throw new Error(`register: ${reg.status}`);
  const { mykeyId } = (await reg.json()) as { mykeyId: string };
  return { cert, mykeyId };
}

test('syncs over mutual TLS, applies a counter link live and purges a CRL suspension', async (ctx) => {
  // One link before the edge starts: it comes with the snapshot.
  const first = await registered(ctx);
  assert.is(await counterLink(ctx, first.cert.certDer, 'L-1'), 201);

  const cache = new EdgeCache();
  const state = new EdgeState({ dir: ctx.dir, log });
  await state.open(cache);
  const agent = new SyncAgent({
    hubUrl: ctx.h.hub.addresses.deviceApi!,
    brokerUrl: ctx.h.hub.addresses.mqtts!,
    tls: { ca: ctx.edge.caPem, cert: ctx.edge.certPem, key: ctx.edge.keyPem },
    state,
    cache,
    version: '0.1.0-e2e',
    log,
    backoff: { minMs: 100, maxMs: 500 },
  });
  const purged: SyncEvents['purged'][] = [];
  agent.events.on('purged', (p) => void purged.push(p));
  try {
    await agent.start();
    await waitFor('synced and connected', () => cache.synced && agent.connected, 15_000);
    await agent.catchUp();
    assert.is(cache.lookupMyKey(first.mykeyId), 'L-1');
    const issuerKey = issuerKeyOf(ctx.ca.nameDer);
    // scrypt-v3: the certificate's identity includes its AKI (the CA's subject key identifier).
    const aki = Buffer.from(ctx.ca.subjectKeyId).toString('hex');
    assert.is(cache.lookupCert(issuerKey, first.cert.serial.toString(16), aki), 'L-1', 'certificate mode');
    assert.is(cache.lookupCert(issuerKey, first.cert.serial.toString(16)), undefined, 'never without the issuing key');

    // A second card linked at the counter arrives over MQTT.
    const second = await registered(ctx);
    assert.is(await counterLink(ctx, second.cert.certDer, 'L-2'), 201);
    await waitFor('live link', () => cache.lookupMyKey(second.mykeyId) === 'L-2', 10_000);

    // The hub sees the edge's retained status with its applied sequence.
    const head = await ctx.h.hub.links.headSeq('library');
    await waitFor('hub has the status', async () => (await ctx.h.hub.devices.get('lib-counter-1'))?.applied_seq === head && (await ctx.h.hub.devices.get('lib-counter-1'))?.online === 1, 10_000);
    assert.is((await ctx.h.hub.devices.get('lib-counter-1'))?.health, 'ok');

    // The first card is revoked: the CRL check suspends the MyKey ID and the edge purges it at once.
    const { writeCrl } = await import('../../../provisioning/test-ca/crl-writer.ts');
    const der = await writeCrl({
      issuerNameDer: ctx.ca.nameDer,
      signingKey: ctx.ca.keyPair.privateKey,
      thisUpdate: new Date(),
      nextUpdate: new Date(Date.now() + 86400_000),
      crlNumber: 1n,
      entries: [{ serial: first.cert.serial, revokedAt: new Date(), reason: 'keyCompromise' }],
    });
    assert.is((await ctx.h.hub.crlManager.apply(der, 'test')).newlySuspended, 1);
    await waitFor('purged', () => cache.lookupMyKey(first.mykeyId) === undefined, 10_000);
    assert.is(cache.lookupCert(issuerKey, first.cert.serial.toString(16), aki), undefined);
    assert.is(cache.lookupMyKey(second.mykeyId), 'L-2');
    await waitFor('purge event', () => purged.some((p) => p.kind === 'suspend'));

    // A resync command from the hub: answered on the reply topic, which the hub's ACL lets through
    // (an unauthorised publish would cost the edge its connection).
    const before = agent.stats();
    await ctx.h.hub.broker!.publish(edgeCommandTopic('lib-counter-1'), JSON.stringify({ transaction: 'tx-1', command: 'resync' }));
    await waitFor('resynced', () => agent.stats().snapshots === before.snapshots + 1, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(agent.connected);
    assert.is(agent.stats().connects, before.connects, 'the reply did not cost the connection');
    assert.is(cache.lookupMyKey(second.mykeyId), 'L-2');
  } finally {
    await agent.stop();
    await state.close();
  }
  await waitFor('hub sees it offline', async () => (await ctx.h.hub.devices.get('lib-counter-1'))?.online === 0, 10_000);
});

test.run();
