// Each listener answers only its own app, through real sockets: the device mutual-TLS listener never
// serves the console, the operator API or the holders' routes, even to a valid reader certificate
// with a valid bearer token; the public listener never serves the device API or enrollment; device
// routes demand a verified device certificate themselves (the device listener lets a handshake
// without one through, for enrollment redemption).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDeviceCa } from '../../hub/pki/device-ca.ts';
import type { TestHub } from '../helpers/hub.ts';
import { startHubWithEdge } from '../helpers/enrolled-edge.ts';

const ADMIN = 'admin-token-for-the-listener-test-0123456789';

interface Creds {
  certPem?: string;
  keyPem?: string;
  caPem: string;
}
interface Ctx {
  h: TestHub;
  edge: Required<Creds>;
  stranger: Required<Creds>;
  strangerDir: string;
}
const test = suite<Ctx>('listeners', {} as Ctx);

test.before(async (ctx) => {
  ({ h: ctx.h, edge: ctx.edge } = await startHubWithEdge({ edgeId: 'lib-reader-1', overrides: { admin: { token: ADMIN } } }));
  // A certificate from another CA: the handshake completes, the TLS layer does not verify it.
  ctx.strangerDir = mkdtempSync(join(tmpdir(), 'mykey-stranger-'));
  const other = await openDeviceCa(ctx.strangerDir);
  const sc = await other.serverCredentials();
  ctx.stranger = { certPem: sc.certPem, keyPem: sc.keyPem, caPem: ctx.edge.caPem };
});
test.after(async (ctx) => {
  await ctx.h.close();
  rmSync(ctx.strangerDir, { recursive: true, force: true });
});

