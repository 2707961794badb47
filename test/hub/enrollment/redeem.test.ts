// Enrollment tokens end to end over HTTP: issued for a service and an edge id, redeemed once for a
// device certificate from a CSR, refused when reused, expired, revoked or for another edge; a bad CSR
// leaves the token usable.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { createDeviceCsr, derToPem } from '../../../hub/pki/device-ca.ts';
import { client, startConsoleHub, type ConsoleHub } from '../console/helpers/console-hub.ts';
import { rejects } from '../../helpers/assertions.ts';

const test = suite('enrollment tokens');
const clock = { t: Date.parse('2026-11-25T09:00:00Z') };
let h: ConsoleHub;
let csrPem: string;

test.before(async () => {
  h = await startConsoleHub({ clock });
  await h.th.hub.links.createService({ id: 'library', name: 'Library' });
  csrPem = derToPem((await createDeviceCsr('library-01')).csrDer, 'CERTIFICATE REQUEST');
});
test.after(() => h.close());

const redeem = async (body: unknown) => {
  const res = await h.app.request('/v1/enrollments', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
};

test('a token is redeemed once for a device certificate of its service and edge id; a second use fails', async () => {
  const t = await h.tokens.issue({ serviceId: 'library', edgeId: 'library-01', by: 'ops' });
  assert.match(t.token, /^mket_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$/);
  assert.is(t.expiresAt - clock.t, 24 * 3600_000);
  // Only a hash is stored.
  assert.not.ok(JSON.stringify(await h.th.hub.store.sql.all('SELECT * FROM enrollment_tokens')).includes(t.token.split('.')[1]));
  const r = await redeem({ token: t.token, edgeId: 'library-01', csrPem });
  assert.is(r.status, 201, JSON.stringify(r.body));
  assert.is(r.body.serviceId, 'library');
  assert.is(r.body.edgeId, 'library-01');
  assert.is(r.body.brokerUrl, 'mqtts://hub.example:8883');
  // The other nodes of a broker cluster, which the edge fails over to.
  assert.equal(r.body.brokerUrls, ['mqtts://broker-2.example:8883', 'mqtts://broker-3.example:8883']);
  assert.is(r.body.hubUrl, 'https://hub.example');
  const cert = new X509Certificate(r.body.certPem);
  assert.match(cert.subject, /CN=library-01/);
  assert.match(cert.subject, /OU=library/);
  assert.ok(cert.verify(new X509Certificate(r.body.caPem).publicKey));
  const dev = (await h.devices.get('library-01'))!;
  assert.is(dev.service_id, 'library');
  assert.is(dev.status, 'active');
  const again = await redeem({ token: t.token, edgeId: 'library-01', csrPem });
  assert.is(again.status, 409);
  assert.is(again.body.code, 'enrollment_token_used');
  const audit = (await h.repo.auditLog()).filter((a) => a.action === 'enrollment.redeem');
  assert.equal(
    audit.map((a) => [a.actor, a.outcome]),
    [
      ['edge:library-01', 'enrollment_token_used'],
      ['edge:library-01', 'ok'],
    ],
  );
  assert.is((await h.tokens.list('library')).find((x) => x.id === t.id)!.state, 'used');
});

test('an expired token is refused with its own code', async () => {
  const t = await h.tokens.issue({ serviceId: 'library', edgeId: 'library-02', by: 'ops', ttlMs: 3600_000 });
  clock.t += 3600_000;
  const r = await redeem({ token: t.token, edgeId: 'library-02', csrPem });
  assert.is(r.status, 401);
  assert.is(r.body.code, 'enrollment_token_expired');
  assert.is((await h.tokens.list()).find((x) => x.id === t.id)!.state, 'expired');
});

test('a token is refused for another edge id, when revoked, when unknown or forged', async () => {
  const t = await h.tokens.issue({ serviceId: 'library', edgeId: 'library-03', by: 'ops' });
  const other = await redeem({ token: t.token, edgeId: 'library-04', csrPem });
  assert.is(other.status, 401);
  assert.is(other.body.code, 'enrollment_token_invalid');
  assert.match(other.body.detail, 'another edge id');
  const forged = await redeem({ token: `${t.token.slice(0, 18)}${'A'.repeat(43)}`, edgeId: 'library-03', csrPem });
  assert.is(forged.body.code, 'enrollment_token_invalid');
  const unknown = await redeem({ token: `mket_000000000000.${'A'.repeat(43)}`, edgeId: 'library-03', csrPem });
  assert.is(unknown.body.code, 'enrollment_token_invalid');
  assert.ok(await h.tokens.revoke(t.id, 'ops'));
  assert.not.ok(await h.tokens.revoke(t.id, 'ops'));
  const revoked = await redeem({ token: t.token, edgeId: 'library-03', csrPem });
  assert.is(revoked.body.code, 'enrollment_token_invalid');
  assert.match(revoked.body.detail, 'revoked');
  assert.is(await h.devices.get('library-03'), undefined);
});

test('a bad CSR is refused and leaves the token usable for a good one', async () => {
  const t = await h.tokens.issue({ serviceId: 'library', edgeId: 'library-05', by: 'ops' });
  const noPem = await redeem({ token: t.token, edgeId: 'library-05', csrPem: 'hello' });
  assert.is(noPem.status, 400);
  assert.is(noPem.body.code, 'csr_invalid');
  const garbage = await redeem({ token: t.token, edgeId: 'library-05', csrPem: derToPem(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]), 'CERTIFICATE REQUEST') });
  assert.is(garbage.body.code, 'csr_invalid');
  const good = await redeem({ token: t.token, edgeId: 'library-05', csrPem });
  assert.is(good.status, 201);
});

