// Linking that cannot steal, through a real hub: at the counter (mutual TLS with enrolled device
// certificates), someone touching their own card and typing another person's library number does not
// get it, even with their own PIN; a bare MyKey ID is never linked without the holder's proof; only the
// service itself, with its API credential, moves a service ID, and the move is audited.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestCa, signLikeCard, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import type { ChangeEntry } from '../../../shared/sync.ts';
import { issue, startTestHub, type TestHub } from '../../helpers/hub.ts';
import { deviceRequest, enrollEdge, type EdgeTls } from '../../helpers/enrolled-edge.ts';

type Device = EdgeTls;
interface Ctx {
  h: TestHub;
  ca: TestCa;
  lib: Device;
  open: Device;
}
const test = suite<Ctx>('links that cannot be stolen', {} as Ctx);
const ADMIN = 'admin-token-for-tests-0123456789';

async function http(ctx: Ctx, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(new URL(path, ctx.h.hub.addresses.http), {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function person(ctx: Ctx): Promise<{ cert: IssuedCert; mykeyId: string }> {
  const cert = await issue(ctx.ca);
  const r = await http(ctx, 'POST', '/v1/mykey-ids', { proof: await ctx.h.proof(cert) });
  assert.is(r.status, 201, JSON.stringify(r.body));
  return { cert, mykeyId: r.body.mykeyId };
}

const certOf = (c: IssuedCert) => Buffer.from(c.certDer).toString('base64');

/** The holder at the counter: the edge asks for a challenge for this service ID, the card signs it after the PIN. */
async function counterProof(ctx: Ctx, edge: Device, cert: IssuedCert, serviceUserId: string) {
  const ch = await deviceRequest(ctx.h.hub, edge, 'POST', '/v1/device/challenges', { serviceUserId });
  assert.is(ch.status, 201, JSON.stringify(ch.body));
  const sig = await signLikeCard(cert.keyPair.privateKey, new Uint8Array(Buffer.from(ch.body.challenge, 'base64url')));
  return { challenge: ch.body.challenge, certificate: certOf(cert), signature: Buffer.from(sig).toString('base64') };
}

const holderOf = async (ctx: Ctx, serviceId: string, serviceUserId: string) => (await ctx.h.hub.linkRepo.linkByUser(serviceId, serviceUserId))?.mykey_id;

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.h = await startTestHub({ ca: ctx.ca, overrides: { admin: { token: ADMIN } } });
  await ctx.h.hub.start();
  // Created through the operator API without saying anything: the holder proof is on by default.
  const lib = await http(ctx, 'POST', '/v1/admin/services', { id: 'library', name: 'Town library' }, ADMIN);
  assert.is(lib.status, 201, JSON.stringify(lib.body));
  assert.is(lib.body.requireHolderProof, true);
  // A service that chose possession only (a touch of the card, no PIN).
  const open = await http(ctx, 'POST', '/v1/admin/services', { id: 'points', name: 'Points', requireHolderProof: false }, ADMIN);
  assert.is(open.body.requireHolderProof, false);
  ctx.lib = await enrollEdge(ctx.h.hub, 'lib-counter-1', 'library');
  ctx.open = await enrollEdge(ctx.h.hub, 'pts-counter-1', 'points');
});
test.after(async (ctx) => ctx.h.close());

test("touching one's own card and typing the victim's library number is refused, even with one's own PIN", async (ctx) => {
  const victim = await person(ctx);
  const thief = await person(ctx);
  const own = await deviceRequest(ctx.h.hub, ctx.lib, 'POST', '/v1/device/links', {
    identity: { certificate: certOf(victim.cert) },
    serviceUserId: 'L-100',
    proof: await counterProof(ctx, ctx.lib, victim.cert, 'L-100'),
  });
  assert.is(own.status, 201, JSON.stringify(own.body));
  const steal = await deviceRequest(ctx.h.hub, ctx.lib, 'POST', '/v1/device/links', {
    identity: { certificate: certOf(thief.cert) },
    serviceUserId: 'L-100',
    proof: await counterProof(ctx, ctx.lib, thief.cert, 'L-100'),
  });
  assert.is(steal.status, 409, JSON.stringify(steal.body));
  assert.is(steal.body.code, 'service_user_id_taken');
  assert.is(await holderOf(ctx, 'library', 'L-100'), victim.mykeyId);
  // Without a PIN at a possession-only service, the same.
  assert.is((await deviceRequest(ctx.h.hub, ctx.open, 'POST', '/v1/device/links', { identity: { certificate: certOf(victim.cert) }, serviceUserId: 'P-100' })).status, 201);
  const steal2 = await deviceRequest(ctx.h.hub, ctx.open, 'POST', '/v1/device/links', { identity: { certificate: certOf(thief.cert) }, serviceUserId: 'P-100' });
  assert.is(steal2.body.code, 'service_user_id_taken');
  assert.is(await holderOf(ctx, 'points', 'P-100'), victim.mykeyId);
});

test('a bare MyKey ID is never linked through the device API without the holder proof', async (ctx) => {
  const victim = await person(ctx);
  for (const [edge, svc] of [
    [ctx.open, 'points'],
    [ctx.lib, 'library'],
  ] as const) {
    const r = await deviceRequest(ctx.h.hub, edge, 'POST', '/v1/device/links', { identity: { mykeyId: victim.mykeyId }, serviceUserId: 'X-1' });
    assert.is(r.status, 403, JSON.stringify(r.body));
    assert.is(r.body.code, 'holder_proof_required');
    assert.is(await holderOf(ctx, svc, 'X-1'), undefined);
  }
  // With the holder's proof it links.
  const ok = await deviceRequest(ctx.h.hub, ctx.open, 'POST', '/v1/device/links', {
    identity: { mykeyId: victim.mykeyId },
    serviceUserId: 'X-1',
    proof: await counterProof(ctx, ctx.open, victim.cert, 'X-1'),
  });
  assert.is(ok.status, 201, JSON.stringify(ok.body));
});

test('the holder proof at the counter is a per-service setting: off, a certificate touch links without PIN', async (ctx) => {
  const p = await person(ctx);
  const noPin = { identity: { certificate: certOf(p.cert) }, serviceUserId: 'L-200' };
  assert.is((await deviceRequest(ctx.h.hub, ctx.lib, 'POST', '/v1/device/links', noPin)).body.code, 'holder_proof_required');
  await ctx.h.hub.links.setRequireHolderProof('library', false);
  try {
    assert.is((await deviceRequest(ctx.h.hub, ctx.lib, 'POST', '/v1/device/links', noPin)).status, 201);
  } finally {
    await ctx.h.hub.links.setRequireHolderProof('library', true);
  }
  const view = await http(ctx, 'GET', '/v1/admin/services', undefined, ADMIN);
  assert.is(view.body.find((s: { id: string }) => s.id === 'library').requireHolderProof, true);
});

test("the service's own explicit move works, is audited, and tells the edges", async (ctx) => {
  const a = await person(ctx);
  const b = await person(ctx);
  const cred = await http(ctx, 'POST', '/v1/admin/services/points/credentials', { label: 'points system' }, ADMIN);
  const token = cred.body.token as string;
  assert.is((await http(ctx, 'POST', '/v1/services/points/links', { mykeyId: a.mykeyId, serviceUserId: 'P-300' }, token)).status, 201);
  const refused = await http(ctx, 'POST', '/v1/services/points/links', { mykeyId: b.mykeyId, serviceUserId: 'P-300' }, token);
  assert.is(refused.status, 409);
  assert.is(refused.body.code, 'service_user_id_taken');
  assert.is(await holderOf(ctx, 'points', 'P-300'), a.mykeyId);
  const moved = await http(ctx, 'POST', '/v1/services/points/links', { mykeyId: b.mykeyId, serviceUserId: 'P-300', move: true }, token);
  assert.is(moved.status, 201, JSON.stringify(moved.body));
  assert.is(moved.body.moved, true);
  assert.is(await holderOf(ctx, 'points', 'P-300'), b.mykeyId);
  // Audited: who (the credential), what, for which service; no MyKey ID or service ID in the audit row.
  const rows = (await ctx.h.hub.consoleRepo.auditLog({ serviceId: 'points' })).filter((r) => r.action === 'link.move');
  assert.is(rows.length, 1);
  assert.is(rows[0].actor, `api:${cred.body.id}`);
  assert.not.match(JSON.stringify(rows[0]), a.mykeyId);
  assert.not.match(JSON.stringify(rows[0]), 'P-300');
  // The edges are told: the first holder's entry is unlinked with the reason.
  const entries = (await ctx.h.hub.links.changesAfter('points', 0)) as ChangeEntry[];
  const unlink = entries.filter((e) => e.kind === 'unlink').at(-1)!;
  assert.is(unlink.reason, 'moved_by_service');
  // The move is for the service's API only: a counter cannot say move.
  const counter = await deviceRequest(ctx.h.hub, ctx.open, 'POST', '/v1/device/links', { identity: { certificate: certOf(a.cert) }, serviceUserId: 'P-300', move: true });
  assert.is(counter.body.code, 'validation_failed');
});

test.run();
