// The platform's one webhook signature, as a service's business system uses it: a receiver over real
// HTTP verifies real deliveries from a real hub (its notice outbox) and a real edge (its webhook
// hand-off) with the documented helper, and refuses a forged signature, an altered body, an old
// timestamp and a replayed delivery, each with its own code.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request, type IncomingHttpHeaders } from 'node:http';
import { silentLogger } from '../../shared/log.ts';
import { createReplayMemory, signWebhook, verifyWebhook, WEBHOOK_HEADERS } from '../../shared/webhook-signature.ts';
import { WebhookTarget } from '../../edge/handoff/webhook.ts';
import type { TouchResult } from '../../edge/handoff/types.ts';
import { startTestHub, type TestHub } from '../helpers/hub.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';

const ADMIN = 'admin-token-for-tests';
const EDGE_SECRET = 'edge-hand-off-secret-1';

/** The business system: verifies every POST with the helper, under the secret its path names. */
interface Receiver {
  server: WebhookReceiver;
  url: string;
  secrets: Map<string, string>;
  log: { path: string; status: number; code?: string; body: string; headers: IncomingHttpHeaders }[];
}

async function startReceiver(): Promise<Receiver> {
  const secrets = new Map<string, string>();
  const replay = createReplayMemory();
  const log: Receiver['log'] = [];
  const server = await startWebhookReceiver(({ path, body, headers }) => {
    const r = verifyWebhook(secrets.get(path) ?? '', body, headers, { replay });
    const status = r.ok ? 204 : r.code === 'webhook_replayed' ? 409 : 401;
    log.push({ path, status, ...(r.ok ? {} : { code: r.code }), body, headers });
    return status;
  });
  return { server, url: server.origin, secrets, log };
}

/** Sends a raw POST, as an attacker replaying or forging a delivery would. */
function post(url: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function sigHeaders(h: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.values(WEBHOOK_HEADERS).map((k) => [k, String(h[k])]));
}

let rx: Receiver;
let hub: TestHub;

test.before(async () => {
  rx = await startReceiver();
  // Loopback receiver: the test sets the allow flag, as an operator of a LAN deployment would.
  hub = await startTestHub({ overrides: { admin: { token: ADMIN }, webhooks: { allowPrivateTargets: true } } });
});

test.after(async () => {
  await hub.close();
  await rx.server.close();
});

test('a real hub notice verifies with the helper', async () => {
  const res = await hub.hub.app.request('/v1/admin/services', {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'library', name: 'Library', webhookUrl: `${rx.url}/hub` }),
  });
  assert.is(res.status, 201);
  const { webhookSecret } = (await res.json()) as { webhookSecret: string };
  rx.secrets.set('/hub', webhookSecret);
  await hub.hub.linkRepo.insertWebhook('library', JSON.stringify({ type: 'link.unlinked', serviceId: 'library' }), Date.now());
  assert.is(await hub.hub.webhooks.deliverDue(), 1);
  const got = rx.log.filter((e) => e.path === '/hub');
  assert.is(got.length, 1);
  assert.is(got[0]!.status, 204, got[0]!.code);
  assert.match(String(got[0]!.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]{43}=$/);
});

