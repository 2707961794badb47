// The holder's home companion in a real headless Chromium, with virtual My Number Cards on vpcd and a
// real hub over HTTP: create the MyKey ID with the PIN, see it with its links and certificate
// history, unlink a service, choose another MyKey ID, carry it over to a new card, invalidate it; and
// every failure path (wrong PIN with tries left, blocked PIN, card taken away mid-flow, a card without
// JPKI, an unreachable hub, a second reader, a foreign web page) with a clear message and nothing
// half-done at the hub.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPrivateKey, sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { HolderCompanion } from '../../../edge/holder/index.ts';
import { HOLDER_MESSAGES } from '../../../edge/holder/messages.ts';
import { createLogger } from '../../../shared/log.ts';
import { JPKI_AID } from '../../../shared/card.ts';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile, type CardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard, type VirtualCardOptions } from '../../../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../../../provisioning/virtual-card/vpcd-slot.ts';
import { requirePcscd, vpcdReaderName } from '../../helpers/pcsc.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';
import { until } from '../../helpers/polling.ts';

await requirePcscd();

const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const ADMIN = 'admin-token-for-holder-tests';
const READER = vpcdReaderName(0);
const PIN = '1234';
const ca = await createTestCa({ label: 'holder-home' });
const cardA = await makeCardFile({ ca, label: 'card A', withMyKeyApp: false });
const cardB = await makeCardFile({ ca, label: 'card B (renewed)', withMyKeyApp: false });
const cardC = await makeCardFile({ ca, label: 'card C', withMyKeyApp: false });

/** A card that answers SELECT of the JPKI application with 6A 82, like a card that is no My Number Card. */
class NoJpkiCard extends VirtualCard {
  override exchange(apdu: Uint8Array) {
    const select = toHex(apdu.subarray(0, 5)) === '00a4040c0a' && toHex(apdu.subarray(5, 15)) === toHex(JPKI_AID);
    return select ? { response: Uint8Array.of(0x6a, 0x82) } : super.exchange(apdu);
  }
}

let h: TestHub;
let hubUrl: string;
let browser: Browser;
const slot = new VpcdSlot({ slot: 0, log: () => {} });
const trace: string[] = [];
const logs: string[] = [];
let companion: HolderCompanion;
let page: Page;
let serviceToken: string;

function startCompanion(hub: string, readerFilter: (n: string) => boolean = (n) => n === READER): HolderCompanion {
  return new HolderCompanion({
    hub,
    readers: { readerFilter, onApdu: (a, r) => trace.push(`${toHex(a)} -> ${toHex(r)}`) },
    log: createLogger('holder', { level: 'debug', write: (l) => logs.push(l) }),
  });
}

async function insert(file: CardFile | VirtualCard, opts?: VirtualCardOptions): Promise<VirtualCard> {
  const card = file instanceof VirtualCard ? file : new VirtualCard(file, opts);
  if (slot.inserted) await remove(); // left by a failed test
  await slot.insert(card);
  await until(() => companion.manager.isCardPresent(READER), { what: 'the card on the reader' });
  return card;
}

async function remove(): Promise<void> {
  await slot.remove().catch(() => {});
  await until(() => !companion.manager.isCardPresent(READER), { what: 'the reader empty' });
}

async function openPage(c: HolderCompanion): Promise<Page> {
  const p = await browser.newPage();
  p.setDefaultTimeout(15_000);
  await p.goto(c.server.pageUrl);
  await p.waitForSelector('#reader[data-key]');
  return p;
}

/** Chooses an operation, types the PIN (and a MyKey ID), presses Go and waits for the outcome. */
async function run(p: Page, op: string, pin: string, extra: { mykeyId?: string } = {}): Promise<{ code: string; text: string }> {
  if (op !== 'unlink' && op !== 'carry_next') await p.click(`[data-op="${op}"]`);
  if (extra.mykeyId) await p.fill('#new-id', extra.mykeyId);
  await p.fill('#pin', pin);
  await p.click('#go');
  await p.waitForFunction(() => {
    const d = (globalThis as unknown as { document: { getElementById(i: string): { dataset: Record<string, string> } | null } }).document;
    const m = d.getElementById('message')!.dataset;
    const main = d.getElementById('main')!.dataset;
    return main.busy === 'false' && m.code !== 'working';
  });
  return { code: (await p.getAttribute('#message', 'data-code')) ?? '', text: (await p.textContent('#message')) ?? '' };
}

