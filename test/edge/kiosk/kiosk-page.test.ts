// The counter tablet page in a real headless Chromium: pushed results appear live, in Japanese and
// English, registration steps drive the page, and nothing of an earlier touch stays on it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chromium, type Browser, type Page } from 'playwright-core';
import { KioskServer, type ActionReply, type KioskActions } from '../../../edge/kiosk/index.ts';
import { MESSAGES } from '../../../edge/kiosk/messages.ts';
import type { TouchResult } from '../../../edge/handoff/types.ts';
import { until } from '../../helpers/polling.ts';

const calls: string[] = [];
const okReply: ActionReply = { ok: true };
const actions: KioskActions = {
  start: () => (calls.push('start'), okReply),
  serviceUserId: (v) => (calls.push(`id:${v}`), okReply),
  pin: (p) => (calls.push(`pin:${p.length}`), okReply),
  cancel: () => (calls.push('cancel'), okReply),
};
let health: 'ok' | 'degraded' = 'ok';
// A result stays up for resultMs: long enough for the checks below on a loaded machine (CI runs files
// in parallel on two cores), short enough for the test that waits for it to go.
const kiosk = new KioskServer({ language: 'ja', resultMs: 4000, registration: actions, health: () => health, healthPollMs: 50 });
let browser: Browser;
let page: Page;

const result = (extra: Partial<TouchResult>): TouchResult => ({
  transaction: 't',
  outcome: 'linked',
  serviceId: 'library',
  edgeId: 'counter-1',
  reader: 'r',
  at: new Date().toISOString(),
  mykeyId: 'B7NQ4KXW',
  ...extra,
});

/** The page's document, typed just enough (the test compiles without DOM types, and the page's CSP rules out string predicates). */
type Doc = { document: { getElementById(i: string): { textContent: string | null } | null } };
const text = (id: string) => page.locator(`#${id}`).textContent();

test.before(async () => {
  await kiosk.start();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage();
  page.setDefaultTimeout(30_000);
  await page.goto(kiosk.url);
  await page.waitForFunction(() => (globalThis as unknown as Doc).document.getElementById('title')?.textContent !== '');
});

test.after(async () => {
  await browser?.close();
  await kiosk.stop();
});

test('says "touch your card" in the configured language at first', async () => {
  assert.is(await text('title'), MESSAGES.ja.touch_title);
  assert.is(await page.getAttribute('html', 'lang'), 'ja');
});

test('shows a pushed linked result live, in Japanese and after switching in English', async () => {
  kiosk.deliver(result({ outcome: 'linked', serviceUserId: 'LIB-000123' }));
  await page.waitForSelector('main[data-outcome="linked"]');
  assert.is(await text('title'), MESSAGES.ja.linked_title);
  assert.is(await text('label'), MESSAGES.ja.linked_label);
  assert.is(await text('value'), 'LIB-000123');
  await page.click('[data-set-lang="en"]');
  // The page re-renders after the click; under load that is not done when click() returns.
  await waitText('title', MESSAGES.en.linked_title);
  assert.is(await text('label'), MESSAGES.en.linked_label);
  assert.is(await text('value'), 'LIB-000123');
  assert.is(await page.getAttribute('html', 'lang'), 'en');
  const html = await page.content();
  assert.not.ok(html.includes('B7NQ4KXW'), 'the MyKey ID never reaches the page');
});

test('goes back to "touch your card" after the result time, keeping nothing of the touch', async () => {
  await page.waitForSelector('main[data-outcome="idle"]');
  assert.is(await text('title'), MESSAGES.en.touch_title);
  const html = await page.content();
  assert.not.ok(html.includes('LIB-000123'), 'the previous service ID is gone from the page');
});

test('offers registration for a card that is not linked, and the button starts it', async () => {
  kiosk.deliver(result({ outcome: 'not_linked' }));
  await page.waitForSelector('main[data-outcome="not_linked"]');
  assert.is(await text('title'), MESSAGES.en.not_linked_title);
  await page.click('#register');
  await until(() => calls.includes('start'));
});

test('shows refused and degraded results with their reasons in both languages', async () => {
  kiosk.deliver(result({ outcome: 'refused', reason: 'stale' }));
  await page.waitForSelector('main[data-outcome="refused"]');
  assert.is(await text('sub'), MESSAGES.en.refused_stale);
  await page.click('[data-set-lang="ja"]');
  assert.is(await text('sub'), MESSAGES.ja.refused_stale);
  kiosk.deliver(result({ outcome: 'degraded', reason: 'stale', answer: 'linked', serviceUserId: 'LIB-9' }));
  await page.waitForSelector('main[data-outcome="degraded"]');
  assert.is(await text('title'), MESSAGES.ja.degraded_title);
  assert.is(await text('value'), 'LIB-9');
});

test('walks the registration steps: number typed, PIN typed (never echoed), done', async () => {
  kiosk.showRegistration({ step: 'touch' });
  await waitText('sub', MESSAGES.ja.reg_touch);
  kiosk.showRegistration({ step: 'service_user_id' });
  await page.waitForSelector('#form:not([hidden])');
  await page.fill('#field', 'LIB-777');
  await page.click('#submit');
  await until(() => calls.includes('id:LIB-777'));
  kiosk.showRegistration({ step: 'pin' });
  await waitText('sub', MESSAGES.ja.reg_pin);
  assert.is(await page.getAttribute('#field', 'type'), 'password');
  await page.fill('#field', '1234');
  await page.press('#field', 'Enter');
  await until(() => calls.includes('pin:4'));
  assert.is(await page.inputValue('#field'), '', 'the PIN field is cleared');
  kiosk.showRegistration({ step: 'pin', retry: 'pin_wrong', triesLeft: 2 });
  await waitText('sub', MESSAGES.ja.reg_pin_wrong.replace('{n}', '2'));
  kiosk.showRegistration({ step: 'done', serviceUserId: 'LIB-777', replaced: false });
  await waitText('title', MESSAGES.ja.reg_done);
  assert.is(await text('value'), 'LIB-777');
  kiosk.showRegistration({ step: 'off' });
  await waitText('title', MESSAGES.ja.touch_title);
});

test('shows the health banner when the edge is offline', async () => {
  health = 'degraded';
  await page.waitForSelector('#health:not([hidden])');
  assert.is(await text('health'), MESSAGES.ja.health_degraded);
  health = 'ok';
  await page.waitForSelector('#health[hidden]', { state: 'attached' });
});

test('refuses actions that are not JSON or come from another origin', async () => {
  const form = await fetch(`${kiosk.url}/api/register/start`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' });
  assert.is(form.status, 415);
  const cross = await fetch(`${kiosk.url}/api/register/start`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'http://evil.example' }, body: '{}' });
  assert.is(cross.status, 403);
  const page = await fetch(kiosk.url);
  assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
});

test('has the same message keys in both languages', () => {
  assert.equal(Object.keys(MESSAGES.ja).sort(), Object.keys(MESSAGES.en).sort());
});

async function waitText(id: string, expected: string): Promise<void> {
  await page.waitForFunction(([i, e]) => (globalThis as unknown as Doc).document.getElementById(i)?.textContent === e, [id, expected] as const);
}

test.run();