test('a real edge hand-off verifies with the same helper', async () => {
  rx.secrets.set('/edge', EDGE_SECRET);
  const t = new WebhookTarget({ url: `${rx.url}/edge`, secret: EDGE_SECRET, log: silentLogger });
  const result: TouchResult = { transaction: 'edge-touch-1', outcome: 'linked', serviceId: 'library', edgeId: 'counter-1', reader: 'r', at: new Date().toISOString(), serviceUserId: 'LIB-1' };
  try {
    t.deliver(result);
    for (let i = 0; i < 200 && t.stats().delivered === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(t.stats().delivered, 1);
  } finally {
    await t.stop();
  }
  const got = rx.log.filter((e) => e.path === '/edge');
  assert.is(got.length, 1);
  assert.is(got[0]!.status, 204, got[0]!.code);
  assert.is(got[0]!.headers['webhook-id'], 'edge-touch-1');
});

test('refuses a replayed delivery: webhook_replayed', async () => {
  for (const path of ['/hub', '/edge']) {
    const original = rx.log.find((e) => e.path === path && e.status === 204)!;
    const status = await post(`${rx.url}${path}`, sigHeaders(original.headers), original.body);
    assert.is(status, 409, path);
    assert.is(rx.log.at(-1)!.code, 'webhook_replayed', path);
  }
});

test('refuses a forged signature and an altered body: webhook_signature_invalid', async () => {
  const original = rx.log.find((e) => e.path === '/edge' && e.status === 204)!;
  const forged: Record<string, string> = { ...sigHeaders(original.headers), 'webhook-id': 'forged-1' };
  forged['webhook-signature'] = `v1,${Buffer.alloc(32, 7).toString('base64')}`;
  assert.is(await post(`${rx.url}/edge`, forged, original.body), 401);
  assert.is(rx.log.at(-1)!.code, 'webhook_signature_invalid');
  const wrongKey = signWebhook('not-the-secret', original.body, { id: 'forged-2' });
  assert.is(await post(`${rx.url}/edge`, { ...wrongKey }, original.body), 401);
  assert.is(rx.log.at(-1)!.code, 'webhook_signature_invalid');
  const altered = original.body.replace('LIB-1', 'LIB-9');
  assert.is(await post(`${rx.url}/edge`, sigHeaders(original.headers), altered), 401);
  assert.is(rx.log.at(-1)!.code, 'webhook_signature_invalid');
  // A new id with the old signature: the id is under the MAC too.
  assert.is(await post(`${rx.url}/edge`, { ...sigHeaders(original.headers), 'webhook-id': 'fresh-id' }, original.body), 401);
  assert.is(rx.log.at(-1)!.code, 'webhook_signature_invalid');
  assert.is(await post(`${rx.url}/edge`, {}, original.body), 401, 'no headers at all');
});

test('refuses an old timestamp, even correctly signed: webhook_timestamp_invalid', async () => {
  const body = JSON.stringify({ outcome: 'linked', serviceUserId: 'LIB-1' });
  const old = signWebhook(EDGE_SECRET, body, { id: 'old-1', nowMs: Date.now() - 6 * 60_000 });
  assert.is(await post(`${rx.url}/edge`, { ...old }, body), 401);
  assert.is(rx.log.at(-1)!.code, 'webhook_timestamp_invalid');
  const future = signWebhook(EDGE_SECRET, body, { id: 'future-1', nowMs: Date.now() + 6 * 60_000 });
  assert.is(await post(`${rx.url}/edge`, { ...future }, body), 401);
  assert.is(rx.log.at(-1)!.code, 'webhook_timestamp_invalid');
  // Moving the timestamp of a captured delivery breaks its signature instead.
  const original = rx.log.find((e) => e.path === '/edge' && e.status === 204)!;
  const moved = { ...sigHeaders(original.headers), 'webhook-id': 'moved', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) };
  assert.is(await post(`${rx.url}/edge`, moved, original.body), 401);
  const fresh = signWebhook(EDGE_SECRET, body, { id: 'fresh-1' });
  assert.is(await post(`${rx.url}/edge`, { ...fresh }, body), 204, 'a fresh, correct one passes');
});

test('the helper: window bounds, rotation (several signatures), Headers objects, bounded memory', () => {
  const body = '{"a":1}';
  const t0 = 1_800_000_000_000;
  const h = signWebhook('k', body, { id: 'm1', nowMs: t0 });
  assert.ok(verifyWebhook('k', body, h, { now: () => t0 + 299_000 }).ok);
  assert.is(verifyWebhook('k', body, h, { now: () => t0 + 301_000 }).ok, false);
  assert.ok(verifyWebhook('k', body, h, { now: () => t0 + 599_000, toleranceSeconds: 600 }).ok);
  const rotated = { ...h, 'webhook-signature': `v1,${Buffer.alloc(32).toString('base64')} ${h['webhook-signature']}` };
  assert.ok(verifyWebhook('k', body, rotated, { now: () => t0 }).ok);
  assert.ok(verifyWebhook('k', body, new Headers(h), { now: () => t0 }).ok);
  let now = t0;
  const memory = createReplayMemory({ maxEntries: 3, now: () => now });
  assert.ok(memory.remember('a', now + 1000));
  assert.not.ok(memory.remember('a', now + 1000));
  now += 2000;
  assert.ok(memory.remember('a', now + 1000), 'forgotten once its timestamp could no longer pass');
  for (const id of ['b', 'c', 'd', 'e']) memory.remember(id, now + 1000);
  assert.ok(memory.remember('a', now + 1000), 'the oldest goes when full');
});

test.run();