/** The MyKey ID's status as the hub tells the holder of `card` (a proof made with the card file's key). */
async function hubStatusOf(card: CardFile): Promise<string> {
  const ch = (await (await h.request('/v1/challenges', { purpose: 'status' })).json()) as { challenge: string };
  const key = createPrivateKey({ key: Buffer.from(card.jpki.authKey, 'base64'), format: 'der', type: 'pkcs8' });
  const signature = sign('sha256', Buffer.from(ch.challenge, 'base64url'), key).toString('base64');
  const res = await h.request('/v1/holder/status', { proof: { challenge: ch.challenge, certificate: card.jpki.authCert, signature } });
  const body = (await res.json()) as { status?: string; code?: string };
  return res.status === 200 ? body.status! : body.code === 'mykey_id_not_found' ? 'none' : `refused ${body.code}`;
}

test.before(async () => {
  h = await startTestHub({ ca, overrides: { admin: { token: ADMIN } } });
  hubUrl = (await h.hub.start()).url;
  const svc = await h.request('/v1/admin/services', { id: 'library', name: 'City Library' }, { headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' } });
  assert.is(svc.status, 201, await svc.clone().text());
  const cred = await h.request('/v1/admin/services/library/credentials', { label: 'ils' }, { headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' } });
  serviceToken = ((await cred.json()) as { token: string }).token;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  companion = startCompanion(hubUrl);
  await companion.start();
  await until(() => companion.manager.readers().includes(READER), { what: 'the reader' });
  page = await openPage(companion);
});

test.after(async () => {
  await slot.remove().catch(() => {});
  await browser?.close();
  await companion?.stop();
  await h?.close();
});

test('the page asks for the card, in Japanese first', async () => {
  assert.is(await page.getAttribute('html', 'lang'), 'ja');
  await page.waitForSelector('#reader[data-key="reader_no_card"]');
  assert.is(await page.textContent('#reader'), HOLDER_MESSAGES.ja.reader_no_card);
});

let mykeyId = '';
test('touch the card, enter the PIN on the page: the MyKey ID is created', async () => {
  await insert(cardA);
  await page.waitForSelector('#reader[data-key="reader_ok"]');
  const r = await run(page, 'register', PIN);
  assert.is(r.code, 'done_register', r.text);
  assert.is(r.text, HOLDER_MESSAGES.ja.done_register);
  mykeyId = ((await page.textContent('#mykey-id')) ?? '').replace('-', '');
  assert.match(mykeyId, /^[0-9A-Z]{8}$/);
  assert.is(await hubStatusOf(cardA), 'active');
  const html = await page.content();
  assert.not.ok(html.includes(`value="${PIN}"`), 'the PIN field is emptied');
});

test('a wrong PIN shows the tries left (63 Cx), in Japanese and in English, and changes nothing', async () => {
  const r = await run(page, 'status', '9999');
  assert.is(r.code, 'pin_wrong');
  assert.is(r.text, HOLDER_MESSAGES.ja.pin_wrong.replace('{n}', '2'));
  await page.click('[data-set-lang="en"]');
  assert.is(await page.textContent('#message'), HOLDER_MESSAGES.en.pin_wrong.replace('{n}', '2'));
  assert.is(await page.getAttribute('html', 'lang'), 'en');
  // The right PIN resets the counter (ISO 7816-4 VERIFY success).
  assert.is((await run(page, 'status', PIN)).code, 'done_status');
});

test('status shows the MyKey ID, its linked services and the certificate history; a service can be unlinked', async () => {
  const link = await fetch(`${hubUrl}/v1/services/library/links`, {
    method: 'POST',
    headers: { authorization: `Bearer ${serviceToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ mykeyId, serviceUserId: 'LIB-000123' }),
  });
  assert.ok(link.status < 300, await link.text());
  assert.is((await run(page, 'status', PIN)).code, 'done_status');
  assert.is(await page.textContent('#status'), HOLDER_MESSAGES.en.status_active);
  assert.match((await page.textContent('#links')) ?? '', 'City Library (LIB-000123)');
  assert.is(await page.locator('#certs li[data-state="current"]').count(), 1);
  await page.click('[data-unlink="library"]');
  const r = await run(page, 'unlink', PIN);
  assert.is(r.code, 'done_unlink', r.text);
  assert.match((await page.textContent('#links')) ?? '', HOLDER_MESSAGES.en.no_links);
  assert.is((await h.hub.links.linksOf(mykeyId)).length, 0);
});

test('another MyKey ID can be chosen; a malformed one costs no PIN try', async () => {
  const before = trace.length;
  const bad = await run(page, 'change_id', PIN, { mykeyId: 'O0O0' });
  assert.is(bad.code, 'mykey_id_malformed');
  assert.is(trace.length, before, 'nothing reached the card');
  const r = await run(page, 'change_id', PIN, { mykeyId: 'HKX7-M3QP' });
  assert.is(r.code, 'done_change_id', r.text);
  assert.is(await page.textContent('#mykey-id'), 'HKX7-M3QP');
  mykeyId = 'HKX7M3QP';
});

test('a card taken away mid-flow (after the PIN, before the signature) gets card_removed and nothing changes', async () => {
  // Where VERIFY falls in a flow on this card, from the trace of the last one.
  const start = trace.length;
  assert.is((await run(page, 'status', PIN)).code, 'done_status');
  const verifyAt = trace.slice(start).findIndex((t) => t.startsWith('00200080'));
  assert.ok(verifyAt > 0);
  await remove();
  await insert(cardA, { faults: { removeAfterApdus: verifyAt + 1 } });
  page.once('dialog', (d) => void d.accept());
  const r = await run(page, 'invalidate', PIN);
  assert.is(r.code, 'card_removed', r.text);
  assert.is(r.text, HOLDER_MESSAGES.en.card_removed);
  await remove();
  assert.is(await hubStatusOf(cardA), 'active', 'the MyKey ID was not invalidated');
});

test('carry-over to a new card: the old card signs (previous), then the new one (new); the history shows both', async () => {
  await insert(cardA);
  await page.click('[data-op="carry_over"]');
  assert.is(await page.textContent('#ask'), HOLDER_MESSAGES.en.carry_previous);
  await page.fill('#pin', PIN);
  await page.click('#go');
  await page.waitForSelector('#main[data-step="carry_new"]');
  assert.is(await page.textContent('#ask'), HOLDER_MESSAGES.en.carry_new);
  // The same card again is refused before its PIN is used.
  const same = await run(page, 'carry_next', PIN);
  assert.is(same.code, 'holder_same_card');
  await remove();
  await insert(cardB);
  const r = await run(page, 'carry_next', PIN);
  assert.is(r.code, 'done_carry_over', r.text);
  assert.is(await page.textContent('#mykey-id'), 'HKX7-M3QP');
  assert.is(await page.locator('#certs li[data-state="carried_over"]').count(), 1);
  assert.is(await page.locator('#certs li[data-state="current"]').count(), 1);
});

test('a carry-over whose new card is taken away changes nothing at the hub', async () => {
  await page.click('[data-op="carry_over"]');
  await page.fill('#pin', PIN);
  await page.click('#go'); // card B, now the bound one, signs as previous
  await page.waitForSelector('#main[data-step="carry_new"]');
  await remove();
  const c = await insert(cardC, { faults: { removeAfterApdus: 3 } });
  const r = await run(page, 'carry_next', PIN);
  assert.is(r.code, 'card_removed', r.text);
  assert.is(c.snapshot().jpki.authPin.triesLeft, 3);
  await remove();
  assert.is(await hubStatusOf(cardC), 'none', 'the new card got nothing');
  assert.is(await hubStatusOf(cardB), 'active');
  await page.click('#cancel');
});

test('a blocked PIN is explained: unblock it at the municipal counter', async () => {
  const blocked = structuredClone(cardC);
  blocked.jpki.authPin.triesLeft = 0;
  await insert(blocked);
  const r = await run(page, 'register', PIN);
  assert.is(r.code, 'pin_blocked');
  assert.match(r.text, 'municipal counter');
  await page.click('[data-set-lang="ja"]');
  assert.match((await page.textContent('#message')) ?? '', '市区町村の窓口');
  await remove();
  assert.is(await hubStatusOf(cardC), 'none');
});

test('the last wrong try blocks the PIN and says so', async () => {
  const file = structuredClone(cardC);
  file.jpki.authPin.triesLeft = 1;
  await insert(file);
  const r = await run(page, 'register', '0000');
  assert.is(r.code, 'pin_blocked');
  await remove();
});

test('a card without JPKI gets its own message and no PIN is sent', async () => {
  const card = new NoJpkiCard(cardC);
  await insert(card);
  const start = trace.length;
  const r = await run(page, 'register', PIN);
  assert.is(r.code, 'holder_no_jpki', r.text);
  assert.is(r.text, HOLDER_MESSAGES.ja.holder_no_jpki);
  assert.not.ok(
    trace.slice(start).some((t) => t.startsWith('00200080')),
    'no VERIFY',
  );
  await remove();
});

test('an unreachable hub is said plainly, before any PIN try is used', async () => {
  const dead = createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
  const port = (dead.address() as { port: number }).port;
  await new Promise<void>((r) => dead.close(() => r()));
  const other = startCompanion(`http://127.0.0.1:${port}`);
  await other.start();
  try {
    await until(() => other.manager.readers().includes(READER), { what: 'the reader' });
    const p = await openPage(other);
    const card = await insert(cardA);
    const start = trace.length;
    const r = await run(p, 'status', PIN);
    assert.is(r.code, 'hub_unreachable', r.text);
    assert.is(r.text, HOLDER_MESSAGES.ja.hub_unreachable);
    assert.is(trace.length, start, 'the card was not touched');
    assert.is(card.snapshot().jpki.authPin.triesLeft, 3);
    await remove();
    await p.close();
  } finally {
    await other.stop();
  }
});

test('a second reader is refused with its own message', async () => {
  const other = startCompanion(hubUrl, (n) => n.startsWith('Virtual PCD'));
  await other.start();
  try {
    await until(() => other.manager.readers().length === 2, { what: 'both readers' });
    const p = await openPage(other);
    await p.waitForSelector('#reader[data-key="holder_two_readers"]');
    assert.is(await p.textContent('#reader'), HOLDER_MESSAGES.ja.holder_two_readers);
    const r = await run(p, 'status', PIN);
    assert.is(r.code, 'holder_two_readers');
    await p.close();
  } finally {
    await other.stop();
  }
});

test('a page of another origin cannot drive the companion (not even a no-cors POST)', async () => {
  let evil: Server | undefined;
  try {
    evil = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>evil</title>'));
    await new Promise<void>((r) => evil!.listen(0, '127.0.0.1', r));
    const evilUrl = `http://127.0.0.1:${(evil.address() as { port: number }).port}/`;
    const p = await browser.newPage();
    await p.goto(evilUrl);
    await insert(cardB);
    const start = trace.length;
    const target = `${companion.server.url}/api/flow`;
    const outcome = await p.evaluate(async (url) => {
      const body = JSON.stringify({ op: 'invalidate', pin: '1234' });
      const cors = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-mykey-holder-token': 'guess' }, body }).then(
        (r) => `status ${r.status}`,
        () => 'blocked',
      );
      await fetch(url, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body }).catch(() => undefined);
      return cors;
    }, target);
    assert.is(outcome, 'blocked');
    assert.is(trace.length, start, 'nothing reached the card');
    assert.is(await hubStatusOf(cardB), 'active');
    await remove();
    await p.close();
  } finally {
    evil?.close();
  }
});

test("a page of the hub's own origin may call the companion with the session token (CORS for that origin only)", async () => {
  const p = await browser.newPage();
  await p.goto(`${hubUrl}/healthz`);
  const base = companion.server.url;
  const token = companion.server.token;
  // No named functions inside evaluate: the test transpiler would wrap them in a helper the page lacks.
  const withToken = await p.evaluate(
    ([url, t]) =>
      fetch(`${url}/api/state`, { headers: { 'x-mykey-holder-token': t } }).then(
        (r) => r.json().then((j) => `${r.status} readers=${(j as { readers?: number }).readers}`),
        () => 'blocked',
      ),
    [base, token] as const,
  );
  const without = await p.evaluate(
    (url) =>
      fetch(`${url}/api/state`).then(
        (r) => `status ${r.status}`,
        () => 'blocked',
      ),
    base,
  );
  assert.is(withToken, '200 readers=1');
  assert.is(without, 'blocked', 'without the token the answer carries no CORS grant');
  await p.close();
});

test('the PIN is never logged, and the signing PIN (EF 001B) and its key (EF 001A) are never selected', () => {
  const hexPin = Buffer.from(PIN).toString('hex');
  for (const l of logs) {
    assert.not.ok(l.includes(PIN) || l.includes(hexPin), `a log line carries the PIN: ${l}`);
  }
  assert.not.ok(
    trace.some((t) => t.startsWith('00a4020c02001b') || t.startsWith('00a4020c02001a')),
    'no signing PIN or key',
  );
  assert.ok(
    trace.some((t) => t.startsWith('00a4020c020018')),
    'the user-authentication PIN EF 0018 was used',
  );
});

test('invalidate asks for confirmation and invalidates the MyKey ID', async () => {
  await insert(cardB);
  page.once('dialog', (d) => void d.accept());
  const r = await run(page, 'invalidate', PIN);
  assert.is(r.code, 'done_invalidate', r.text);
  assert.is(await page.textContent('#status'), HOLDER_MESSAGES.ja.status_invalidated);
  // The hub no longer finds an active MyKey ID for the card (an invalidated one is not shown as the card's).
  assert.is.not(await hubStatusOf(cardB), 'active');
  await remove();
});

test.run();
