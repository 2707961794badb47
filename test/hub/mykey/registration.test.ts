import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestCa, generateRsaKeyPair, issueSigningCert, signLikeCard, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { isMyKeyId } from '../../../shared/ids.ts';
import { issue, sharedKeyPair, startTestHub, type TestHub } from '../../helpers/hub.ts';

const test = suite<{ h: TestHub; ca: TestCa; otherCa: TestCa }>('registration', {} as never);

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.otherCa = await createTestCa({ ouSuffix: ' other' });
  ctx.h = await startTestHub({ ca: ctx.ca });
});
test.after(async (ctx) => ctx.h.close());

async function register(h: TestHub, body: unknown, init?: RequestInit) {
  const res = await h.request('/v1/mykey-ids', body, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

async function mykeyCount(h: TestHub) {
  return (await h.hub.store.sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM mykey_ids'))!.n;
}

test('registers a MyKey ID for a valid certificate and signature', async ({ h, ca }) => {
  const cert = await issue(ca);
  const r = await register(h, { proof: await h.proof(cert) });
  assert.is(r.status, 201, JSON.stringify(r.body));
  assert.ok(isMyKeyId(r.body.mykeyId));
  assert.is(r.body.status, 'active');
  assert.is(r.body.created, true);
});

test('gives the same certificate the same MyKey ID, never a second one', async ({ h, ca }) => {
  const cert = await issue(ca);
  const first = await register(h, { proof: await h.proof(cert) });
  const second = await register(h, { proof: await h.proof(cert) });
  assert.is(first.status, 201);
  assert.is(second.status, 200);
  assert.is(second.body.mykeyId, first.body.mykeyId);
  assert.is(second.body.created, false);
  // Concurrent registrations of one certificate still make one MyKey ID.
  const cert2 = await issue(ca);
  const proofs = await Promise.all([1, 2, 3, 4].map(() => h.proof(cert2)));
  const rs = await Promise.all(proofs.map((p) => register(h, { proof: p })));
  assert.is(new Set(rs.map((r) => r.body.mykeyId)).size, 1);
  assert.is(rs.filter((r) => r.status === 201).length, 1);
});

// Each bad input gets its own 4xx code and changes nothing.
const badCases: { name: string; status: number; code: string; make: (ctx: { h: TestHub; ca: TestCa; otherCa: TestCa }) => Promise<{ body: unknown; init?: RequestInit }> }[] = [
  {
    name: 'malformed DER',
    status: 400,
    code: 'cert_malformed',
    make: async ({ h, ca }) => {
      const p = await h.proof(await issue(ca));
      return { body: { proof: { ...p, certificate: Buffer.from('30820100deadbeef', 'hex').toString('base64') } } };
    },
  },
  {
    name: 'a certificate of an unknown issuer',
    status: 422,
    code: 'cert_unknown_issuer',
    make: async ({ h, otherCa }) => ({ body: { proof: await h.proof(await issue(otherCa)) } }),
  },
  {
    name: 'a broken chain (issuer name right, key wrong)',
    status: 422,
    code: 'cert_chain_broken',
    make: async ({ h, ca }) => {
      const impostor = await createTestCa({ keyPair: await generateRsaKeyPair() }); // same DN as ca, other key
      void ca;
      return { body: { proof: await h.proof(await issue(impostor)) } };
    },
  },
  {
    name: 'an expired certificate',
    status: 422,
    code: 'cert_expired',
    make: async ({ h, ca }) => ({
      body: { proof: await h.proof(await issue(ca, { notBefore: new Date(Date.now() - 10 * 86400_000), notAfter: new Date(Date.now() - 86400_000) })) },
    }),
  },
  {
    name: 'a certificate not yet valid',
    status: 422,
    code: 'cert_not_yet_valid',
    make: async ({ h, ca }) => ({
      body: { proof: await h.proof(await issue(ca, { notBefore: new Date(Date.now() + 86400_000), notAfter: new Date(Date.now() + 10 * 86400_000) })) },
    }),
  },
  {
    name: 'the wrong key usage',
    status: 422,
    code: 'cert_key_usage',
    make: async ({ h, ca }) => ({ body: { proof: await h.proof(await issue(ca, { keyUsage: ['digitalSignature', 'keyEncipherment'] })) } }),
  },
  {
    name: 'no JPKI user-authentication policy',
    status: 422,
    code: 'cert_policy',
    make: async ({ h, ca }) => ({ body: { proof: await h.proof(await issue(ca, { policyOid: null })) } }),
  },
  {
    name: 'the signing certificate instead of the user-authentication one',
    status: 422,
    code: 'cert_key_usage',
    make: async ({ h, ca }) => ({ body: { proof: await h.proof(await issueSigningCert(ca, { keyPair: await sharedKeyPair() })) } }),
  },
  {
    name: 'an RSA-1024 key',
    status: 422,
    code: 'cert_key_type',
    make: async ({ h, ca }) => ({ body: { proof: await h.proof(await issue(ca, { keyPair: await generateRsaKeyPair(1024) })) } }),
  },
  {
    name: 'a signature over another challenge',
    status: 422,
    code: 'signature_invalid',
    make: async ({ h, ca }) => {
      const cert = await issue(ca);
      const p = await h.proof(cert);
      const other = await signLikeCard(cert.keyPair.privateKey, new Uint8Array(32));
      return { body: { proof: { ...p, signature: Buffer.from(other).toString('base64') } } };
    },
  },
  {
    name: 'a truncated signature',
    status: 400,
    code: 'signature_malformed',
    make: async ({ h, ca }) => {
      const p = await h.proof(await issue(ca));
      return { body: { proof: { ...p, signature: Buffer.alloc(64, 1).toString('base64') } } };
    },
  },
  {
    name: 'a challenge this hub never issued',
    status: 400,
    code: 'challenge_unknown',
    make: async ({ h, ca }) => {
      const p = await h.proof(await issue(ca));
      return { body: { proof: { ...p, challenge: Buffer.alloc(32, 7).toString('base64url') } } };
    },
  },
  {
    name: 'a challenge issued for another operation',
    status: 400,
    code: 'challenge_operation_mismatch',
    make: async ({ h, ca }) => ({ body: { proof: await h.proof(await issue(ca), 'status') } }),
  },
  {
    name: 'an oversized body',
    status: 413,
    code: 'payload_too_large',
    make: async () => ({ body: JSON.stringify({ proof: { challenge: 'x'.repeat(100_000) } }) }),
  },
  {
    name: 'the wrong content type',
    status: 415,
    code: 'unsupported_media_type',
    make: async ({ h, ca }) => ({ body: JSON.stringify({ proof: await h.proof(await issue(ca)) }), init: { headers: { 'content-type': 'text/plain' } } }),
  },
  {
    name: 'JSON that is not JSON',
    status: 400,
    code: 'bad_request',
    make: async () => ({ body: '{"proof": ' }),
  },
  {
    name: 'a body that does not match the schema',
    status: 400,
    code: 'validation_failed',
    make: async () => ({ body: { proof: { challenge: 'abc' }, extra: 1 } }),
  },
];

for (const c of badCases) {
  test(`refuses ${c.name} with ${c.status} ${c.code} and changes nothing`, async (ctx) => {
    const before = await mykeyCount(ctx.h);
    const { body, init } = await c.make(ctx);
    const r = await register(ctx.h, body, init);
    assert.is(r.status, c.status, JSON.stringify(r.body));
    assert.is(r.body.code, c.code, JSON.stringify(r.body));
    assert.ok(r.headers.get('content-type')?.startsWith('application/problem+json'));
    assert.is(await mykeyCount(ctx.h), before);
  });
}

test('refuses a replayed challenge', async ({ h, ca }) => {
  const cert = await issue(ca);
  const p = await h.proof(cert);
  assert.is((await register(h, { proof: p })).status, 201);
  const again = await register(h, { proof: p });
  assert.is(again.status, 400);
  assert.is(again.body.code, 'challenge_replayed');
});

test('refuses an expired challenge', async ({ ca }) => {
  let t = Date.now();
  const h = await startTestHub({ ca, now: () => new Date(t) });
  try {
    const p = await h.proof(await issue(ca));
    t += 10 * 60_000;
    const r = await register(h, { proof: p });
    assert.is(r.status, 400);
    assert.is(r.body.code, 'challenge_expired');
  } finally {
    await h.close();
  }
});

test('accepts certificates of any of several live trust anchors (CA key rollover)', async ({ ca }) => {
  const next = await createTestCa({ keyPair: await generateRsaKeyPair() }); // same DN, new key
  const h = await startTestHub({ ca, extraCas: [next] });
  try {
    const a = await register(h, { proof: await h.proof(await issue(ca)) });
    const b = await register(h, { proof: await h.proof(await issue(next)) });
    assert.is(a.status, 201);
    assert.is(b.status, 201, JSON.stringify(b.body));
  } finally {
    await h.close();
  }
});

test('rate-limits challenges', async ({ ca }) => {
  const h = await startTestHub({ ca, overrides: { rateLimits: { challenge: { perSecond: 1, burst: 3 } } } });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await h.request('/v1/challenges', { purpose: 'register' })).status);
    assert.equal(statuses, [201, 201, 201, 429, 429]);
    const r = await h.request('/v1/challenges', { purpose: 'register' });
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.is(((await r.json()) as { code: string }).code, 'rate_limited');
  } finally {
    await h.close();
  }
});

test('describes the API as OpenAPI with the error codes', async ({ h }) => {
  const r = await h.request('/openapi.json');
  assert.is(r.status, 200);
  const doc = (await r.json()) as { openapi: string; paths: Record<string, any> };
  assert.is(doc.openapi, '3.1.0');
  for (const p of ['/v1/challenges', '/v1/mykey-ids', '/v1/holder/status', '/v1/holder/mykey-id', '/v1/holder/invalidate', '/v1/holder/carry-over']) {
    assert.ok(doc.paths[p]?.post, p);
  }
  assert.match(JSON.stringify(doc.paths['/v1/mykey-ids'].post.responses['422']), 'cert_revoked');
});

test('answers unknown routes with problem JSON', async ({ h }) => {
  const r = await h.request('/v1/nothing');
  assert.is(r.status, 404);
  assert.is(((await r.json()) as { code: string }).code, 'not_found');
});

test.run();
