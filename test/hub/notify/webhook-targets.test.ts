// Webhook targets as an attacker would set them: a service created or updated (operator API and
// console) with a loopback, link-local, private, unspecified or multicast URL, or plain http, is
// refused with its own code; a name that resolves to a private address at delivery time (DNS
// rebinding, through the lookup seam) is not delivered to and the failure is recorded.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../shared/log.ts';
import { verifyWebhook } from '../../../shared/webhook-signature.ts';
import { createWebhookSender } from '../../../hub/notify/webhooks.ts';
import { checkWebhookUrl, isNonPublicAddress, type WebhookLookup } from '../../../hub/notify/url-policy.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';
import { client, startConsoleHub, type ConsoleHub } from '../console/helpers/console-hub.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../../helpers/webhook-receiver.ts';

const ADMIN = 'admin-token-for-tests';
let strict: TestHub;
let receiver: WebhookReceiver;
let port = 0;
const received: { body: string; headers: Record<string, string | string[] | undefined> }[] = [];

test.before(async () => {
  strict = await startTestHub({ overrides: { admin: { token: ADMIN } } }); // the production defaults
  receiver = await startWebhookReceiver(({ body, headers }) => {
    received.push({ body, headers });
    return 204;
  });
  port = Number(new URL(receiver.origin).port);
});

test.after(async () => {
  await strict.close();
  await receiver.close();
});

async function api(h: TestHub, method: string, path: string, body?: unknown) {
  const res = await h.hub.app.request(path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as { code?: string; webhookSecret?: string }) : undefined };
}

const PRIVATE_URLS = [
  'https://127.0.0.1/hook',
  'https://127.9.9.9:8443/hook',
  'https://localhost/hook',
  'https://admin.localhost/hook',
  'https://169.254.169.254/latest/meta-data/', // the cloud metadata service
  'https://10.0.0.5/hook',
  'https://172.16.4.4/hook',
  'https://172.31.255.255/hook',
  'https://192.168.1.10/hook',
  'https://0.0.0.0/hook',
  'https://224.0.0.1/hook',
  'https://[::1]/hook',
  'https://[::]/hook',
  'https://[fe80::1]/hook',
  'https://[fc00::5]/hook',
  'https://[fd12:3456::1]/hook',
  'https://[ff02::1]/hook',
  'https://[::ffff:127.0.0.1]/hook',
  'https://[::ffff:a9fe:a9fe]/hook', // 169.254.169.254, IPv4-mapped
];

test('the operator API refuses a service created with a non-public webhook URL: webhook_url_private', async () => {
  let n = 0;
  for (const url of PRIVATE_URLS) {
    const r = await api(strict, 'POST', '/v1/admin/services', { id: `svc-p${++n}`, name: 'x', webhookUrl: url });
    assert.is(r.status, 422, url);
    assert.is(r.body?.code, 'webhook_url_private', url);
    assert.is(await strict.hub.links.service(`svc-p${n}`), undefined, `${url}: no service was made`);
  }
});

test('the operator API refuses a webhook updated to a non-public URL, and plain http: their codes', async () => {
  assert.is((await api(strict, 'POST', '/v1/admin/services', { id: 'svc-upd', name: 'x', webhookUrl: 'https://hooks.example.com/in' })).status, 201);
  for (const url of PRIVATE_URLS) {
    const r = await api(strict, 'PUT', '/v1/admin/services/svc-upd/webhook', { url });
    assert.is(r.body?.code, 'webhook_url_private', url);
  }
  const http = await api(strict, 'PUT', '/v1/admin/services/svc-upd/webhook', { url: 'http://hooks.example.com/in' });
  assert.is(http.status, 422);
  assert.is(http.body?.code, 'webhook_url_insecure');
  const creds = await api(strict, 'PUT', '/v1/admin/services/svc-upd/webhook', { url: 'https://user:pw@hooks.example.com/in' });
  assert.is(creds.body?.code, 'webhook_url_invalid');
  assert.is((await strict.hub.links.service('svc-upd'))!.webhook_url, 'https://hooks.example.com/in', 'the webhook is unchanged');
  assert.is((await api(strict, 'PUT', '/v1/admin/services/svc-upd/webhook', { url: 'https://hooks2.example.com/in' })).status, 200, 'a public https URL is fine');
});

test('the console refuses a service created or updated with a link-local URL', async () => {
  let h: ConsoleHub | undefined;
  try {
    h = await startConsoleHub({});
    await h.addOperator('ops', 'operator');
    const c = client(h);
    await c.signIn('ops');
    await c.get('/console/services');
    const created = await c.post('/console/services', { id: 'svc-con', name: 'Console', webhookUrl: 'https://169.254.169.254/latest' });
    assert.is(created.status, 422);
    assert.match(created.text, 'link-local');
    assert.is(await h.th.hub.links.service('svc-con'), undefined);
    assert.is((await c.post('/console/services', { id: 'svc-con', name: 'Console', webhookUrl: 'https://hooks.example.com/in' })).status, 303);
    const updated = await c.post('/console/services/svc-con/webhook', { url: 'https://[fe80::1]/hook' });
    assert.is(updated.status, 400);
    assert.is((await h.th.hub.links.service('svc-con'))!.webhook_url, 'https://hooks.example.com/in');
  } finally {
    await h?.close();
  }
});

