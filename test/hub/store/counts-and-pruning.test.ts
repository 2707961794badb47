// Counts that /healthz, the console and the services page read are kept as rows change (triggers,
// migrations 20 and 160), so they never count whole tables; delivered webhook notices are pruned
// after the retention (webhooks.retentionDays), undelivered ones never.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import type { CertIdentity } from '../../../hub/store/mykey-repo.ts';
import { startTestHub } from '../../helpers/hub.ts';

test('MyKey ID and link counts kept by triggers agree with the tables through every kind of change', async () => {
  const h = await startTestHub();
  try {
    const { mykeys, linkRepo, store } = h.hub;
    const a = h.hub.anchors[0];
    const cert = (i: number): CertIdentity => ({ fingerprint: `fp${i}`, issuerKey: a.issuerKey, issuerKeyId: a.keyId, serialHex: (0x1000 + i).toString(16), notAfter: Date.UTC(2030, 0, 1) });
    await mykeys.bulkCreate(
      Array.from({ length: 50 }, (_, i) => ({ id: `CNT${i}`, cert: cert(i) })),
      Date.now(),
    );
    await mykeys.invalidate('CNT1', Date.now());
    await mykeys.changeId('CNT2', 'CNT2B', Date.now());
    await mykeys.applyRevocations([{ bindingId: (await mykeys.currentBinding('CNT3'))!.id, mykeyId: 'CNT3', state: 'current', revokedAt: Date.now(), reason: 'keyCompromise' }], Date.now());
    const counted = async (sql: string) => Object.fromEntries((await store.sql.all<{ k: string; n: number }>(sql)).map((r) => [r.k, r.n]));
    assert.equal(await mykeys.counts(), { active: 48, suspended: 1, invalidated: 1 });
    assert.equal(await mykeys.counts(), { active: 0, suspended: 0, invalidated: 0, ...(await counted('SELECT status AS k, COUNT(*) AS n FROM mykey_ids GROUP BY status')) });

    for (const id of ['svc-a', 'svc-b']) {
      await linkRepo.insertService({ id, name: id, sync_secret: randomBytes(32), webhook_url: null, webhook_secret: null, require_holder_proof: 1, created_at: Date.now() });
    }
    for (let i = 0; i < 20; i++) await linkRepo.upsertLink(i % 2 ? 'svc-a' : 'svc-b', `CNT${i + 10}`, `U${i}`, Date.now(), 'test');
    await linkRepo.upsertLink('svc-a', 'CNT11', 'U-again', Date.now(), 'test'); // an update, not a new link
    await linkRepo.setLinkState('svc-a', 'CNT13', 'suspended');
    await linkRepo.deleteLink('svc-b', 'CNT10');
    await linkRepo.renameMyKey('CNT12', 'CNT12B');
    assert.equal(await linkRepo.linkCountsOf('svc-a'), { active: 9, suspended: 1 });
    assert.equal(await linkRepo.linkCountsOf('svc-b'), { active: 9, suspended: 0 });
    const kept = Object.fromEntries((await linkRepo.linkCounts()).map((r) => [`${r.service_id}/${r.state}`, r.n]));
    assert.equal(kept, await counted("SELECT service_id || '/' || state AS k, COUNT(*) AS n FROM links GROUP BY service_id, state"));
  } finally {
    await h.close();
  }
});

test('delivered webhook notices older than the retention are pruned; undelivered and recent ones stay, the delivered count too', async () => {
  const day = 86_400_000;
  let clock = Date.UTC(2026, 5, 1);
  const h = await startTestHub({ overrides: { webhooks: { retentionDays: 7 } }, now: () => new Date(clock) });
  try {
    const { linkRepo, store } = h.hub;
    await linkRepo.insertService({ id: 'svc-w', name: 'w', sync_secret: randomBytes(32), webhook_url: null, webhook_secret: null, require_holder_proof: 1, created_at: clock });
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) ids.push(await linkRepo.insertWebhook('svc-w', `{"n":${i}}`, clock - 20 * day));
    await linkRepo.webhookDelivered(ids[0], clock - 10 * day); // past the retention
    await linkRepo.webhookDelivered(ids[1], clock - 8 * day); // past the retention
    await linkRepo.webhookDelivered(ids[2], clock - 2 * day); // within it
    // ids[3..5] never delivered
    assert.is(await h.hub.webhooks.pruneDelivered(), 2);
    const left = (await store.sql.all<{ id: number }>('SELECT id FROM webhook_outbox ORDER BY id')).map((r) => r.id);
    assert.equal(left, [ids[2], ids[3], ids[4], ids[5]]);
    const health = await linkRepo.webhookHealth('svc-w');
    assert.is(health.pending, 3);
    assert.is(health.delivered, 3);
    assert.is(health.oldest, clock - 20 * day);
    clock += 30 * day;
    assert.is(await h.hub.webhooks.pruneDelivered(), 1);
    assert.is((await linkRepo.webhookHealth('svc-w')).pending, 3);
  } finally {
    await h.close();
  }
});

test.run();
