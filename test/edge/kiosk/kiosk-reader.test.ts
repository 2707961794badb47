// The kiosk page tells the shop what to do about a reader that does not work ("unplug it and plug it
// back in", "call the technician"), in Japanese and English: over HTTP to the real kiosk server, and
// rendered in a real headless Chromium. The Host/Origin guard still stands in front of it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'node:http';
import { chromium, type Browser } from 'playwright-core';
import { KioskServer, type KioskView } from '../../../edge/kiosk/index.ts';
import { MESSAGES } from '../../../edge/kiosk/messages.ts';

const kiosk = new KioskServer({ language: 'ja' });
let browser: Browser | undefined;

function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const u = new URL(path, kiosk.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, headers: { host: u.host, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test.before(async () => {
  await kiosk.start();
});

test.after(async () => {
  await browser?.close();
  await kiosk.stop();
});

test('the view carries the reader advice while it does not work, and drops it once it does', async () => {
  assert.is((JSON.parse((await get('/api/view')).body) as KioskView).reader, undefined);
  kiosk.showReader({ state: 'needs_replug', advice: 'replug' });
  const v = JSON.parse((await get('/api/view')).body) as KioskView;
  assert.equal(v.reader, { state: 'needs_replug', advice: 'replug' });
  kiosk.showReader(undefined);
  assert.is((JSON.parse((await get('/api/view')).body) as KioskView).reader, undefined);
});

test('the page script has every reader message in Japanese and English', async () => {
  const js = (await get('/kiosk.js')).body;
  for (const lang of ['ja', 'en'] as const) {
    for (const k of ['reader_title', 'reader_wait', 'reader_connect', 'reader_replug', 'reader_technician'] as const) {
      assert.ok(js.includes(JSON.stringify(MESSAGES[lang][k]).slice(1, -1)), `${lang} ${k}`);
    }
  }
  assert.match(MESSAGES.ja.reader_replug, /抜いて.*差し込んで/);
  assert.match(MESSAGES.en.reader_technician, /call the technician/);
});

test('a foreign Host (DNS rebinding) still gets kiosk_host_refused, reader trouble or not', async () => {
  kiosk.showReader({ state: 'needs_replug', advice: 'technician' });
  const r = await get('/api/view', { host: 'attacker.example:80' });
  assert.is(r.status, 403);
  assert.is(JSON.parse(r.body).code, 'kiosk_host_refused');
  assert.not.match(r.body, /needs_replug/);
  kiosk.showReader(undefined);
});

test('in Chromium the page says to replug the reader, then to call the technician, in Japanese and in English', async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(10_000);
  await page.goto(kiosk.url);
  await page.waitForSelector('main[data-outcome="idle"]');
  kiosk.showReader({ state: 'needs_replug', advice: 'replug' });
  await page.waitForSelector('main[data-outcome="reader"]');
  assert.is(await page.locator('#title').textContent(), MESSAGES.ja.reader_title);
  assert.is(await page.locator('#sub').textContent(), MESSAGES.ja.reader_replug);
  kiosk.showReader({ state: 'needs_replug', advice: 'technician' });
  await page.locator('#sub', { hasText: MESSAGES.ja.reader_technician }).waitFor();
  await page.click('[data-set-lang="en"]');
  assert.is(await page.locator('#title').textContent(), MESSAGES.en.reader_title);
  assert.is(await page.locator('#sub').textContent(), MESSAGES.en.reader_technician);
  kiosk.showReader(undefined);
  await page.waitForSelector('main[data-outcome="idle"]');
  assert.is(await page.locator('#title').textContent(), MESSAGES.en.touch_title);
});

test.run();
