// Attacks on the kiosk page over real HTTP: a DNS-rebound Host, requests from a foreign origin (POST,
// EventSource, WebSocket upgrade) and a LAN binding without its token are each refused with their code.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'node:http';
import { chromium } from 'playwright-core';
import { KioskServer, type ActionReply, type KioskActions } from '../../../edge/kiosk/index.ts';

const calls: string[] = [];
const okReply: ActionReply = { ok: true };
const actions: KioskActions = {
  start: () => (calls.push('start'), okReply),
  serviceUserId: () => okReply,
  pin: () => okReply,
  cancel: () => okReply,
};

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  code?: string;
}

/** One raw request: node:http lets the test set Host, Origin and Upgrade as an attacker's browser would. */
function send(base: string, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      // An accepted EventSource stays open: the first bytes are enough.
      const done = () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let code: string | undefined;
        try {
          code = (JSON.parse(body) as { code?: string }).code;
        } catch {
          code = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, code });
      };
      res.on('data', (d: Buffer) => {
        chunks.push(d);
        if (String(res.headers['content-type']).startsWith('text/event-stream')) {
          res.destroy();
          done();
        }
      });
      res.on('end', done);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const loop = new KioskServer({ registration: actions });
const lan = new KioskServer({ host: '0.0.0.0', registration: actions, print: (l) => printed.push(l) });
const printed: string[] = [];
const configured = new KioskServer({ token: 'counter-secret-1', registration: actions });

test.before(async () => {
  await loop.start();
  await lan.start();
  await configured.start();
});

test.after(async () => {
  await loop.stop();
  await lan.stop();
  await configured.stop();
});

test('serves a loopback page without a token to a same-origin browser', async () => {
  const host = new URL(loop.url).host;
  const page = await send(loop.url, '/', { headers: { host } });
  assert.is(page.status, 200);
  const post = await send(loop.url, '/api/register/start', { method: 'POST', headers: { host, origin: `http://${host}`, 'content-type': 'application/json' }, body: '{}' });
  assert.is(post.status, 200);
  assert.equal(calls, ['start']);
  const local = await send(loop.url, '/api/view', { headers: { host: `localhost:${new URL(loop.url).port}` } });
  assert.is(local.status, 200, 'localhost is the same machine');
});

test('refuses a DNS-rebound Host (evil.example resolving to 127.0.0.1) on every route', async () => {
  const port = new URL(loop.url).port;
  for (const path of ['/', '/kiosk.js', '/api/view', '/events']) {
    const r = await send(loop.url, path, { headers: { host: `evil.example:${port}` } });
    assert.is(r.status, 403, path);
    assert.is(r.code, 'kiosk_host_refused', path);
  }
  const post = await send(loop.url, '/api/register/start', {
    method: 'POST',
    headers: { host: `evil.example:${port}`, origin: `http://evil.example:${port}`, 'content-type': 'application/json' },
    body: '{}',
  });
  assert.is(post.code, 'kiosk_host_refused');
  const otherPort = await send(loop.url, '/api/view', { headers: { host: '127.0.0.1:1' } });
  assert.is(otherPort.code, 'kiosk_host_refused', 'a Host with another port is another origin');
});

