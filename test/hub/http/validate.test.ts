// The JSON body middleware over a real socket (@hono/node-server, as the hub serves): the body read
// from the Node request in any number of chunks, with or without Content-Length, the size limit held
// while streaming, and a client that goes away mid-body costing nothing but its own request.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request } from 'node:http';
import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { Hono } from 'hono';
import { Type } from '@sinclair/typebox';
import { jsonBody } from '../../../hub/http/validate.ts';
import type { HubEnv } from '../../../hub/http/router.ts';

const Body = Type.Object({ text: Type.String() }, { additionalProperties: false });
const LIMIT = 1000;

async function server() {
  const app = new Hono<HubEnv>();
  app.post('/echo', jsonBody(Body, { maxBytes: LIMIT }), (c) => c.json({ length: c.get('body').text.length }));
  const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((r, j) => {
    s.once('listening', r);
    s.once('error', j);
  });
  return { port: (s.address() as AddressInfo).port, close: () => new Promise<void>((r) => s.close(() => r())) };
}

/** POSTs `chunks` one write each (chunked transfer unless `length` is given); resolves with the status and body, or how it failed. */
function post(port: number, chunks: string[], { length, abortAfter }: { length?: number; abortAfter?: number } = {}): Promise<{ status?: number; body?: string; failed?: string }> {
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/json' };
    if (length !== undefined) headers['content-length'] = length;
    const req = request({ host: '127.0.0.1', port, path: '/echo', method: 'POST', headers, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', (e) => resolve({ failed: e.message }));
    });
    req.on('error', (e) => resolve({ failed: e.message }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    let i = 0;
    const next = () => {
      if (abortAfter !== undefined && i === abortAfter) {
        req.destroy();
        resolve({ failed: 'aborted by the client' });
        return;
      }
      if (i === chunks.length) {
        req.end();
        return;
      }
      req.write(chunks[i++], () => setImmediate(next));
    };
    next();
  });
}

const bodyOf = (n: number) => JSON.stringify({ text: 'x'.repeat(n) });
const split = (s: string, parts: number) => Array.from({ length: parts }, (_, i) => s.slice(Math.floor((i * s.length) / parts), Math.floor(((i + 1) * s.length) / parts)));

test('a body arrives whole in one chunk or many, with Content-Length or chunked', async () => {
  const s = await server();
  try {
    for (const [parts, withLength] of [
      [1, true],
      [1, false],
      [7, true],
      [7, false],
    ] as const) {
      const body = bodyOf(500);
      const r = await post(s.port, split(body, parts), withLength ? { length: Buffer.byteLength(body) } : {});
      assert.is(r.status, 200, `${parts} chunk(s), ${withLength ? 'with' : 'without'} Content-Length: ${JSON.stringify(r)}`);
      assert.equal(JSON.parse(r.body!), { length: 500 });
    }
  } finally {
    await s.close();
  }
});

test('a chunked body over the limit is refused while it streams, and the server goes on serving', async () => {
  const s = await server();
  try {
    const r = await post(s.port, split(bodyOf(5 * LIMIT), 10));
    // Refused with 413, or cut off (the request is destroyed as soon as it is too large): never accepted.
    assert.ok(r.status === 413 || r.failed !== undefined, JSON.stringify(r).slice(0, 200));
    const declared = await post(s.port, [bodyOf(2 * LIMIT)], { length: Buffer.byteLength(bodyOf(2 * LIMIT)) });
    assert.is(declared.status, 413, 'a declared length over the limit is refused before reading');
    assert.match(declared.body!, 'payload_too_large');
    const after = await post(s.port, [bodyOf(10)]);
    assert.is(after.status, 200);
  } finally {
    await s.close();
  }
});

test('a client that goes away mid-body costs only its own request', async () => {
  const s = await server();
  try {
    const body = bodyOf(800);
    for (let i = 0; i < 5; i++) {
      const r = await post(s.port, split(body, 4), { abortAfter: 2 });
      assert.is(r.failed, 'aborted by the client');
    }
    const after = await post(s.port, split(body, 3));
    assert.is(after.status, 200);
    assert.equal(JSON.parse(after.body!), { length: 800 });
  } finally {
    await s.close();
  }
});

test.run();