test('allowPrivateTargets lets an operator point a service at its own network', async () => {
  const h = await startTestHub({ overrides: { admin: { token: ADMIN }, webhooks: { allowPrivateTargets: true } } });
  try {
    assert.is((await api(h, 'POST', '/v1/admin/services', { id: 'svc-lan', name: 'x', webhookUrl: `http://127.0.0.1:${port}/hook` })).status, 201);
  } finally {
    await h.close();
  }
});

test('a name that resolves to a private address at delivery is not delivered to, and the failure is recorded', async () => {
  const r = await api(strict, 'POST', '/v1/admin/services', { id: 'svc-rebind', name: 'x', webhookUrl: `https://rebind.example:${port}/hook` });
  assert.is(r.status, 201, 'a name passes when set: it is checked where it counts, at delivery');
  // The attacker's DNS answered a public address when the URL was set; now it answers loopback.
  const rebinding: WebhookLookup = async (host) => (host === 'rebind.example' ? [{ address: '127.0.0.1', family: 4 }] : []);
  const sender = createWebhookSender({ repo: strict.hub.linkRepo, log: silentLogger, lookup: rebinding, baseDelayMs: 10, maxDelayMs: 50 });
  await strict.hub.linkRepo.insertWebhook('svc-rebind', JSON.stringify({ type: 'link.unlinked', serviceId: 'svc-rebind' }), Date.now());
  const before = received.length;
  assert.is(await sender.deliverDue(), 0);
  await sender.stop();
  assert.is(received.length, before, 'nothing reached the loopback receiver');
  const health = await strict.hub.linkRepo.webhookHealth('svc-rebind');
  assert.is(health.pending, 1);
  assert.match(health.last_error ?? '', /^webhook_url_private/);
  const view = (await api(strict, 'GET', '/v1/admin/services')).body as unknown as { id: string; webhook: { lastError: string } }[];
  assert.match(view.find((s) => s.id === 'svc-rebind')!.webhook.lastError, 'webhook_url_private', 'the operator sees why');
});

test('a mixed answer (one public, one private address) is refused too', async () => {
  const mixed: WebhookLookup = async () => [
    { address: '203.0.113.7', family: 4 },
    { address: '10.0.0.7', family: 4 },
  ];
  const sender = createWebhookSender({ repo: strict.hub.linkRepo, log: silentLogger, lookup: mixed });
  assert.is((await api(strict, 'POST', '/v1/admin/services', { id: 'svc-mixed', name: 'x', webhookUrl: 'https://mixed.example/hook' })).status, 201);
  await strict.hub.linkRepo.insertWebhook('svc-mixed', '{}', Date.now());
  await sender.deliverDue();
  await sender.stop();
  assert.match((await strict.hub.linkRepo.webhookHealth('svc-mixed')).last_error ?? '', /^webhook_url_private/);
});

test('where allowed, delivery connects to the address the lookup checked, and the notice verifies', async () => {
  const h = await startTestHub({ overrides: { admin: { token: ADMIN }, webhooks: { allowPrivateTargets: true } } });
  try {
    // `counter.internal` exists in no DNS: only the checked answer can have been used to connect.
    const r = await api(h, 'POST', '/v1/admin/services', { id: 'svc-int', name: 'x', webhookUrl: `http://counter.internal:${port}/hook` });
    assert.is(r.status, 201);
    const lookup: WebhookLookup = async (host) => (host === 'counter.internal' ? [{ address: '127.0.0.1', family: 4 }] : []);
    const sender = createWebhookSender({ repo: h.hub.linkRepo, log: silentLogger, lookup, allowPrivateTargets: true });
    const event = JSON.stringify({ type: 'link.suspended', serviceId: 'svc-int' });
    await h.hub.linkRepo.insertWebhook('svc-int', event, Date.now());
    const before = received.length;
    assert.is(await sender.deliverDue(), 1);
    await sender.stop();
    const got = received.slice(before);
    assert.is(got.length, 1);
    assert.is(got[0]!.body, event);
    assert.is(got[0]!.headers.host, `counter.internal:${port}`, 'the Host header keeps the name');
    assert.ok(verifyWebhook(r.body!.webhookSecret!, got[0]!.body, got[0]!.headers).ok, 'signed with the secret the operator was shown');
  } finally {
    await h.close();
  }
});

test('classifies addresses as the special-purpose registries do', () => {
  const table: [string, boolean][] = [
    ['127.0.0.1', true],
    ['10.255.0.1', true],
    ['172.15.255.255', false],
    ['172.16.0.0', true],
    ['172.32.0.0', false],
    ['192.168.0.1', true],
    ['169.254.1.1', true],
    ['100.64.0.1', true],
    ['0.0.0.0', true],
    ['239.1.1.1', true],
    ['255.255.255.255', true],
    ['8.8.8.8', false],
    ['203.0.113.9', false],
    ['::1', true],
    ['::', true],
    ['fe80::abcd', true],
    ['febf::1', true],
    ['fec0::1', false],
    ['fc00::1', true],
    ['fdff::1', true],
    ['ff05::2', true],
    ['::ffff:10.1.1.1', true],
    ['::ffff:8.8.8.8', false],
    ['2001:db8::1', false],
    ['2606:4700::1111', false],
    ['not-an-address', true],
  ];
  for (const [a, nonPublic] of table) assert.is(isNonPublicAddress(a), nonPublic, a);
  assert.throws(() => checkWebhookUrl('ftp://example.com/'), /http\(s\)/);
  assert.throws(() => checkWebhookUrl('http://example.com/', { allowPrivateTargets: false, allowHttp: false }), /https/);
  assert.ok(checkWebhookUrl('http://example.com/', { allowPrivateTargets: false, allowHttp: true }));
});

test.run();
