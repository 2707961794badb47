// A service administrator acts only inside their service. Each attack of an independent review, over
// real HTTP with real console sessions (sign-in, CSRF token, cookies) and real token redemptions
// (POST /v1/enrollments with a CSR): the admin of library tries to take museum's edge, by a token
// issued for it, by a token issued before museum enrolled it, by moving a revoked museum edge, and
// museum's own admin tries to bring a revoked device back. Each is refused with its own code;
// museum's device stays enrolled with its certificate; museum's admin sees the attempt in their audit
// log. A platform operator's explicit permission is the one way back for a revoked edge id.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createDeviceCsr, derToPem } from '../../../hub/pki/device-ca.ts';
import { client, serveConsoleHub, startConsoleHub, type ConsoleHub } from './helpers/console-hub.ts';

const test = suite("one service cannot touch another service's edges");
let h: ConsoleHub;
let srv: { url: string; close(): Promise<void> };
let ops: ReturnType<typeof client>;
let lib: ReturnType<typeof client>;
let mus: ReturnType<typeof client>;

test.before(async () => {
  h = await startConsoleHub();
  await h.th.hub.links.createService({ id: 'library', name: 'Library' });
  await h.th.hub.links.createService({ id: 'museum', name: 'Museum' });
  await h.addOperator('ops', 'operator');
  await h.addOperator('lib-admin', 'service-admin', 'library');
  await h.addOperator('mus-admin', 'service-admin', 'museum');
  srv = await serveConsoleHub(h);
  ops = client(h, undefined, srv.url);
  lib = client(h, undefined, srv.url);
  mus = client(h, undefined, srv.url);
  for (const [c, name] of [
    [ops, 'ops'],
    [lib, 'lib-admin'],
    [mus, 'mus-admin'],
  ] as const)
    assert.is((await c.signIn(name)).status, 303, name);
});
test.after(async () => {
  await srv?.close();
  await h?.close();
});

/** Issues a token in the console as `c`; the token text on success, else the refusal's status and code. */
async function issue(c: ReturnType<typeof client>, serviceId: string, edgeId: string, extra: Record<string, string> = {}) {
  await c.get('/console/enrollments');
  const r = await c.post('/console/enrollments', { serviceId, edgeId, hours: '2', ...extra });
  if (r.status !== 303) return { status: r.status, code: /data-code="([a-z_]+)"/.exec(r.text)?.[1] ?? (/data-testid="forbidden"/.test(r.text) ? 'forbidden' : undefined) };
  const page = await c.get(r.location!);
  const token = /data-testid="issued-enrollment-token">([^<]+)</.exec(page.text)?.[1];
  assert.ok(token, 'the issued token is shown once');
  return { status: 303, token, page: page.text };
}

