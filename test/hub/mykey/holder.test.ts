import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestCa, generateRsaKeyPair, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { MYKEY_ALPHABET } from '../../../shared/ids.ts';
import { issue, startTestHub, type TestHub } from '../../helpers/hub.ts';

const test = suite<{ h: TestHub; ca: TestCa }>('holder', {} as never);

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.h = await startTestHub({ ca: ctx.ca });
});
test.after(async (ctx) => ctx.h.close());

async function call(h: TestHub, path: string, body: unknown) {
  const res = await h.request(path, body);
  return { status: res.status, body: (await res.json()) as any };
}

async function registered(h: TestHub, ca: TestCa, opts: Parameters<typeof issue>[1] = {}): Promise<{ cert: IssuedCert; mykeyId: string }> {
  const cert = await issue(ca, opts);
  const r = await call(h, '/v1/mykey-ids', { proof: await h.proof(cert) });
  assert.is(r.status, 201, JSON.stringify(r.body));
  return { cert, mykeyId: r.body.mykeyId };
}

test('the holder reads the status and certificate history with a fresh proof', async ({ h, ca }) => {
  const { cert, mykeyId } = await registered(h, ca);
  const r = await call(h, '/v1/holder/status', { proof: await h.proof(cert, 'status') });
  assert.is(r.status, 200, JSON.stringify(r.body));
  assert.is(r.body.mykeyId, mykeyId);
  assert.is(r.body.status, 'active');
  assert.is(r.body.certificates.length, 1);
  assert.is(r.body.certificates[0].serial, cert.serialHex.toLowerCase().replace(/^(00)+(?=.)/, ''));
  assert.is(r.body.certificates[0].state, 'current');
});

test('a holder proof needs a challenge for its own operation, not a registration one', async ({ h, ca }) => {
  const { cert } = await registered(h, ca);
  const r = await call(h, '/v1/holder/status', { proof: await h.proof(cert, 'register') });
  assert.is(r.status, 400);
  assert.is(r.body.code, 'challenge_operation_mismatch');
});

test('an unregistered certificate has no MyKey ID', async ({ h, ca }) => {
  const cert = await issue(ca);
  const r = await call(h, '/v1/holder/status', { proof: await h.proof(cert, 'status') });
  assert.is(r.status, 404);
  assert.is(r.body.code, 'mykey_id_not_found');
});

test('the holder chooses another free MyKey ID; the old one is never given again', async ({ h, ca }) => {
  const a = await registered(h, ca);
  const b = await registered(h, ca);
  let wanted = '';
  do wanted = Array.from({ length: 8 }, () => MYKEY_ALPHABET[Math.floor(Math.random() * MYKEY_ALPHABET.length)]).join('');
  while (wanted === a.mykeyId || wanted === b.mykeyId);
  const r = await call(h, '/v1/holder/mykey-id', {
    proof: await h.proof(a.cert, { purpose: 'change_id', mykeyId: `${wanted.slice(0, 4).toLowerCase()}-${wanted.slice(4)}` }),
    mykeyId: `${wanted.slice(0, 4).toLowerCase()}-${wanted.slice(4)}`,
  });
  assert.is(r.status, 200, JSON.stringify(r.body));
  assert.is(r.body.mykeyId, wanted);
  // Taken by someone else
  const taken = await call(h, '/v1/holder/mykey-id', { proof: await h.proof(a.cert, { purpose: 'change_id', mykeyId: b.mykeyId }), mykeyId: b.mykeyId });
  assert.is(taken.status, 409);
  assert.is(taken.body.code, 'mykey_id_taken');
  // The retired id cannot be chosen either
  const retired = await call(h, '/v1/holder/mykey-id', { proof: await h.proof(b.cert, { purpose: 'change_id', mykeyId: a.mykeyId }), mykeyId: a.mykeyId });
  assert.is(retired.status, 409);
  assert.is(retired.body.code, 'mykey_id_taken');
  // Malformed
  const bad = await call(h, '/v1/holder/mykey-id', { proof: await h.proof(b.cert, 'status'), mykeyId: 'OOOOIIII' });
  assert.is(bad.status, 400);
  assert.is(bad.body.code, 'mykey_id_malformed');
  // The same certificate registering again gets the new id
  const again = await call(h, '/v1/mykey-ids', { proof: await h.proof(a.cert) });
  assert.is(again.body.mykeyId, wanted);
});

