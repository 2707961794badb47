import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { verifyWebhook } from '../../../shared/webhook-signature.ts';
import { WebhookTarget } from '../../../edge/handoff/webhook.ts';
import type { TouchResult } from '../../../edge/handoff/types.ts';
import { until } from '../../helpers/polling.ts';
import { startWebhookReceiver } from '../../helpers/webhook-receiver.ts';

/** A business system on loopback; `respond` decides each answer (a status with a JSON body, or 'hang'). */
async function businessSystem(respond: (n: number) => number | 'hang') {
  const r = await startWebhookReceiver((_req, n) => {
    const a = respond(n);
    return a === 'hang' ? a : { status: a, json: {} };
  });
  return { url: r.url('/touch'), got: r.got, close: r.close };
}

const result = (i: number, extra: Partial<TouchResult> = {}): TouchResult => ({
  transaction: `t-${i}`,
  outcome: 'linked',
  serviceId: 'library',
  edgeId: 'counter-1',
  reader: 'Virtual PCD 00 00',
  at: new Date(0).toISOString(),
  serviceUserId: `LIB-${i}`,
  mykeyId: 'B7NQ4KXW',
  ...extra,
});

test('posts the touch as JSON with the service ID and without the MyKey ID', async () => {
  const bs = await businessSystem(() => 200);
  const t = new WebhookTarget({ url: bs.url });
  try {
    t.deliver(result(1));
    await until(() => t.stats().delivered === 1);
    const body = JSON.parse(bs.got[0].body);
    assert.is(body.serviceUserId, 'LIB-1');
    assert.is(body.serviceId, 'library');
    assert.is(body.mykeyId, undefined);
    assert.not.ok(bs.got[0].body.includes('B7NQ4KXW'));
    assert.is(bs.got[0].headers['content-type'], 'application/json');
    assert.is(bs.got[0].headers['x-mykey-delivery'], 't-1');
    assert.is(bs.got[0].headers['webhook-signature'], undefined);
  } finally {
    await t.stop();
    await bs.close();
  }
});

test('sends the MyKey ID only when configured, and signs the body when a secret is set', async () => {
  const bs = await businessSystem(() => 204);
  const t = new WebhookTarget({ url: bs.url, includeMyKeyId: true, secret: 's3cret' });
  try {
    t.deliver(result(2));
    await until(() => t.stats().delivered === 1);
    const { body, headers } = bs.got[0];
    assert.is(JSON.parse(body).mykeyId, 'B7NQ4KXW');
    // The platform's one scheme (shared/webhook-signature.ts), as the hub's notices.
    assert.is(headers['webhook-id'], 't-2');
    assert.ok(verifyWebhook('s3cret', body, headers).ok);
    assert.is(verifyWebhook('other', body, headers).ok, false);
  } finally {
    await t.stop();
    await bs.close();
  }
});

test('retries server errors with backoff until the business system takes it', async () => {
  const bs = await businessSystem((n) => (n < 3 ? 503 : 200));
  const t = new WebhookTarget({ url: bs.url, retries: 3, backoffMs: 20, random: () => 0 });
  try {
    const t0 = Date.now();
    t.deliver(result(3));
    await until(() => t.stats().delivered === 1);
    assert.ok(Date.now() - t0 >= 20 + 40, 'waited 20 ms then 40 ms between attempts');
    assert.is(bs.got.length, 3);
    assert.equal(new Set(bs.got.map((g) => g.headers['x-mykey-delivery'])), new Set(['t-3']));
    assert.is(t.stats().retried, 2);
  } finally {
    await t.stop();
    await bs.close();
  }
});

test('gives up after the configured retries, and at once on a client error', async () => {
  const bs = await businessSystem((n) => (n <= 3 ? 500 : 400));
  const t = new WebhookTarget({ url: bs.url, retries: 2, backoffMs: 10 });
  try {
    t.deliver(result(4));
    await until(() => t.stats().failed === 1);
    assert.is(bs.got.length, 3);
    t.deliver(result(5)); // 500 again (4th request)... then 400s
    t.deliver(result(6));
    await until(() => t.stats().failed === 3);
    assert.is(t.pending, 0);
  } finally {
    await t.stop();
    await bs.close();
  }
});

test('times out an attempt that gets no answer and retries it', async () => {
  const bs = await businessSystem((n) => (n === 1 ? 'hang' : 200));
  const t = new WebhookTarget({ url: bs.url, timeoutMs: 100, retries: 1, backoffMs: 10 });
  try {
    t.deliver(result(7));
    await until(() => t.stats().delivered === 1);
    assert.is(bs.got.length, 2);
  } finally {
    await t.stop();
    await bs.close();
  }
});

test('never blocks the caller and bounds its queue, dropping the oldest', async () => {
  const bs = await businessSystem(() => 'hang');
  const t = new WebhookTarget({ url: bs.url, timeoutMs: 5000, concurrency: 1, maxQueue: 5, retries: 0 });
  try {
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) t.deliver(result(100 + i));
    assert.ok(performance.now() - t0 < 200, 'deliver returns at once');
    assert.is(t.pending, 5);
    assert.is(t.stats().dropped, 45);
  } finally {
    await t.stop(50);
    await bs.close();
  }
  assert.is(t.pending, 0);
});

test('a dead endpoint costs retries, not an exception', async () => {
  const bs = await businessSystem(() => 200);
  const url = bs.url;
  await bs.close(); // nobody listens there now
  const t = new WebhookTarget({ url, retries: 1, backoffMs: 10 });
  try {
    t.deliver(result(8));
    await until(() => t.stats().failed === 1);
    assert.is(t.stats().retried, 1);
  } finally {
    await t.stop();
  }
});

test.run();
