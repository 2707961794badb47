// A PIN proof is good for the one operation it was asked for, with those parameters, from that device.
// The attack: a proof collected for operation X (by a compromised edge, say) is presented to operation
// Y. Every cross-use pair goes through real sockets to a real hub (plain HTTP for the holder routes,
// mutual TLS with enrolled device certificates for the counter), with real card-like signatures made
// with the test CA's keys, and is refused with the mismatch's own code, changing nothing.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestCa, signLikeCard, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import type { ChallengeRequest, Proof } from '../../../shared/messages.ts';
import { issue, startTestHub, type TestHub } from '../../helpers/hub.ts';
import { deviceRequest, enrollEdge, type EdgeTls } from '../../helpers/enrolled-edge.ts';

type Device = EdgeTls;
interface Ctx {
  h: TestHub;
  ca: TestCa;
  holder: IssuedCert;
  renewed: IssuedCert;
  mykeyId: string;
  edges: Record<'lib1' | 'lib2' | 'pts1', Device>;
}
const test = suite<Ctx>('proof binding', {} as Ctx);

async function post(ctx: Ctx, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(new URL(path, ctx.h.hub.addresses.http), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function signed(cert: IssuedCert, challenge: string): Promise<Proof> {
  const sig = await signLikeCard(cert.keyPair.privateKey, new Uint8Array(Buffer.from(challenge, 'base64url')));
  return { challenge, certificate: Buffer.from(cert.certDer).toString('base64'), signature: Buffer.from(sig).toString('base64') };
}

/** How a proof is asked for: from the public API with a challenge request, or by an edge for a counter link. */
type Issue = { kind: 'public'; req: ChallengeRequest } | { kind: 'device'; edge: keyof Ctx['edges']; serviceUserId: string };

async function proofFor(ctx: Ctx, how: Issue, cert = ctx.holder): Promise<Proof> {
  const r =
    how.kind === 'public' ? await post(ctx, '/v1/challenges', how.req) : await deviceRequest(ctx.h.hub, ctx.edges[how.edge], 'POST', '/v1/device/challenges', { serviceUserId: how.serviceUserId });
  assert.is(r.status, 201, JSON.stringify(r.body));
  return signed(cert, r.body.challenge);
}

/** Where a proof is presented. */
type Use = { name: string; present: (ctx: Ctx, proof: Proof) => Promise<{ status: number; body: any }> };

const OTHER_ID = 'B7NQ4KXW';
const uses: Record<string, Use> = {
  register: { name: 'registration', present: (ctx, p) => post(ctx, '/v1/mykey-ids', { proof: p }) },
  status: { name: 'status', present: (ctx, p) => post(ctx, '/v1/holder/status', { proof: p }) },
  change_id: { name: `change of id to ${OTHER_ID}`, present: (ctx, p) => post(ctx, '/v1/holder/mykey-id', { proof: p, mykeyId: OTHER_ID }) },
  invalidate: { name: 'invalidation', present: (ctx, p) => post(ctx, '/v1/holder/invalidate', { proof: p }) },
  carry_previous: {
    name: 'carry-over (previous card)',
    present: async (ctx, p) => post(ctx, '/v1/holder/carry-over', { proof: await proofFor(ctx, { kind: 'public', req: { purpose: 'carry_over', role: 'new' } }, ctx.renewed), previous: { proof: p } }),
  },
  carry_new: {
    name: 'carry-over (new card)',
    present: async (ctx, p) => post(ctx, '/v1/holder/carry-over', { proof: p, previous: { proof: await proofFor(ctx, { kind: 'public', req: { purpose: 'carry_over', role: 'previous' } }) } }),
  },
  unlink: { name: 'unlink of library', present: (ctx, p) => post(ctx, '/v1/holder/unlink', { proof: p, serviceId: 'library' }) },
  counter_link: {
    name: 'counter link L-1 at lib-counter-1',
    present: (ctx, p) =>
      deviceRequest(ctx.h.hub, ctx.edges.lib1, 'POST', '/v1/device/links', { identity: { certificate: Buffer.from(ctx.holder.certDer).toString('base64') }, serviceUserId: 'L-1', proof: p }),
  },
};

/** What each use's own challenge is. */
const issues: Record<keyof typeof uses, Issue> = {
  register: { kind: 'public', req: { purpose: 'register' } },
  status: { kind: 'public', req: { purpose: 'status' } },
  change_id: { kind: 'public', req: { purpose: 'change_id', mykeyId: OTHER_ID } },
  invalidate: { kind: 'public', req: { purpose: 'invalidate' } },
  carry_previous: { kind: 'public', req: { purpose: 'carry_over', role: 'previous' } },
  carry_new: { kind: 'public', req: { purpose: 'carry_over', role: 'new' } },
  unlink: { kind: 'public', req: { purpose: 'unlink', serviceId: 'library' } },
  counter_link: { kind: 'device', edge: 'lib1', serviceUserId: 'L-1' },
};

const sameOperation = (x: string, y: string) => x.startsWith('carry_') && y.startsWith('carry_');

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.h = await startTestHub({ ca: ctx.ca });
  await ctx.h.hub.start();
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library' });
  await ctx.h.hub.links.createService({ id: 'points', name: 'Points' });
  ctx.edges = {
    lib1: await enrollEdge(ctx.h.hub, 'lib-counter-1', 'library'),
    lib2: await enrollEdge(ctx.h.hub, 'lib-counter-2', 'library'),
    pts1: await enrollEdge(ctx.h.hub, 'pts-counter-1', 'points'),
  };
  ctx.holder = await issue(ctx.ca);
  ctx.renewed = await issue(ctx.ca);
  const r = await post(ctx, '/v1/mykey-ids', { proof: await proofFor(ctx, issues.register) });
  assert.is(r.status, 201, JSON.stringify(r.body));
  ctx.mykeyId = r.body.mykeyId;
});
test.after(async (ctx) => ctx.h.close());

