// The one hub client: every way an answer can go wrong maps to one stable code, the same for the
// edge and the provisioning tools. A real HTTP server on loopback, and a real TLS server whose CA the
// client does not trust.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDeviceCa } from '../../hub/pki/device-ca.ts';
import { DeviceConfig } from '../../shared/device-api.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { codeForStatus, HubHttpClient } from '../../shared/hub-client.ts';

let server: Server;
let url = '';
type Answer = { status: number; body: string; type?: string; delayMs?: number };
const answers = new Map<string, Answer>();
const CONFIG = JSON.stringify({ edgeId: 'edge-1', serviceId: 'library', syncSecret: 'A'.repeat(43) });

test.before(async () => {
  server = createServer((req, res) => {
    const a = answers.get(new URL(req.url!, 'http://x').pathname) ?? { status: 404, body: '' };
    setTimeout(() => res.writeHead(a.status, { 'content-type': a.type ?? 'application/json' }).end(a.body), a.delayMs ?? 0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
test.after(() => {
  server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
});

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: unknown) => (e instanceof MyKeyError ? e.code : `other: ${String(e)}`),
  );

test('each failure has its code: problem JSON, bare status, bad body, oversize, timeout, no hub', async () => {
  const client = new HubHttpClient({ baseUrl: url, timeoutMs: 300, maxBytes: 1024 });
  const table: [string, Answer, string][] = [
    ['the schema', { status: 200, body: CONFIG }, 'resolved'],
    ['problem JSON keeps its code', { status: 403, body: JSON.stringify({ code: 'device_revoked', detail: 'gone' }), type: 'application/problem+json' }, 'device_revoked'],
    ['an unknown code falls back to the status', { status: 403, body: JSON.stringify({ code: 'no_such_code' }) }, 'forbidden'],
    ['bare 401', { status: 401, body: '' }, 'unauthorized'],
    ['bare 404', { status: 404, body: '<html>' }, 'not_found'],
    ['bare 429', { status: 429, body: '' }, 'rate_limited'],
    ['bare 502', { status: 502, body: '' }, 'unavailable'],
    ['not JSON', { status: 200, body: '<html>' }, 'validation_failed'],
    ['not the schema', { status: 200, body: JSON.stringify({ edgeId: 'edge-1', serviceId: 'library', syncSecret: 'short' }) }, 'validation_failed'],
    ['above the cap', { status: 200, body: JSON.stringify({ pad: 'x'.repeat(5000) }) }, 'payload_too_large'],
    ['too slow', { status: 200, body: CONFIG, delayMs: 1000 }, 'timeout'],
  ];
  for (const [name, answer, want] of table) {
    answers.set('/v1/device/config', answer);
    assert.is(await codeOf(client.call({ method: 'GET', path: 'v1/device/config', schema: DeviceConfig, what: 'config' })), want, name);
  }
  assert.is(await codeOf(new HubHttpClient({ baseUrl: 'http://127.0.0.1:1' }).call({ method: 'GET', path: 'x', what: 'x' })), 'unavailable');
});

test('codes for bare statuses', () => {
  const table: [number, string][] = [
    [400, 'bad_request'],
    [401, 'unauthorized'],
    [403, 'forbidden'],
    [404, 'not_found'],
    [405, 'method_not_allowed'],
    [409, 'conflict'],
    [413, 'payload_too_large'],
    [415, 'unsupported_media_type'],
    [429, 'rate_limited'],
    [500, 'unavailable'],
    [503, 'unavailable'],
    [418, 'bad_request'],
  ];
  for (const [status, code] of table) assert.is(codeForStatus(status), code, String(status));
});

test('a server whose certificate does not chain to the trusted CA is hub_ca_mismatch, and gets no request', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-hubclient-'));
  try {
    const trusted = await openDeviceCa(join(dir, 'trusted'));
    const other = await openDeviceCa(join(dir, 'other'));
    const creds = await other.serverCredentials();
    let requests = 0;
    const tls = createHttpsServer({ key: creds.keyPem, cert: creds.certPem }, (_req, res) => {
      requests++;
      res.end('{}');
    });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    try {
      const client = new HubHttpClient({ baseUrl: `https://127.0.0.1:${(tls.address() as AddressInfo).port}`, tls: { ca: trusted.certPem } });
      assert.is(await codeOf(client.call({ method: 'POST', path: '/v1/enrollments', body: { token: 'secret' }, what: 'enrollment' })), 'hub_ca_mismatch');
      assert.is(requests, 0);
    } finally {
      tls.closeAllConnections();
      await new Promise((r) => tls.close(r));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
