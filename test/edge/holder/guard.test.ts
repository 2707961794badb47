// Who may talk to the home companion, through its real HTTP socket: DNS rebinding (a foreign Host),
// a foreign Origin, a missing or wrong session token, the hub's origin and its CORS preflight. Each
// attack gets its own code and never reaches a flow.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'node:http';
import { HolderServer } from '../../../edge/holder/server.ts';
import type { FlowRequest, HolderFlows } from '../../../edge/holder/flows.ts';
import { createLogger } from '../../../shared/log.ts';

const HUB = 'https://hub.example.jp';
const TOKEN = 'session-token-for-tests';
const runs: FlowRequest[] = [];
const logs: string[] = [];
const flows: Pick<HolderFlows, 'run' | 'state' | 'cancel'> = {
  run: async (r) => {
    runs.push(r);
    return { step: 'done', view: { mykeyId: 'HKX7M3QP', status: 'active', created: true } };
  },
  state: () => ({ readers: 1, card: true, busy: false, carryOver: false }),
  cancel: () => {},
};
const server = new HolderServer({ flows, hubOrigin: HUB, token: TOKEN, log: createLogger('holder', { level: 'debug', write: (l) => logs.push(l) }) });
let port = 0;

test.before(async () => {
  await server.start();
  port = Number(new URL(server.url).port);
});
test.after(() => server.stop());

function send(method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const own = () => `http://127.0.0.1:${port}`;
const json = { 'content-type': 'application/json' };
const flowBody = JSON.stringify({ op: 'invalidate', pin: '1234' });

const ATTACKS: [string, () => [string, string, Record<string, string>, string | undefined], number, string][] = [
  ['a DNS-rebound name in Host', () => ['POST', '/api/flow', { ...json, host: `evil.example:${port}`, 'x-mykey-holder-token': TOKEN }, flowBody], 403, 'holder_host_refused'],
  ['the right name on another port', () => ['GET', '/', { host: `127.0.0.1:${port + 1}` }, undefined], 403, 'holder_host_refused'],
  ['a foreign Origin with the token', () => ['POST', '/api/flow', { ...json, origin: 'https://evil.example', 'x-mykey-holder-token': TOKEN }, flowBody], 403, 'holder_origin_refused'],
  ['a cross-site fetch without Origin', () => ['POST', '/api/flow', { ...json, 'sec-fetch-site': 'cross-site', 'x-mykey-holder-token': TOKEN }, flowBody], 403, 'holder_origin_refused'],
  ['the own origin without the token', () => ['POST', '/api/flow', { ...json, origin: own() }, flowBody], 401, 'holder_token_required'],
  [
    'the own origin with a wrong token',
    () => ['POST', '/api/flow', { ...json, origin: own(), cookie: `mykey_kiosk=${TOKEN}`, 'x-mykey-holder-token': 'guess' }, flowBody],
    403,
    'holder_token_invalid',
  ],
  ['the hub origin without the token header', () => ['POST', '/api/flow', { ...json, origin: HUB }, flowBody], 401, 'holder_token_required'],
  ['the hub origin with a wrong token', () => ['POST', '/api/flow', { ...json, origin: HUB, 'x-mykey-holder-token': 'guess' }, flowBody], 403, 'holder_token_invalid'],
  ['the hub origin asking for the page', () => ['GET', '/', { origin: HUB }, undefined], 403, 'holder_origin_refused'],
  ['a preflight from a foreign origin', () => ['OPTIONS', '/api/flow', { origin: 'https://evil.example', 'access-control-request-method': 'POST' }, undefined], 403, 'holder_origin_refused'],
  ['the page without the token link or cookie', () => ['GET', '/', {}, undefined], 401, 'holder_token_required'],
  ['the page with a wrong token link', () => ['GET', '/?token=guess', {}, undefined], 403, 'holder_token_invalid'],
  ['the token as a query on a POST', () => ['POST', `/api/flow?token=${TOKEN}`, { ...json, origin: own() }, flowBody], 403, 'holder_token_invalid'],
];

for (const [name, build, status, code] of ATTACKS) {
  test(`refuses ${name} with ${code}`, async () => {
    const before = runs.length;
    const [method, path, headers, body] = build();
    const r = await send(method, path, headers, body);
    assert.is(r.status, status, r.body);
    assert.is(JSON.parse(r.body).code, code);
    assert.is(runs.length, before, 'no flow ran');
  });
}

test('the token link sets an HttpOnly SameSite=Strict cookie and leads to the page, which carries the session token', async () => {
  const r = await send('GET', `/?token=${TOKEN}`, {});
  assert.is(r.status, 303);
  assert.match(String(r.headers['set-cookie']), /HttpOnly; SameSite=Strict/);
  const page = await send('GET', '/', { cookie: `mykey_kiosk=${TOKEN}` });
  assert.is(page.status, 200);
  assert.match(page.body, `content="${TOKEN}"`);
  assert.match(String(page.headers['content-security-policy']), "script-src 'self'");
});

test("the companion's own page with cookie and token header runs a flow", async () => {
  const r = await send('POST', '/api/flow', { ...json, origin: own(), cookie: `mykey_kiosk=${TOKEN}`, 'x-mykey-holder-token': TOKEN }, flowBody);
  assert.is(r.status, 200, r.body);
  assert.is(runs.at(-1)?.op, 'invalidate');
});

test("the hub's origin passes its preflight and, with the token, runs a flow (CORS for that origin only)", async () => {
  const pre = await send('OPTIONS', '/api/flow', { origin: HUB, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-mykey-holder-token' });
  assert.is(pre.status, 204);
  assert.is(pre.headers['access-control-allow-origin'], HUB);
  assert.match(String(pre.headers['access-control-allow-headers']), 'x-mykey-holder-token');
  const r = await send('POST', '/api/flow', { ...json, origin: HUB, 'x-mykey-holder-token': TOKEN }, flowBody);
  assert.is(r.status, 200, r.body);
  assert.is(r.headers['access-control-allow-origin'], HUB);
});

test('refuses a body that is not a small JSON object before any flow', async () => {
  const h = { origin: own(), cookie: `mykey_kiosk=${TOKEN}`, 'x-mykey-holder-token': TOKEN };
  const before = runs.length;
  assert.is(JSON.parse((await send('POST', '/api/flow', { ...h, 'content-type': 'text/plain' }, flowBody)).body).code, 'unsupported_media_type');
  assert.is(JSON.parse((await send('POST', '/api/flow', { ...h, ...json }, '[1]')).body).code, 'bad_request');
  assert.is(JSON.parse((await send('POST', '/api/flow', { ...h, ...json }, JSON.stringify({ pin: 'x'.repeat(2000) }))).body).code, 'payload_too_large');
  assert.is(runs.length, before);
});

test('nothing it logs carries the PIN', () => {
  assert.not.ok(logs.some((l) => l.includes('1234')));
});

test('listens on loopback only', () => {
  assert.throws(() => new HolderServer({ flows, hubOrigin: HUB, host: '0.0.0.0' }), /loopback/);
});

test.run();