async function unchanged(ctx: Ctx) {
  const st = await post(ctx, '/v1/holder/status', { proof: await proofFor(ctx, issues.status) });
  assert.is(st.status, 200, JSON.stringify(st.body));
  assert.is(st.body.mykeyId, ctx.mykeyId);
  assert.is(st.body.status, 'active');
  assert.is(st.body.certificates.length, 1, 'no carry-over happened');
  assert.equal(st.body.links, [], 'nothing was linked');
}

test('every proof presented to every other operation is refused with its mismatch code, and nothing changes', async (ctx) => {
  const refused: string[] = [];
  for (const x of Object.keys(issues)) {
    for (const y of Object.keys(uses)) {
      if (x === y) continue;
      const proof = await proofFor(ctx, issues[x]);
      const r = await uses[y].present(ctx, proof);
      const code = sameOperation(x, y) ? 'challenge_parameters_mismatch' : 'challenge_operation_mismatch';
      assert.is(r.body?.code, code, `a proof for ${x} presented to ${uses[y].name}: ${JSON.stringify(r.body)}`);
      assert.is(r.status, 400);
      refused.push(`${x}->${y}`);
    }
  }
  assert.is(refused.length, 8 * 7);
  await unchanged(ctx);
});

test('a proof for the same operation with other parameters is refused as a parameters mismatch', async (ctx) => {
  const cases: { name: string; issue: Issue; use: (p: Proof) => Promise<{ status: number; body: any }> }[] = [
    { name: 'change of id to another MyKey ID', issue: { kind: 'public', req: { purpose: 'change_id', mykeyId: 'C8PR5MYZ' } }, use: (p) => uses.change_id.present(ctx, p) },
    { name: 'unlink of another service', issue: { kind: 'public', req: { purpose: 'unlink', serviceId: 'points' } }, use: (p) => uses.unlink.present(ctx, p) },
    { name: 'counter link of another service ID', issue: { kind: 'device', edge: 'lib1', serviceUserId: 'L-2' }, use: (p) => uses.counter_link.present(ctx, p) },
    { name: 'counter link asked by an edge of another service', issue: { kind: 'device', edge: 'pts1', serviceUserId: 'L-1' }, use: (p) => uses.counter_link.present(ctx, p) },
  ];
  for (const c of cases) {
    const r = await c.use(await proofFor(ctx, c.issue));
    assert.is(r.body?.code, 'challenge_parameters_mismatch', `${c.name}: ${JSON.stringify(r.body)}`);
    assert.is(r.status, 400);
  }
  await unchanged(ctx);
});

