// The OCSP client's answer cache and request batching, against the test CA's responder on loopback:
// a verified answer is reused for the same certificate while it is fresh and never longer (nextUpdate,
// the maximum age, the cache lifetime, a clock set back), refused answers are never kept, a cached
// "good" never overrides a CRL "revoked", and checks that arrive together share one request while
// each gets its own certificate's answer.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestCa, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { ocspErrorResponse, startOcspResponder, type OcspForgery, type OcspResponder } from '../../../provisioning/test-ca/ocsp-responder.ts';
import { createOcspQuery } from '../../../hub/pki/ocsp-client.ts';
import { trustAnchorFromDer } from '../../../hub/pki/trust-anchors.ts';
import { checkUserCertificate, type CheckedCertificate } from '../../../hub/pki/user-cert.ts';
import { createRevocationChecker, type LoadedCrl } from '../../../hub/revocation/checker.ts';
import { issue } from '../../helpers/hub.ts';

interface Ctx {
  ca: TestCa;
  certs: IssuedCert[];
  revokedSerial: bigint;
  checked: CheckedCertificate[];
  asked: number;
  forge?: OcspForgery;
  hourly: OcspResponder;
  noNextUpdate: OcspResponder;
}
const test = suite<Ctx>('OCSP answer cache', {} as Ctx);
const MIN = 60_000;

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.certs = [await issue(ctx.ca), await issue(ctx.ca), await issue(ctx.ca), await issue(ctx.ca)];
  ctx.revokedSerial = ctx.certs[3].serial;
  const anchors = [trustAnchorFromDer(ctx.ca.certDer, 'ca')];
  ctx.checked = ctx.certs.map((c) => {
    const r = checkUserCertificate(c.certDer, anchors, { now: new Date() });
    if (!r.ok) throw new Error(r.message);
    return r.value;
  });
  ctx.asked = 0;
  const status = (serial: bigint) => {
    ctx.asked++;
    return serial === ctx.revokedSerial ? { revokedAt: new Date(Date.now() - MIN), reason: 'keyCompromise' as const } : undefined;
  };
  ctx.hourly = await startOcspResponder({ ca: ctx.ca, status, validitySeconds: 3600, forge: () => ctx.forge });
  ctx.noNextUpdate = await startOcspResponder({ ca: ctx.ca, status, validitySeconds: 0 });
});
test.after(async (ctx) => {
  await ctx.hourly?.close();
  await ctx.noNextUpdate?.close();
});
test.before.each((ctx) => {
  ctx.asked = 0;
  ctx.forge = undefined;
});

test('a verified answer is reused for the same certificate, and not for another', async (ctx) => {
  const q = createOcspQuery({ url: ctx.hourly.url, cacheMs: 10 * MIN });
  const now = new Date();
  for (let i = 0; i < 3; i++) assert.equal(await q(ctx.checked[0], now), { status: 'good', source: 'ocsp' });
  assert.is(ctx.asked, 1);
  assert.equal(await q(ctx.checked[1], now), { status: 'good', source: 'ocsp' });
  assert.is(ctx.asked, 2);
  assert.is(q.cache.size, 2);
});

test('without a cache lifetime every check asks the responder', async (ctx) => {
  const q = createOcspQuery({ url: ctx.hourly.url, cacheMs: 0 });
  const now = new Date();
  await q(ctx.checked[0], now);
  await q(ctx.checked[0], now);
  assert.is(ctx.asked, 2);
});

test('a cached answer never outlives its nextUpdate, whatever the cache lifetime', async (ctx) => {
  ctx.forge = { nextUpdate: new Date(Date.now() + 2 * MIN) };
  const q = createOcspQuery({ url: ctx.hourly.url, cacheMs: 24 * 60 * MIN });
  const now = Date.now();
  await q(ctx.checked[0], new Date(now));
  await q(ctx.checked[0], new Date(now + MIN));
  assert.is(ctx.asked, 1, 'reused before nextUpdate');
  ctx.forge = undefined;
  await q(ctx.checked[0], new Date(now + 2 * MIN + 1000));
  assert.is(ctx.asked, 2, 'asked again after nextUpdate');
});

test('an answer without nextUpdate is reused no longer than the maximum age from its thisUpdate', async (ctx) => {
  const q = createOcspQuery({ url: ctx.noNextUpdate.url, cacheMs: 24 * 60 * MIN, maxAgeMs: 5 * MIN });
  const now = Date.now();
  await q(ctx.checked[0], new Date(now));
  await q(ctx.checked[0], new Date(now + 4 * MIN));
  assert.is(ctx.asked, 1);
  await q(ctx.checked[0], new Date(now + 5 * MIN + 1000));
  assert.is(ctx.asked, 2);
});

test('the cache lifetime bounds reuse, and a clock set back does not reuse an answer', async (ctx) => {
  const q = createOcspQuery({ url: ctx.hourly.url, cacheMs: MIN });
  const now = Date.now();
  await q(ctx.checked[0], new Date(now));
  await q(ctx.checked[0], new Date(now + MIN + 1000));
  assert.is(ctx.asked, 2, 'asked again after the cache lifetime');
  await q(ctx.checked[0], new Date(now - 60 * MIN));
  assert.is(ctx.asked, 3, 'asked again when now is before the answer (less the skew)');
});

