// The hub's security headers: Hono's secureHeaders() defaults, on every response over a real socket
// (success, problem JSON, not found) and in-process alike.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { Hono } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { SECURITY_HEADERS, securityHeaders } from '../../../hub/http/security-headers.ts';

const expected = Object.fromEntries(SECURITY_HEADERS.map(([k, v]) => [k.toLowerCase(), v]));
const securityOf = (h: Headers) => Object.fromEntries([...h].filter(([k]) => k in expected || k === 'x-powered-by' || k === 'content-security-policy'));

function app(mw: ReturnType<typeof securityHeaders>) {
  const a = new Hono();
  a.use('*', mw);
  a.get('/json', (c) => c.json({ ok: true }));
  a.get('/fail', (c) => c.json({ code: 'bad_request' }, 400, { 'content-type': 'application/problem+json' }));
  a.get('/text', (c) => c.text('hello'));
  return a;
}

test('the list is exactly what Hono’s secureHeaders() sets by default', async () => {
  const res = await app(secureHeaders()).request('/json');
  assert.equal(securityOf(res.headers), expected);
});

test('in process (no Node response), the middleware sets the same headers', async () => {
  for (const path of ['/json', '/fail', '/text', '/nowhere']) {
    const res = await app(securityHeaders()).request(path);
    assert.equal(securityOf(res.headers), expected, path);
  }
});

test('over a real socket every response carries them, success, problem JSON and not found', async () => {
  const s = serve({ fetch: app(securityHeaders()).fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((r, j) => {
    s.once('listening', r);
    s.once('error', j);
  });
  try {
    const port = (s.address() as AddressInfo).port;
    for (const [path, status, type] of [
      ['/json', 200, 'application/json'],
      ['/fail', 400, 'application/problem+json'],
      ['/text', 200, 'text/plain'],
      ['/nowhere', 404, 'text/plain'],
    ] as const) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(10_000) });
      assert.is(res.status, status, path);
      assert.match(res.headers.get('content-type') ?? '', type, path);
      assert.equal(securityOf(res.headers), expected, path);
      await res.arrayBuffer();
    }
  } finally {
    (s as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

test.run();