test('the holder invalidates the MyKey ID; invalidating again is refused', async ({ h, ca }) => {
  const { cert, mykeyId } = await registered(h, ca);
  const r = await call(h, '/v1/holder/invalidate', { proof: await h.proof(cert, 'invalidate') });
  assert.is(r.status, 200, JSON.stringify(r.body));
  assert.is(r.body.mykeyId, mykeyId);
  assert.is(r.body.status, 'invalidated');
  const again = await call(h, '/v1/holder/invalidate', { proof: await h.proof(cert, 'invalidate') });
  assert.is(again.status, 404);
  assert.is(again.body.code, 'mykey_id_not_found');
  // Opt-in again later: a new MyKey ID, never the invalidated one.
  const fresh = await call(h, '/v1/mykey-ids', { proof: await h.proof(cert) });
  assert.is(fresh.status, 201);
  assert.is.not(fresh.body.mykeyId, mykeyId);
});

test('carries the MyKey ID over to a renewed certificate, keeping the history', async ({ h, ca }) => {
  const { cert: oldCert, mykeyId } = await registered(h, ca);
  const newCert = await issue(ca, { keyPair: await generateRsaKeyPair() });
  const r = await call(h, '/v1/holder/carry-over', {
    proof: await h.proof(newCert, { purpose: 'carry_over', role: 'new' }),
    previous: { proof: await h.proof(oldCert, { purpose: 'carry_over', role: 'previous' }) },
  });
  assert.is(r.status, 200, JSON.stringify(r.body));
  assert.is(r.body.mykeyId, mykeyId);
  assert.equal(
    r.body.certificates.map((c: any) => c.state),
    ['carried_over', 'current'],
  );
  // The new certificate now finds the MyKey ID; the old one is superseded.
  const viaNew = await call(h, '/v1/holder/status', { proof: await h.proof(newCert, 'status') });
  assert.is(viaNew.body.mykeyId, mykeyId);
  const viaOld = await call(h, '/v1/mykey-ids', { proof: await h.proof(oldCert) });
  assert.is(viaOld.status, 409);
  assert.is(viaOld.body.code, 'cert_superseded');
});

test('carry-over accepts an expired previous certificate but refuses one without a MyKey ID or the same certificate', async ({ ca }) => {
  let t = Date.now();
  const h = await startTestHub({ ca, now: () => new Date(t) });
  try {
    const { cert: oldCert, mykeyId } = await registered(h, ca, { notAfter: new Date(t + 3600_000) });
    t += 2 * 3600_000; // the old certificate has expired
    const newCert = await issue(ca, { keyPair: await generateRsaKeyPair() });
    const same = await call(h, '/v1/holder/carry-over', {
      proof: await h.proof(newCert, { purpose: 'carry_over', role: 'new' }),
      previous: { proof: await h.proof(newCert, { purpose: 'carry_over', role: 'previous' }) },
    });
    assert.is(same.status, 409);
    assert.is(same.body.code, 'carry_over_same_certificate');
    const r = await call(h, '/v1/holder/carry-over', {
      proof: await h.proof(newCert, { purpose: 'carry_over', role: 'new' }),
      previous: { proof: await h.proof(oldCert, { purpose: 'carry_over', role: 'previous' }) },
    });
    assert.is(r.status, 200, JSON.stringify(r.body));
    assert.is(r.body.mykeyId, mykeyId);
    // An expired certificate is no proof for anything else.
    const st = await call(h, '/v1/holder/status', { proof: await h.proof(oldCert, 'status') });
    assert.is(st.status, 422);
    assert.is(st.body.code, 'cert_expired');
  } finally {
    await h.close();
  }
});

test('carry-over refuses a new certificate that already has its own MyKey ID', async ({ h, ca }) => {
  const a = await registered(h, ca);
  const b = await registered(h, ca);
  const r = await call(h, '/v1/holder/carry-over', {
    proof: await h.proof(b.cert, { purpose: 'carry_over', role: 'new' }),
    previous: { proof: await h.proof(a.cert, { purpose: 'carry_over', role: 'previous' }) },
  });
  assert.is(r.status, 409);
  assert.is(r.body.code, 'carry_over_new_cert_bound');
});

test('a carry-over with another CA key (rollover) works', async ({ ca }) => {
  const next = await createTestCa({ keyPair: await generateRsaKeyPair() });
  const h = await startTestHub({ ca, extraCas: [next] });
  try {
    const { cert, mykeyId } = await registered(h, ca);
    const newCert = await issue(next, { keyPair: await generateRsaKeyPair() });
    const r = await call(h, '/v1/holder/carry-over', {
      proof: await h.proof(newCert, { purpose: 'carry_over', role: 'new' }),
      previous: { proof: await h.proof(cert, { purpose: 'carry_over', role: 'previous' }) },
    });
    assert.is(r.status, 200, JSON.stringify(r.body));
    assert.is(r.body.mykeyId, mykeyId);
  } finally {
    await h.close();
  }
});

test.run();