test('a refused answer is never kept: the next check asks again', async (ctx) => {
  const q = createOcspQuery({ url: ctx.hourly.url, cacheMs: 10 * MIN });
  ctx.forge = { certId: { issuerKeyHash: new Uint8Array(20) } };
  const v = await q(ctx.checked[0], new Date());
  assert.is(v.ocspCode, 'ocsp_certid_mismatch');
  ctx.forge = { status: 'unknown' };
  assert.is((await q(ctx.checked[0], new Date())).ocspCode, 'ocsp_cert_unknown');
  ctx.forge = undefined;
  assert.equal(await q(ctx.checked[0], new Date()), { status: 'good', source: 'ocsp' });
  assert.is(ctx.asked, 3);
  assert.is(q.cache.size, 1);
});

test('a cached OCSP "good" never overrides a CRL "revoked"', async (ctx) => {
  const q = createOcspQuery({ url: ctx.hourly.url, cacheMs: 10 * MIN });
  const c = ctx.checked[0];
  const now = new Date();
  const revokedAt = new Date(now.getTime() - MIN);
  let listed = false;
  const crl: LoadedCrl = {
    issuerKey: c.anchor.keyId,
    thisUpdate: new Date(now.getTime() - MIN),
    nextUpdate: new Date(now.getTime() + 60 * MIN),
    size: 1,
    lookup: (serialHex) => (listed && serialHex === c.cert.serialHex ? { revokedAt, reason: 'keyCompromise' } : undefined),
  };
  const checker = createRevocationChecker({ crls: new Map([[c.anchor.keyId, crl]]), ocsp: q });
  assert.equal(await checker.check(c, now), { status: 'good', source: 'ocsp' });
  assert.is(q.cache.size, 1, 'the good answer is cached');
  listed = true; // the next CRL lists it
  const v = await checker.check(c, now);
  assert.is(v.status, 'revoked');
  assert.is(v.source, 'crl');
  assert.is(v.reason, 'keyCompromise');
});

test('checks that arrive together share one request and one signed answer, each with its own verdict', async (ctx) => {
  let requests = 0;
  const counting: typeof fetch = (input, init) => {
    requests++;
    return fetch(input, init);
  };
  const q = createOcspQuery({ url: ctx.hourly.url, cacheMs: 0, fetchImpl: counting });
  const now = new Date();
  const verdicts = await Promise.all([q(ctx.checked[0], now), q(ctx.checked[1], now), q(ctx.checked[2], now), q(ctx.checked[3], now), q(ctx.checked[0], now)]);
  assert.is(requests, 1, 'one request for the lot');
  assert.is(ctx.asked, 4, 'four certificates asked about; the repeated one joined the first');
  for (const v of [verdicts[0], verdicts[1], verdicts[2], verdicts[4]]) assert.equal(v, { status: 'good', source: 'ocsp' });
  assert.is(verdicts[3].status, 'revoked');
  assert.is(verdicts[3].reason, 'keyCompromise');
  // batchMax bounds a request; one at a time when asked for.
  const single = createOcspQuery({ url: ctx.hourly.url, cacheMs: 0, fetchImpl: counting, batchMax: 1 });
  requests = 0;
  await Promise.all([single(ctx.checked[0], now), single(ctx.checked[1], now)]);
  assert.is(requests, 2);
});

test('a responder that takes one certificate per request (RFC 5019 2.1.1) is then asked one at a time', async (ctx) => {
  const SHA1_OID = Buffer.from('06052b0e03021a', 'hex');
  const certIdsIn = (body: Uint8Array) => {
    let n = 0;
    for (let at = Buffer.from(body).indexOf(SHA1_OID); at >= 0; at = Buffer.from(body).indexOf(SHA1_OID, at + 1)) n++;
    return n;
  };
  let requests = 0;
  let refusedSeveral = 0;
  const lightweight: typeof fetch = async (input, init) => {
    requests++;
    if (certIdsIn(init?.body as Uint8Array) > 1) {
      refusedSeveral++;
      return new Response(Buffer.from(ocspErrorResponse('malformedRequest')), { status: 200, headers: { 'content-type': 'application/ocsp-response' } });
    }
    return fetch(input, init);
  };
  const q = createOcspQuery({ url: ctx.hourly.url, cacheMs: 0, fetchImpl: lightweight });
  const now = new Date();
  const first = await Promise.all([q(ctx.checked[0], now), q(ctx.checked[1], now), q(ctx.checked[3], now)]);
  assert.equal(
    first.map((v) => v.status),
    ['good', 'good', 'revoked'],
  );
  assert.is(refusedSeveral, 1);
  assert.is(requests, 4, 'one refused batch, then each alone');
  requests = 0;
  const again = await Promise.all([q(ctx.checked[0], now), q(ctx.checked[1], now)]);
  assert.equal(
    again.map((v) => v.status),
    ['good', 'good'],
  );
  assert.is(requests, 2, 'no batch is tried again');
  assert.is(refusedSeveral, 1);
});

test('a forged answer to a batch is refused for every certificate in it', async (ctx) => {
  ctx.forge = { nonce: new Uint8Array(16).fill(7) };
  const q = createOcspQuery({ url: ctx.hourly.url, cacheMs: 10 * MIN });
  const now = new Date();
  const verdicts = await Promise.all([q(ctx.checked[0], now), q(ctx.checked[1], now)]);
  for (const v of verdicts) assert.is(v.ocspCode, 'ocsp_nonce_mismatch');
  assert.is(q.cache.size, 0);
});

test.run();
