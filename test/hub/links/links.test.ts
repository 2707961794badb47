import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestCa, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { applyEntry, entriesOf, keyedIdentitySync, type ChangeEntry, type LogMessage } from '../../../shared/sync.ts';
import { certIdentityWithKey } from '../../../shared/cert-identity.ts';
import { serviceLogTopic } from '../../../shared/topics.ts';
import { verifyWebhook } from '../../../shared/webhook-signature.ts';
import { issue, startTestHub, type TestHub } from '../../helpers/hub.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../../helpers/webhook-receiver.ts';

const ADMIN = 'admin-token-for-tests';
interface Ctx {
  h: TestHub;
  ca: TestCa;
  hook: WebhookReceiver;
  hookUrl: string;
  received: { body: string; headers: Record<string, string | string[] | undefined> }[];
  hookStatus: number;
}
const test = suite<Ctx>('links', {} as Ctx);

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.received = [];
  ctx.hookStatus = 200;
  // Notices the business system accepted (it answers ctx.hookStatus).
  ctx.hook = await startWebhookReceiver(({ body, headers }) => {
    if (ctx.hookStatus === 200) ctx.received.push({ body, headers });
    return ctx.hookStatus;
  });
  ctx.hookUrl = ctx.hook.url('/notices');
  ctx.h = await startTestHub({ ca: ctx.ca, overrides: { admin: { token: ADMIN }, webhooks: { baseDelayMs: 20, maxDelayMs: 100, allowPrivateTargets: true } } });
});
test.after(async (ctx) => {
  await ctx.h.close();
  await ctx.hook.close();
});