/** Redeems a token the way the technician's script does: a CSR of a fresh key, over HTTP. */
async function redeem(token: string, edgeId: string) {
  const csrPem = derToPem((await createDeviceCsr(edgeId)).csrDer, 'CERTIFICATE REQUEST');
  const res = await fetch(`${srv.url}/v1/enrollments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, edgeId, csrPem }) });
  return { status: res.status, body: (await res.json()) as { code?: string; certPem?: string } };
}

async function enrollForMuseum(edgeId: string) {
  const t = await issue(mus, 'museum', edgeId);
  assert.is(t.status, 303);
  const r = await redeem(t.token!, edgeId);
  assert.is(r.status, 201, JSON.stringify(r.body));
  return (await h.devices.get(edgeId))!;
}

/** The audit rows of a signed-in person's audit page, as text. */
async function auditRows(c: ReturnType<typeof client>): Promise<string[]> {
  const page = await c.get('/console/audit');
  assert.is(page.status, 200);
  return [...page.text.matchAll(/<tr data-audit-id="\d+">([\s\S]*?)<\/tr>/g)].map((m) => m[1].replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' '));
}

/** museum's device is untouched: enrolled in museum, the same certificate, not revoked or superseded. */
async function assertUntouched(edgeId: string, before: { cert_fingerprint: string; cert_serial: string }): Promise<void> {
  const d = (await h.devices.get(edgeId))!;
  assert.is(d.service_id, 'museum');
  assert.is(d.status, 'active');
  assert.is(d.cert_fingerprint, before.cert_fingerprint);
  assert.is(d.cert_serial, before.cert_serial);
  assert.not.ok(await h.devices.isCertRevoked(before.cert_fingerprint), 'the broker would still accept its certificate');
}

test('a token for an edge id enrolled in another service is refused at issue with edge_enrolled_elsewhere, and the owner sees the attempt', async () => {
  const museumGate = await enrollForMuseum('museum-gate-1');
  const attack = await issue(lib, 'library', 'museum-gate-1');
  assert.is(attack.status, 403);
  assert.is(attack.code, 'edge_enrolled_elsewhere');
  // Not even a platform operator takes a live edge over: it is revoked in its service first.
  assert.equal(await issue(ops, 'library', 'museum-gate-1'), { status: 403, code: 'edge_enrolled_elsewhere' });
  await assertUntouched('museum-gate-1', museumGate);
  assert.not.ok(
    (await h.tokens.list('library')).some((t) => t.edge_id === 'museum-gate-1'),
    'no token was issued',
  );

  const museumSees = await auditRows(mus);
  assert.ok(
    museumSees.some((r) => r.includes('lib-admin') && r.includes('enrollment.issue') && r.includes('edge_enrolled_elsewhere') && r.includes('museum-gate-1')),
    museumSees.join('\n'),
  );
  const librarySees = await auditRows(lib);
  assert.ok(librarySees.some((r) => r.includes('lib-admin') && r.includes('edge_enrolled_elsewhere')));
  // The library admin still sees nothing else of museum's.
  assert.not.ok(librarySees.some((r) => r.includes('mus-admin')));
});

test('a token issued before the other service enrolled the edge is refused at redemption, and the owner sees it', async () => {
  const early = await issue(lib, 'library', 'museum-gate-2');
  assert.is(early.status, 303);
  const museumGate = await enrollForMuseum('museum-gate-2');
  const attack = await redeem(early.token!, 'museum-gate-2');
  assert.is(attack.status, 403);
  assert.is(attack.body.code, 'edge_enrolled_elsewhere');
  assert.is(attack.body.certPem, undefined);
  await assertUntouched('museum-gate-2', museumGate);
  const museumSees = await auditRows(mus);
  assert.ok(
    museumSees.some((r) => r.includes('lib-admin') && r.includes('enrollment.redeem') && r.includes('edge_enrolled_elsewhere')),
    museumSees.join('\n'),
  );
});

test('device enrollment itself refuses to move a live edge, whoever calls it', async () => {
  const before = (await h.devices.get('museum-gate-2'))!;
  const csr = await createDeviceCsr('museum-gate-2');
  const r = await h.enrollment.enroll(csr.csrDer, { edgeId: 'museum-gate-2', serviceId: 'library', validityDays: 30 });
  assert.is(r.ok, false);
  assert.is(!r.ok && r.code, 'edge_enrolled_elsewhere');
  // And the recording transaction refuses on its own (a redemption racing another).
  assert.is(
    await h.devices.enroll({ edgeId: 'museum-gate-2', serviceId: 'library', certSerial: '01', certFingerprint: 'e'.repeat(64), notAfter: Date.now() + 86400_000 }, Date.now()),
    'edge_enrolled_elsewhere',
  );
  await assertUntouched('museum-gate-2', before);
});

test('moving a revoked edge of another service is refused with edge_service_move at issue and at redemption', async () => {
  await enrollForMuseum('museum-gate-3');
  const early = await issue(lib, 'library', 'museum-gate-3');
  assert.is(early.status, 403, 'live: refused at issue');
  // museum retires the device; the library admin tries to pick the edge id up.
  await mus.get('/console/edges/museum-gate-3');
  assert.is((await mus.post('/console/edges/museum-gate-3/revoke', { reason: 'worn out in a test' })).status, 303);
  assert.is((await h.devices.get('museum-gate-3'))!.status, 'revoked');
  assert.equal(await issue(lib, 'library', 'museum-gate-3'), { status: 403, code: 'edge_service_move' });
  // A token of library's issued while the edge was free, redeemed after museum's device was revoked.
  const t = await issue(lib, 'library', 'museum-gate-9');
  await enrollForMuseum('museum-gate-9');
  await mus.get('/console/edges/museum-gate-9');
  await mus.post('/console/edges/museum-gate-9/revoke', { reason: 'worn out in a test' });
  const r = await redeem(t.token!, 'museum-gate-9');
  assert.is(r.status, 403);
  assert.is(r.body.code, 'edge_service_move');
  assert.is((await h.devices.get('museum-gate-9'))!.service_id, 'museum');
  assert.is((await h.devices.get('museum-gate-9'))!.status, 'revoked');
  const museumSees = await auditRows(mus);
  assert.ok(museumSees.some((r) => r.includes('lib-admin') && r.includes('enrollment.issue') && r.includes('edge_service_move')));
  assert.ok(museumSees.some((r) => r.includes('lib-admin') && r.includes('enrollment.redeem') && r.includes('edge_service_move')));
});

test('re-activating a revoked device is refused with device_reenroll_revoked; only an operator may allow it', async () => {
  await enrollForMuseum('museum-gate-4');
  const pending = await issue(mus, 'museum', 'museum-gate-4');
  await mus.get('/console/edges/museum-gate-4');
  await mus.post('/console/edges/museum-gate-4/revoke', { reason: 'worn out in a test' });
  const revoked = (await h.devices.get('museum-gate-4'))!;
  // At issue, at redemption of a token issued before the revocation, and with a forged permission.
  assert.equal(await issue(mus, 'museum', 'museum-gate-4'), { status: 403, code: 'device_reenroll_revoked' });
  const r = await redeem(pending.token!, 'museum-gate-4');
  assert.is(r.status, 403);
  assert.is(r.body.code, 'device_reenroll_revoked');
  assert.equal(await issue(mus, 'museum', 'museum-gate-4', { allowRevoked: '1' }), { status: 403, code: 'reenroll_needs_operator' });
  assert.is((await h.devices.get('museum-gate-4'))!.status, 'revoked');
  assert.is((await h.devices.get('museum-gate-4'))!.cert_fingerprint, revoked.cert_fingerprint);
  // The platform operator allows it explicitly: the device comes back with a new certificate.
  const allowed = await issue(ops, 'museum', 'museum-gate-4', { allowRevoked: '1' });
  assert.is(allowed.status, 303);
  const back = await redeem(allowed.token!, 'museum-gate-4');
  assert.is(back.status, 201, JSON.stringify(back.body));
  const d = (await h.devices.get('museum-gate-4'))!;
  assert.is(d.status, 'active');
  assert.is(d.service_id, 'museum');
  assert.is.not(d.cert_fingerprint, revoked.cert_fingerprint);
  assert.ok(await h.devices.isCertRevoked(revoked.cert_fingerprint), 'the old certificate stays revoked');
  const museumSees = await auditRows(mus);
  assert.ok(museumSees.some((r) => r.includes('mus-admin') && r.includes('reenroll_needs_operator')));
  assert.ok(museumSees.some((r) => r.includes('ops') && r.includes('enrollment.issue')));
});

test('an operator-allowed token moves a revoked edge to another service, and both services see it', async () => {
  // museum-gate-3 was revoked by museum above.
  const moved = await issue(ops, 'library', 'museum-gate-3', { allowRevoked: '1' });
  assert.is(moved.status, 303);
  const r = await redeem(moved.token!, 'museum-gate-3');
  assert.is(r.status, 201);
  assert.is((await h.devices.get('museum-gate-3'))!.service_id, 'library');
  assert.is((await h.devices.get('museum-gate-3'))!.status, 'active');
  const museumSees = await auditRows(mus);
  assert.ok(
    museumSees.some((r) => r.includes('ops') && r.includes('enrollment.issue') && r.includes('library') && r.includes('museum')),
    museumSees.join('\n'),
  );
});

test.run();