function deviceCall(ctx: Ctx, method: string, path: string, creds: Creds, init: { body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: any }> {
  const url = new URL(path, ctx.h.hub.addresses.deviceApi);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, ca: creds.caPem, cert: creds.certPem, key: creds.keyPem, headers: init.headers ?? {} }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON (an HTML page would be a failure the test reports)
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

const json = { 'content-type': 'application/json' };

test('the device listener refuses the console sign-in, the operator API and holder routes to a valid reader certificate (404)', async (ctx) => {
  const attacks: [string, string, { body?: string; headers?: Record<string, string> }][] = [
    ['GET', '/console', {}],
    ['GET', '/console/login', {}],
    ['POST', '/console/login', { body: 'username=ops&password=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
    ['GET', '/v1/admin/services', { headers: { authorization: `Bearer ${ADMIN}` } }],
    ['POST', '/v1/admin/services', { body: JSON.stringify({ id: 'evil', name: 'Evil' }), headers: { ...json, authorization: `Bearer ${ADMIN}` } }],
    ['POST', '/v1/admin/services/library/credentials', { body: JSON.stringify({ label: 'x' }), headers: { ...json, authorization: `Bearer ${ADMIN}` } }],
    ['POST', '/v1/mykey-ids', { body: '{}', headers: json }],
    ['POST', '/v1/holder/status', { body: '{}', headers: json }],
    ['POST', '/v1/holder/mykey-id', { body: '{}', headers: json }],
    ['POST', '/v1/holder/invalidate', { body: '{}', headers: json }],
    ['POST', '/v1/holder/carry-over', { body: '{}', headers: json }],
    ['POST', '/v1/holder/unlink', { body: '{}', headers: json }],
    ['POST', '/v1/services/library/links', { body: '{}', headers: json }],
  ];
  for (const [method, path, init] of attacks) {
    const r = await deviceCall(ctx, method, path, ctx.edge, init);
    assert.is(r.status, 404, `${method} ${path}: ${JSON.stringify(r.body)}`);
    assert.is(r.body.code, 'not_found', `${method} ${path}`);
  }
  assert.is(await ctx.h.hub.linkRepo.service('evil'), undefined);
  // Challenges on the device listener are bound to the asking device (/v1/device/challenges); the public
  // challenge route is not there at all, and the device route wants a device certificate.
  const reg = await deviceCall(ctx, 'POST', '/v1/challenges', ctx.edge, { body: JSON.stringify({ purpose: 'register' }), headers: json });
  assert.is(reg.status, 404);
  assert.is(reg.body.code, 'not_found');
  const counter = await deviceCall(ctx, 'POST', '/v1/device/challenges', ctx.edge, { body: JSON.stringify({ serviceUserId: 'L-1' }), headers: json });
  assert.is(counter.status, 201, JSON.stringify(counter.body));
  const anon = await deviceCall(ctx, 'POST', '/v1/device/challenges', { caPem: ctx.edge.caPem }, { body: JSON.stringify({ serviceUserId: 'L-1' }), headers: json });
  assert.is(anon.body.code, 'device_cert_required');
  // The same bearer token works where it belongs: on the public listener.
  const pub = await fetch(`${ctx.h.hub.addresses.http}/v1/admin/services`, { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.is(pub.status, 200);
});

test('the public listener refuses the device API and enrollment redemption (404)', async (ctx) => {
  const base = ctx.h.hub.addresses.http!;
  for (const [method, path] of [
    ['GET', '/v1/device/config'],
    ['GET', '/v1/device/snapshot'],
    ['GET', '/v1/device/changes?after=0'],
    ['POST', '/v1/device/links'],
    ['POST', '/v1/enrollments'],
  ]) {
    const res = await fetch(`${base}${path}`, { method, headers: json, body: method === 'POST' ? '{}' : undefined });
    assert.is(res.status, 404, `${method} ${path}`);
    assert.is(((await res.json()) as { code: string }).code, 'not_found');
  }
  // hub.app is the public app: in-process requests see the same.
  assert.is((await ctx.h.request('/v1/device/config')).status, 404);
});

test('each listener documents only its own routes', async (ctx) => {
  const pub = (await (await fetch(`${ctx.h.hub.addresses.http}/openapi.json`)).json()) as { paths: Record<string, unknown> };
  assert.ok(pub.paths['/v1/admin/services']);
  assert.ok(pub.paths['/v1/challenges']);
  assert.not.ok(Object.keys(pub.paths).some((p) => p.startsWith('/v1/device') || p === '/v1/enrollments'));
  const dev = await deviceCall(ctx, 'GET', '/openapi.json', { caPem: ctx.edge.caPem });
  assert.is(dev.status, 200);
  const paths = Object.keys(dev.body.paths as Record<string, unknown>).sort();
  assert.equal(paths, [
    '/v1/device/challenges',
    '/v1/device/changes',
    '/v1/device/config',
    '/v1/device/links',
    '/v1/device/releases/{version}/bundle',
    '/v1/device/revoke',
    '/v1/device/rotate',
    '/v1/device/snapshot',
    '/v1/device/update',
    '/v1/enrollments',
  ]);
  assert.not.ok(
    Object.keys(dev.body.paths as Record<string, unknown>).some((p) => p.startsWith('/v1/admin')),
    'release uploads and rollouts stay on the public listener',
  );
  assert.match(dev.body.paths['/v1/device/config'].get.responses['401'].description, 'device_cert_required');
});

test('device routes refuse a connection without a certificate, or with one the device CA did not sign (401 device_cert_required)', async (ctx) => {
  for (const creds of [{ caPem: ctx.edge.caPem }, ctx.stranger]) {
    for (const path of ['/v1/device/config', '/v1/device/snapshot']) {
      const r = await deviceCall(ctx, 'GET', path, creds);
      assert.is(r.status, 401, path);
      assert.is(r.body.code, 'device_cert_required');
    }
    const link = await deviceCall(ctx, 'POST', '/v1/device/links', creds, { body: JSON.stringify({ identity: { mykeyId: 'x' }, serviceUserId: 'L-1' }), headers: json });
    assert.is(link.status, 401);
    assert.is(link.body.code, 'device_cert_required');
  }
  // The enrolled reader's own certificate passes.
  assert.is((await deviceCall(ctx, 'GET', '/v1/device/config', ctx.edge)).status, 200);
  // Enrollment redemption needs no certificate: a bad token gets its own code, not device_cert_required.
  const redeem = await deviceCall(
    ctx,
    'POST',
    '/v1/enrollments',
    { caPem: ctx.edge.caPem },
    {
      body: JSON.stringify({ token: `mket_000000000000.${'A'.repeat(43)}`, edgeId: 'lib-reader-9', csrPem: '-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----' }),
      headers: json,
    },
  );
  assert.is(redeem.body.code, 'enrollment_token_invalid', JSON.stringify(redeem.body));
});

test('the device listener presents the device CA in its chain, so the enrollment tool can pin it', async (ctx) => {
  const { connect } = await import('node:tls');
  const { X509Certificate } = await import('node:crypto');
  const url = new URL(ctx.h.hub.addresses.deviceApi!);
  const chain = await new Promise<string[]>((resolve, reject) => {
    const s = connect({ host: url.hostname, port: Number(url.port), rejectUnauthorized: false }, () => {
      const out: string[] = [];
      let c = s.getPeerCertificate(true);
      while (c && c.raw) {
        out.push(new X509Certificate(c.raw).fingerprint256);
        if (c.issuerCertificate === c || !c.issuerCertificate) break;
        c = c.issuerCertificate;
      }
      s.end();
      resolve(out);
    });
    s.on('error', reject);
  });
  assert.ok(chain.includes(ctx.h.hub.deviceCaFingerprint!), chain.join(' '));
  assert.match(ctx.h.hub.deviceCaFingerprint!, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
});

test.run();