test('malformed requests are refused by the schema', async () => {
  assert.is((await redeem({ token: 'x', edgeId: 'library-01', csrPem })).body.code, 'validation_failed');
  assert.is((await redeem({ token: `mket_000000000000.${'A'.repeat(43)}`, edgeId: 'Bad Edge', csrPem })).body.code, 'validation_failed');
  assert.is((await redeem({ token: `mket_000000000000.${'A'.repeat(43)}`, edgeId: 'e1x', csrPem, extra: 1 })).body.code, 'validation_failed');
});

test('two redemptions of one token at once: exactly one gets a certificate', async () => {
  const t = await h.tokens.issue({ serviceId: 'library', edgeId: 'library-06', by: 'ops' });
  const rs = await Promise.all([1, 2, 3].map(() => redeem({ token: t.token, edgeId: 'library-06', csrPem })));
  assert.equal(rs.map((r) => r.status).sort(), [201, 409, 409]);
});

test('the token page shows the device CA fingerprint and the enroll command beside an issued token', async () => {
  await h.addOperator('fp-ops', 'operator');
  const c = client(h);
  await c.signIn('fp-ops');
  const fp = new X509Certificate(h.enrollment.caPem).fingerprint256;
  assert.match(fp, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  const page = await c.get('/console/enrollments');
  assert.match(page.text, `data-testid="ca-fingerprint">${fp}<`);
  const r = await c.post('/console/enrollments', { serviceId: 'library', edgeId: 'library-07', hours: '24' });
  assert.is(r.status, 303);
  const issued = await c.get(r.location!);
  const command = /data-testid="enroll-command">([^<]+)</.exec(issued.text)?.[1];
  assert.is(command, `npx tsx provisioning/enroll/cli.ts enroll --hub https://hub.example:8443 --ca-fingerprint ${fp} --edge-id library-07 --state-dir /var/lib/mykey-edge`);
  // The fingerprint is the one of the CA certificate a redemption hands out.
  const token = /data-testid="issued-enrollment-token">([^<]+)</.exec(issued.text)![1];
  const redeemed = await redeem({ token, edgeId: 'library-07', csrPem });
  assert.is(redeemed.status, 201);
  assert.is(new X509Certificate(redeemed.body.caPem).fingerprint256, fp);
  // In English too.
  await c.get('/console/lang/en?next=/console/enrollments');
  assert.match((await c.get('/console/enrollments')).text, "SHA-256 fingerprint of the hub's device CA certificate".replace("'", '&#39;'));
});

test('issuing checks the service id, edge id and lifetime', async () => {
  await rejects(h.tokens.issue({ serviceId: 'library', edgeId: 'Bad Edge', by: 'ops' }), /edge id/);
  await rejects(h.tokens.issue({ serviceId: 'library', edgeId: 'ok-edge', by: 'ops', ttlMs: 8 * 86400_000 }), /7 days/);
});

test('the route is documented in OpenAPI with its error codes', () => {
  const doc = h.api.document() as any;
  const op = doc.paths['/v1/enrollments'].post;
  assert.ok(op);
  assert.is(op.tags[0], 'Provisioning');
  assert.ok(op.responses['201']);
  assert.match(op.responses['409'].description, 'enrollment_token_used');
  assert.match(op.responses['401'].description, 'enrollment_token_expired');
});

test('without device enrollment configured the route says so', async () => {
  const { Hono } = await import('hono');
  const { mountEnrollmentRoutes } = await import('../../../hub/enrollment/redeem-routes.ts');
  const { createOpenApi } = await import('../../../hub/http/openapi.ts');
  const app = new Hono();
  mountEnrollmentRoutes(app, createOpenApi({ title: 't', version: '0' }), { consoleRepo: h.repo, linkRepo: h.th.hub.linkRepo });
  const res = await app.request('/v1/enrollments', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: `mket_000000000000.${'A'.repeat(43)}`, edgeId: 'e1x', csrPem }),
  });
  assert.is(res.status, 503);
});

test.run();