async function api(h: TestHub, method: string, path: string, token: string, body?: unknown) {
  const res = await h.hub.app.request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

let serviceCounter = 0;
async function newService(ctx: Ctx, webhook = true) {
  const id = `lib-${++serviceCounter}`;
  const r = await api(ctx.h, 'POST', '/v1/admin/services', ADMIN, { id, name: `Library ${serviceCounter}`, ...(webhook ? { webhookUrl: ctx.hookUrl } : {}) });
  assert.is(r.status, 201, JSON.stringify(r.body));
  const cred = await api(ctx.h, 'POST', `/v1/admin/services/${id}/credentials`, ADMIN, { label: 'ils' });
  assert.is(cred.status, 201);
  return { id, token: cred.body.token as string, webhookSecret: r.body.webhookSecret as string };
}

async function newMyKey(ctx: Ctx) {
  const cert = await issue(ctx.ca);
  const r = await ctx.h.request('/v1/mykey-ids', { proof: await ctx.h.proof(cert) });
  return { cert, mykeyId: ((await r.json()) as { mykeyId: string }).mykeyId };
}

async function log(h: TestHub, serviceId: string): Promise<ChangeEntry[]> {
  return await h.hub.links.changesAfter(serviceId, 0);
}

test('the admin API needs the admin token', async ({ h }) => {
  assert.is((await api(h, 'GET', '/v1/admin/services', 'wrong')).status, 401);
  assert.is((await api(h, 'GET', '/v1/admin/services', ADMIN)).status, 200);
});

test('a service links, relinks (replacing) and cancels service IDs; every change is in its ordered log', async (ctx) => {
  const { h } = ctx;
  const s = await newService(ctx, false);
  const a = await newMyKey(ctx);
  const r1 = await api(h, 'POST', `/v1/services/${s.id}/links`, s.token, { mykeyId: a.mykeyId, serviceUserId: 'L-0001' });
  assert.is(r1.status, 201, JSON.stringify(r1.body));
  assert.is(r1.body.seq, 1);
  const same = await api(h, 'POST', `/v1/services/${s.id}/links`, s.token, { mykeyId: a.mykeyId, serviceUserId: 'L-0001' });
  assert.is(same.status, 200);
  assert.is(same.body.seq, null);
  const r2 = await api(h, 'POST', `/v1/services/${s.id}/links`, s.token, { mykeyId: a.mykeyId, serviceUserId: 'L-0002' });
  assert.is(r2.status, 201);
  assert.is(r2.body.replaced, 'L-0001');
  const del = await api(h, 'DELETE', `/v1/services/${s.id}/links/L-0002`, s.token);
  assert.is(del.status, 200, JSON.stringify(del.body));
  const entries = await log(h, s.id);
  assert.equal(
    entries.map((e) => e.seq),
    [1, 2, 3, 4],
  );
  assert.equal(
    entries.map((e) => e.kind),
    ['link', 'unlink', 'link', 'unlink'],
  );
  // Applying the log in order leaves nothing; the keyed identities never show the MyKey ID.
  const map = new Map<string, string>();
  let applied = 0;
  for (const e of entries) {
    assert.is(applyEntry(map, applied, e), 'applied');
    applied = e.seq;
  }
  assert.is(map.size, 0);
  assert.not.match(JSON.stringify(entries), a.mykeyId);
});

test('a service ID the service moves to another MyKey ID (move: true) is unlinked from the first', async (ctx) => {
  const { h } = ctx;
  const s = await newService(ctx, false);
  const a = await newMyKey(ctx);
  const b = await newMyKey(ctx);
  await api(h, 'POST', `/v1/services/${s.id}/links`, s.token, { mykeyId: a.mykeyId, serviceUserId: 'P-9' });
  await api(h, 'POST', `/v1/services/${s.id}/links`, s.token, { mykeyId: b.mykeyId, serviceUserId: 'P-9', move: true });
  const snap = await h.hub.links.snapshot(s.id);
  const svc = (await h.hub.links.service(s.id))!;
  const keyA = keyedIdentitySync(svc.sync_secret, 'mykey', a.mykeyId);
  const keyB = keyedIdentitySync(svc.sync_secret, 'mykey', b.mykeyId);
  const map = new Map(snap.entries);
  assert.is(map.get(keyA), undefined);
  assert.is(map.get(keyB), 'P-9');
  assert.is(snap.seq, 3);
});

test('snapshots carry both keyed identities: by MyKey ID and by the current certificate', async (ctx) => {
  const { h } = ctx;
  const s = await newService(ctx, false);
  const a = await newMyKey(ctx);
  await api(h, 'POST', `/v1/services/${s.id}/links`, s.token, { mykeyId: a.mykeyId, serviceUserId: 'C-1' });
  const svc = (await h.hub.links.service(s.id))!;
  const cert = (await h.hub.mykeys.currentCert(a.mykeyId))!;
  // scrypt-v3: the certificate identity names the issuing key (its AKI), which the hub stored at registration.
  assert.ok(cert.aki && /^[0-9a-f]+$/.test(cert.aki), 'the AKI of the registered certificate is stored');
  const certKey = keyedIdentitySync(svc.sync_secret, 'cert', certIdentityWithKey(cert));
  const map = new Map((await h.hub.links.snapshot(s.id)).entries);
  assert.is(map.get(certKey), 'C-1');
  assert.is(map.size, 2);
});

test('a token of one service cannot touch another, and bad input is refused', async (ctx) => {
  const { h } = ctx;
  const s1 = await newService(ctx, false);
  const s2 = await newService(ctx, false);
  const a = await newMyKey(ctx);
  const cross = await api(h, 'POST', `/v1/services/${s2.id}/links`, s1.token, { mykeyId: a.mykeyId, serviceUserId: 'X' });
  assert.is(cross.status, 403);
  const none = await api(h, 'POST', `/v1/services/${s1.id}/links`, 'mk_cred_000000000000.' + 'A'.repeat(43), { mykeyId: a.mykeyId, serviceUserId: 'X' });
  assert.is(none.status, 401);
  const unknown = await api(h, 'POST', `/v1/services/${s1.id}/links`, s1.token, { mykeyId: '22222222', serviceUserId: 'X' });
  assert.is(unknown.status, 404);
  assert.is(unknown.body.code, 'mykey_id_not_found');
  const bad = await api(h, 'POST', `/v1/services/${s1.id}/links`, s1.token, { mykeyId: a.mykeyId, serviceUserId: 'has space' });
  assert.is(bad.status, 400);
  assert.is((await log(h, s1.id)).length, 0);
});

test('suspension by a CRL, carry-over and invalidation fan out to every linked service', async (ctx) => {
  const { h } = ctx;
  const s1 = await newService(ctx, false);
  const s2 = await newService(ctx, false);
  const a = await newMyKey(ctx);
  await api(h, 'POST', `/v1/services/${s1.id}/links`, s1.token, { mykeyId: a.mykeyId, serviceUserId: 'A1' });
  await api(h, 'POST', `/v1/services/${s2.id}/links`, s2.token, { mykeyId: a.mykeyId, serviceUserId: 'A2' });
  // Suspend through the repository, as a CRL run does.
  const b = (await h.hub.mykeys.liveBindingBySerial((await h.hub.mykeys.currentCert(a.mykeyId))!.issuerKey, (await h.hub.mykeys.currentCert(a.mykeyId))!.serialHex))!;
  await h.hub.mykeys.applyRevocations([{ bindingId: b.id, mykeyId: a.mykeyId, state: 'current', revokedAt: Date.now(), reason: 'keyCompromise' }], Date.now());
  for (const s of [s1, s2]) {
    const last = (await log(h, s.id)).at(-1)!;
    assert.is(last.kind, 'suspend');
    assert.is(last.reason, 'keyCompromise');
    assert.is(new Map((await h.hub.links.snapshot(s.id)).entries).size, 0);
  }
  const linksNow = await h.hub.links.linksOf(a.mykeyId);
  assert.equal(
    linksNow.map((l) => l.state),
    ['suspended', 'suspended'],
  );
  // A suspended MyKey ID cannot be linked.
  const r = await api(h, 'POST', `/v1/services/${s1.id}/links`, s1.token, { mykeyId: a.mykeyId, serviceUserId: 'A3' });
  assert.is(r.status, 409);
  assert.is(r.body.code, 'mykey_id_suspended');
});

test('the holder sees and removes links with a JPKI proof; invalidation unlinks everywhere', async (ctx) => {
  const { h } = ctx;
  const s1 = await newService(ctx, false);
  const s2 = await newService(ctx, false);
  const a = await newMyKey(ctx);
  await api(h, 'POST', `/v1/services/${s1.id}/links`, s1.token, { mykeyId: a.mykeyId, serviceUserId: 'H1' });
  await api(h, 'POST', `/v1/services/${s2.id}/links`, s2.token, { mykeyId: a.mykeyId, serviceUserId: 'H2' });
  const st = await h.request('/v1/holder/status', { proof: await h.proof(a.cert, 'status') });
  const view = (await st.json()) as { links: { serviceId: string; serviceUserId: string }[] };
  assert.equal(
    view.links.map((l) => l.serviceUserId),
    ['H1', 'H2'],
  );
  const un = await h.request('/v1/holder/unlink', { proof: await h.proof(a.cert, { purpose: 'unlink', serviceId: s1.id }), serviceId: s1.id });
  assert.is(un.status, 200);
  assert.equal(
    ((await un.json()) as typeof view).links.map((l) => l.serviceId),
    [s2.id],
  );
  await h.request('/v1/holder/invalidate', { proof: await h.proof(a.cert, 'invalidate') });
  assert.is((await log(h, s2.id)).at(-1)!.kind, 'unlink');
  assert.is((await h.hub.links.linksOf(a.mykeyId)).length, 0);
});

test('a change of MyKey ID rekeys every linked service', async (ctx) => {
  const { h } = ctx;
  const s = await newService(ctx, false);
  const a = await newMyKey(ctx);
  await api(h, 'POST', `/v1/services/${s.id}/links`, s.token, { mykeyId: a.mykeyId, serviceUserId: 'R1' });
  const wanted = a.mykeyId === 'ZZZZZZZZ' ? 'YYYYYYYY' : 'ZZZZZZZZ';
  const r = await h.request('/v1/holder/mykey-id', { proof: await h.proof(a.cert, { purpose: 'change_id', mykeyId: wanted }), mykeyId: wanted });
  assert.is(r.status, 200, await r.clone().text());
  const svc = (await h.hub.links.service(s.id))!;
  const map = new Map((await h.hub.links.snapshot(s.id)).entries);
  assert.is(map.get(keyedIdentitySync(svc.sync_secret, 'mykey', wanted)), 'R1');
  assert.is(map.get(keyedIdentitySync(svc.sync_secret, 'mykey', a.mykeyId)), undefined);
  assert.is((await log(h, s.id)).at(-1)!.kind, 'id_changed');
});

test('change-log entries go to the MQTT outbox and leave it once published, in order', async (ctx) => {
  const { h } = ctx;
  const s = await newService(ctx, false);
  const a = await newMyKey(ctx);
  await h.hub.outbox.drain();
  const published: { topic: string; seq: number }[] = [];
  // Pending entries of a topic are coalesced: the two come as one batch (v2) or two entries (v1).
  let fail = true;
  h.hub.outbox.attach(async (topic, payload) => {
    if (fail) throw new Error('broker down');
    for (const e of entriesOf(JSON.parse(payload) as LogMessage)) published.push({ topic, seq: e.seq });
  });
  await api(h, 'POST', `/v1/services/${s.id}/links`, s.token, { mykeyId: a.mykeyId, serviceUserId: 'O1' });
  await api(h, 'DELETE', `/v1/services/${s.id}/links/O1`, s.token);
  await h.hub.outbox.drain();
  assert.ok((await h.hub.linkRepo.pendingMqtt()).length >= 2, 'nothing is lost while the broker is down');
  fail = false;
  await h.hub.outbox.drain();
  const mine = published.filter((p) => p.topic === serviceLogTopic(s.id)).map((p) => p.seq);
  assert.equal(mine, [1, 2]);
  assert.is((await h.hub.linkRepo.pendingMqtt()).length, 0);
});

test('services get signed notices (失効連絡), retried until delivered', async (ctx) => {
  const { h } = ctx;
  const s = await newService(ctx, true);
  const a = await newMyKey(ctx);
  ctx.hookStatus = 503; // the business system is down at first
  await api(h, 'POST', `/v1/services/${s.id}/links`, s.token, { mykeyId: a.mykeyId, serviceUserId: 'W1' });
  await api(h, 'DELETE', `/v1/services/${s.id}/links/W1`, s.token);
  await h.hub.webhooks.deliverDue();
  assert.is(ctx.received.length, 0);
  const health = (await api(h, 'GET', '/v1/admin/services', ADMIN)).body.find((x: { id: string }) => x.id === s.id);
  assert.is(health.webhook.pending, 2);
  assert.match(health.webhook.lastError, 'HTTP 503');
  ctx.hookStatus = 200;
  // Both were pending when the receiver came back: they go as one signed batch (hub/notify/webhooks.ts).
  const notices = (body: string): { type: string; serviceId: string }[] => {
    const b = JSON.parse(body) as { type: string; serviceId: string; notices?: { type: string; serviceId: string }[] };
    return b.type === 'notices' ? b.notices! : [b];
  };
  for (let i = 0; i < 50 && ctx.received.flatMap((r) => notices(r.body)).length < 2; i++) {
    await new Promise((r) => setTimeout(r, 30));
    await h.hub.webhooks.deliverDue();
  }
  const mine = ctx.received.filter((r) => notices(r.body).every((n) => n.serviceId === s.id));
  assert.equal(
    mine.flatMap((r) => notices(r.body).map((n) => n.type)),
    ['link.created', 'link.unlinked'],
  );
  for (const r of mine) assert.ok(verifyWebhook(s.webhookSecret, r.body, r.headers).ok, 'signature verifies');
  assert.not.ok(verifyWebhook(s.webhookSecret, mine[0].body + ' ', mine[0].headers).ok);
  assert.not.match(mine.map((r) => r.body).join(''), a.mykeyId);
});

test.run();