test('refuses a cross-origin POST, EventSource and WebSocket upgrade', async () => {
  const host = new URL(loop.url).host;
  const before = calls.length;
  const post = await send(loop.url, '/api/register/start', { method: 'POST', headers: { host, origin: 'http://evil.example', 'content-type': 'application/json' }, body: '{}' });
  assert.is(post.status, 403);
  assert.is(post.code, 'kiosk_origin_refused');
  const events = await send(loop.url, '/events', { headers: { host, origin: 'http://evil.example', accept: 'text/event-stream' } });
  assert.is(events.status, 403);
  assert.is(events.code, 'kiosk_origin_refused');
  const ws = await send(loop.url, '/events', {
    headers: { host, origin: 'http://evil.example', connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
  });
  assert.is(ws.status, 403);
  assert.is(ws.code, 'kiosk_origin_refused');
  const nullOrigin = await send(loop.url, '/api/register/start', { method: 'POST', headers: { host, origin: 'null', 'content-type': 'application/json' }, body: '{}' });
  assert.is(nullOrigin.code, 'kiosk_origin_refused', 'a sandboxed frame sends Origin: null');
  const site = await send(loop.url, '/api/view', { headers: { host, 'sec-fetch-site': 'cross-site' } });
  assert.is(site.code, 'kiosk_origin_refused', 'fetch metadata marks another site');
  assert.is(calls.length, before, 'no action ran');
});

test('a LAN binding refuses a request without the token, and a wrong one', async () => {
  const host = `127.0.0.1:${new URL(lan.url).port}`;
  for (const path of ['/', '/api/view', '/events']) {
    const r = await send(lan.url, path, { headers: { host } });
    assert.is(r.status, 401, path);
    assert.is(r.code, 'kiosk_token_required', path);
  }
  const post = await send(lan.url, '/api/register/start', { method: 'POST', headers: { host, origin: `http://${host}`, 'content-type': 'application/json' }, body: '{}' });
  assert.is(post.code, 'kiosk_token_required');
  const wrongUrl = await send(lan.url, '/?token=guess', { headers: { host } });
  assert.is(wrongUrl.status, 403);
  assert.is(wrongUrl.code, 'kiosk_token_invalid');
  const wrongCookie = await send(lan.url, '/api/view', { headers: { host, cookie: 'mykey_kiosk=guess' } });
  assert.is(wrongCookie.code, 'kiosk_token_invalid');
  const rebound = await send(lan.url, '/api/view', { headers: { host: `evil.example:${new URL(lan.url).port}` } });
  assert.is(rebound.code, 'kiosk_host_refused');
});

test('a LAN binding prints its generated token once; the URL carries it once, then a cookie', async () => {
  assert.is(printed.length, 1);
  assert.ok(printed[0]!.includes('?token='));
  const token = new URL(lan.pageUrl).searchParams.get('token')!;
  assert.ok(token.length >= 20);
  const host = `127.0.0.1:${new URL(lan.url).port}`;
  const first = await send(lan.url, `/?token=${encodeURIComponent(token)}`, { headers: { host } });
  assert.is(first.status, 303);
  assert.is(first.headers.location, '/', 'the token leaves the address bar');
  const cookie = String(first.headers['set-cookie']);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  const jar = cookie.split(';')[0]!;
  const page = await send(lan.url, '/', { headers: { host, cookie: jar } });
  assert.is(page.status, 200);
  const post = await send(lan.url, '/api/register/start', { method: 'POST', headers: { host, cookie: jar, origin: `http://${host}`, 'content-type': 'application/json' }, body: '{}' });
  assert.is(post.status, 200);
  await lan.stop();
  await lan.start();
  assert.is(printed.length, 1, 'printed once, also across a restart');
  assert.is((await send(lan.url, '/api/view', { headers: { host: `127.0.0.1:${new URL(lan.url).port}`, cookie: jar } })).status, 200, 'the cookie stays good');
});

test('a real browser opens the LAN page with the token once, then works live on the cookie alone', async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(5000);
    const pageUrl = lan.pageUrl.replace('0.0.0.0', '127.0.0.1');
    await page.goto(pageUrl);
    assert.not.match(page.url(), 'token=', 'the token is gone from the address bar');
    await page.waitForSelector('main[data-outcome="idle"]');
    lan.deliver({ transaction: 't', outcome: 'linked', serviceId: 'library', edgeId: 'e', reader: 'r', at: new Date().toISOString(), serviceUserId: 'LIB-42' });
    await page.waitForSelector('main[data-outcome="linked"]');
    assert.is(await page.locator('#value').textContent(), 'LIB-42', 'the event stream runs on the cookie');
    const other = await browser.newPage();
    const res = await other.goto(new URL(pageUrl).origin.replace('127.0.0.1', 'localhost') + '/');
    assert.is(res?.status(), 401, 'another origin (no cookie there) is asked for the token');
  } finally {
    await browser.close();
  }
});

test('a configured token is required even on loopback', async () => {
  const host = new URL(configured.url).host;
  assert.is((await send(configured.url, '/api/view', { headers: { host } })).code, 'kiosk_token_required');
  assert.is((await send(configured.url, '/api/view', { headers: { host, cookie: 'mykey_kiosk=counter-secret-1' } })).status, 200);
});

test.run();