test('a counter-link proof asked for by one edge is refused when another edge of the same service presents it', async (ctx) => {
  const proof = await proofFor(ctx, { kind: 'device', edge: 'lib2', serviceUserId: 'L-1' });
  const r = await uses.counter_link.present(ctx, proof);
  assert.is(r.status, 403, JSON.stringify(r.body));
  assert.is(r.body.code, 'challenge_device_mismatch');
  await unchanged(ctx);
});

test('a proof cross-used once is spent: the rightful operation cannot use it afterwards', async (ctx) => {
  const proof = await proofFor(ctx, issues.status);
  assert.is((await uses.invalidate.present(ctx, proof)).body.code, 'challenge_operation_mismatch');
  assert.is((await uses.status.present(ctx, proof)).body.code, 'challenge_replayed');
});

test('the public challenge endpoint refuses counter links and parameters an operation does not take', async (ctx) => {
  const bad: [unknown, string][] = [
    [{ purpose: 'counter_link' }, 'validation_failed'],
    [{ purpose: 'holder' }, 'validation_failed'],
    [{ purpose: 'change_id' }, 'validation_failed'],
    [{ purpose: 'change_id', mykeyId: 'OOOOIIII' }, 'mykey_id_malformed'],
    [{ purpose: 'status', serviceId: 'library' }, 'validation_failed'],
    [{ purpose: 'carry_over' }, 'validation_failed'],
    [{ purpose: 'carry_over', role: 'both' }, 'validation_failed'],
    [{ purpose: 'unlink', mykeyId: OTHER_ID }, 'validation_failed'],
  ];
  for (const [body, code] of bad) {
    const r = await post(ctx, '/v1/challenges', body);
    assert.is(r.body?.code, code, JSON.stringify(body));
  }
  // Counter-link challenges come from the device API only: the public listener does not know the route,
  // and the device listener refuses a caller without a device certificate.
  assert.is((await post(ctx, '/v1/device/challenges', { serviceUserId: 'L-1' })).status, 404);
  const anon = await ctx.h.hub.deviceApp.request('/v1/device/challenges', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ serviceUserId: 'L-1' }) });
  assert.is(anon.status, 401);
});

test('each proof is accepted by its own operation: the counter link from the edge that asked, then the holder sees it', async (ctx) => {
  const link = await uses.counter_link.present(ctx, await proofFor(ctx, issues.counter_link));
  assert.is(link.status, 201, JSON.stringify(link.body));
  const wanted = await post(ctx, '/v1/holder/mykey-id', { proof: await proofFor(ctx, { kind: 'public', req: { purpose: 'change_id', mykeyId: 'c8pr-5myz' } }), mykeyId: 'C8PR5MYZ' });
  assert.is(wanted.status, 200, `the MyKey ID is normalised on both sides: ${JSON.stringify(wanted.body)}`);
  assert.is(wanted.body.mykeyId, 'C8PR5MYZ');
  assert.equal(
    wanted.body.links.map((l: { serviceUserId: string }) => l.serviceUserId),
    ['L-1'],
  );
  const un = await uses.unlink.present(ctx, await proofFor(ctx, issues.unlink));
  assert.is(un.status, 200, JSON.stringify(un.body));
  assert.equal(un.body.links, []);
});

test('the OpenAPI description names the bound challenges and their mismatch codes', async (ctx) => {
  const doc = (await (await fetch(new URL('/openapi.json', ctx.h.hub.addresses.http))).json()) as { paths: Record<string, any> };
  const device = (await (await ctx.h.hub.deviceApp.request('/openapi.json')).json()) as { paths: Record<string, any> };
  assert.ok(device.paths['/v1/device/challenges']?.post);
  const text = (p: string) => JSON.stringify((doc.paths[p] ?? device.paths[p]).post);
  for (const p of ['/v1/holder/status', '/v1/holder/mykey-id', '/v1/holder/invalidate', '/v1/holder/carry-over', '/v1/holder/unlink', '/v1/mykey-ids']) {
    assert.match(text(p), 'challenge_operation_mismatch', p);
    assert.match(text(p), 'challenge_parameters_mismatch', p);
  }
  assert.match(text('/v1/device/links'), 'challenge_device_mismatch');
  assert.match(text('/v1/challenges'), 'challenge_quota_exceeded');
  assert.match(JSON.stringify(doc), 'carry_over');
});

test.run();
