// Fuzzing the parsers that read DER from outside: the certificate parser (certificate.ts, der.ts,
// user-cert.ts), the device CSR parser (device-ca.ts, as enrollment uses it) and the OCSP response
// parser (ocsp-message.ts), each with thousands of mutations of real DER from the test CA. A parser
// may refuse (DerError, a Result, an OcspRejected) but never throw anything else; and a sample of
// mutated certificates goes through the HTTP registration route, which always answers a 4xx with a
// stable code, and a sample of mutated OCSP answers reaches a real registration as an ocsp_* code.
// The seed is printed; rerun with FUZZ_SEED=<seed> to reproduce a failure.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, generateRsaKeyPair, signLikeCard, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { answerOcspRequest, ocspSigner, startOcspResponder } from '../../../provisioning/test-ca/ocsp-responder.ts';
import { parseCertificate, parseCertificateOrThrow } from '../../../hub/pki/certificate.ts';
import { DerError } from '../../../shared/asn1/der.ts';
import { createDeviceCsr, openDeviceCa, type DeviceCa } from '../../../hub/pki/device-ca.ts';
import { certIdFor, encodeOcspRequest, parseOcspResponseOrThrow } from '../../../hub/pki/ocsp-message.ts';
import { OcspRejected, evaluateOcspResponse } from '../../../hub/pki/ocsp-verify.ts';
import { checkUserCertificate } from '../../../hub/pki/user-cert.ts';
import { trustAnchorFromDer, type TrustAnchor } from '../../../hub/pki/trust-anchors.ts';
import { isErrorCode } from '../../../shared/errors.ts';
import { mutate, prng, walk } from '../../helpers/der-edit.ts';
import { issue, startTestHub } from '../../helpers/hub.ts';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0;
console.log(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} reproduces)`);

interface Ctx {
  ca: TestCa;
  anchor: TrustAnchor;
  cert: IssuedCert;
  dir: string;
  deviceCa: DeviceCa;
}
const test = suite<Ctx>('DER fuzzing', {} as Ctx);

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.anchor = trustAnchorFromDer(ctx.ca.certDer, 'fuzz');
  ctx.cert = await issue(ctx.ca);
  ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-fuzz-'));
  ctx.deviceCa = await openDeviceCa(join(ctx.dir, 'device-ca'));
});
test.after((ctx) => rmSync(ctx.dir, { recursive: true, force: true }));

/** Runs `n` mutations of `der` through `f`; a failure names the seed, the iteration and the mutation. */
async function fuzz(label: string, der: Uint8Array, n: number, seed: number, f: (bytes: Uint8Array) => unknown | Promise<unknown>): Promise<void> {
  const r = prng(seed);
  const tlvs = walk(der);
  for (let i = 0; i < n; i++) {
    const m = mutate(der, tlvs, r);
    try {
      await f(m.bytes);
    } catch (e) {
      assert.unreachable(`${label}: seed ${seed}, iteration ${i} (${m.kind}), input ${Buffer.from(m.bytes).toString('base64')}: ${(e as Error)?.stack ?? e}`);
    }
  }
}

test('the certificate parser only ever refuses with DerError, over mutated user and CA certificates', async (ctx) => {
  for (const [label, der, seed] of [
    ['user certificate', ctx.cert.certDer, SEED],
    ['CA certificate', ctx.ca.certDer, SEED + 1],
  ] as const) {
    await fuzz(label, der, 15_000, seed, (bytes) => {
      try {
        parseCertificateOrThrow(bytes);
      } catch (e) {
        if (!(e instanceof DerError)) throw e;
      }
      const res = parseCertificate(bytes);
      if (!res.ok) assert.is(res.code, 'cert_malformed');
    });
  }
});

test('the user-certificate check returns a result for every mutated certificate, never a throw', async (ctx) => {
  const now = new Date();
  await fuzz('checkUserCertificate', ctx.cert.certDer, 5_000, SEED + 2, (bytes) => {
    const res = checkUserCertificate(bytes, [ctx.anchor], { now });
    // Only the untouched certificate (a mutation that changed nothing) may pass.
    if (res.ok) assert.ok(Buffer.from(bytes).equals(Buffer.from(ctx.cert.certDer)), 'a mutated certificate passed the checks');
    else assert.ok(isErrorCode(res.code));
  });
});

test('the device CSR parser (as enrollment uses it) answers csr_invalid or issues, never throws', async (ctx) => {
  const ec = (await createDeviceCsr('edge-fuzz-1')).csrDer;
  const rsa = (await createDeviceCsr('edge-fuzz-1', { keyPair: await generateRsaKeyPair() })).csrDer;
  const req = { edgeId: 'edge-fuzz-1', serviceId: 'library', validityDays: 30 };
  for (const [label, der, seed] of [
    ['ECDSA CSR', ec, SEED + 3],
    ['RSA CSR', rsa, SEED + 7],
  ] as const) {
    assert.ok((await ctx.deviceCa.issueDeviceCertificate(der, req)).ok, `${label}: the untouched CSR is accepted`);
    await fuzz(label, der, 2_500, seed, async (bytes) => {
      const res = await ctx.deviceCa.issueDeviceCertificate(bytes, req);
      if (!res.ok) assert.is(res.code, 'csr_invalid');
    });
  }
});

test('the OCSP response parser and evaluation refuse mutated answers with an ocsp_* code, never another throw', async (ctx) => {
  const asked = certIdFor(parseCertificateOrThrow(ctx.cert.certDer), ctx.anchor.cert);
  const nonce = new Uint8Array(16).fill(7);
  const now = new Date();
  for (const [label, mode, seed] of [
    ['CA-signed answer', 'ca', SEED + 4],
    ['delegated answer', 'delegated', SEED + 5],
  ] as const) {
    const signer = await ocspSigner(ctx.ca, mode);
    const der = await answerOcspRequest(encodeOcspRequest(asked, nonce), { ca: ctx.ca, status: () => undefined, signer, now });
    // The untouched answer is good: the mutations start from an answer the hub accepts.
    assert.equal(evaluateOcspResponse(der, { asked, nonce, issuer: ctx.anchor, now, skewMs: 60_000, maxAgeMs: 3600_000 }), { kind: 'good' });
    await fuzz(`${label} (parse)`, der, 15_000, seed, (bytes) => {
      try {
        parseOcspResponseOrThrow(bytes);
      } catch (e) {
        if (!(e instanceof DerError)) throw e;
      }
    });
    await fuzz(`${label} (evaluate)`, der, 3_000, seed + 100, (bytes) => {
      try {
        evaluateOcspResponse(bytes, { asked, nonce, issuer: ctx.anchor, now, skewMs: 60_000, maxAgeMs: 3600_000 });
      } catch (e) {
        if (!(e instanceof OcspRejected)) throw e;
        assert.ok(isErrorCode(e.code) && e.code.startsWith('ocsp_'));
      }
    });
  }
});

test('mutated certificates sent to the HTTP registration route always get a 4xx with a stable code', async (ctx) => {
  const h = await startTestHub({ ca: ctx.ca });
  try {
    const { url } = await h.hub.start();
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });
      return { status: res.status, body: (await res.json()) as { code?: string; challenge?: string } };
    };
    const r = prng(SEED + 6);
    const tlvs = walk(ctx.cert.certDer);
    const seen = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const m = mutate(ctx.cert.certDer, tlvs, r);
      if (Buffer.from(m.bytes).equals(Buffer.from(ctx.cert.certDer))) continue;
      const ch = await post('/v1/challenges', { purpose: 'register' });
      const sig = await signLikeCard(ctx.cert.keyPair.privateKey, new Uint8Array(Buffer.from(ch.body.challenge!, 'base64url')));
      const res = await post('/v1/mykey-ids', { proof: { challenge: ch.body.challenge, certificate: Buffer.from(m.bytes).toString('base64'), signature: Buffer.from(sig).toString('base64') } });
      const where = `seed ${SEED + 6}, iteration ${i} (${m.kind}): ${res.status} ${JSON.stringify(res.body)}`;
      assert.ok(res.status >= 400 && res.status < 500, where);
      assert.ok(isErrorCode(res.body.code), where);
      seen.set(res.body.code!, (seen.get(res.body.code!) ?? 0) + 1);
    }
    console.log('registration codes for mutated certificates:', Object.fromEntries(seen));
  } finally {
    await h.close();
  }
});

test('mutated OCSP answers during HTTP registrations never make a 500: the refusal names the ocsp_* code', async (ctx) => {
  const r = prng(SEED + 8);
  let last: { orig: Uint8Array; mutated: Uint8Array } | undefined;
  const rewrite = (orig: Uint8Array) => {
    last = { orig, mutated: mutate(orig, walk(orig), r).bytes };
    return last.mutated;
  };
  const ocsp = await startOcspResponder({ ca: ctx.ca, status: () => undefined, forge: { rewrite } });
  const h = await startTestHub({ ca: ctx.ca, overrides: { jpki: { requireRevocationStatus: true, ocspUrl: ocsp.url }, broker: { port: 0 }, devices: { httpsPort: 0 } } });
  try {
    const { url } = await h.hub.start();
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });
      return { status: res.status, body: (await res.json()) as { code?: string; ocsp?: string; challenge?: string } };
    };
    const seen = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const ch = await post('/v1/challenges', { purpose: 'register' });
      const sig = await signLikeCard(ctx.cert.keyPair.privateKey, new Uint8Array(Buffer.from(ch.body.challenge ?? '', 'base64url')));
      const res = await post('/v1/mykey-ids', {
        proof: { challenge: ch.body.challenge, certificate: Buffer.from(ctx.cert.certDer).toString('base64'), signature: Buffer.from(sig).toString('base64') },
      });
      const where = `seed ${SEED + 8}, registration ${i}: ${res.status} ${JSON.stringify(res.body)}`;
      if (res.status === 200 || res.status === 201) {
        // Only a mutation outside the signed bytes (the certificates shipped along) leaves a valid answer.
        const a = parseOcspResponseOrThrow(last!.mutated).basic!;
        const b = parseOcspResponseOrThrow(last!.orig).basic!;
        assert.ok(Buffer.from(a.tbs).equals(Buffer.from(b.tbs)) && Buffer.from(a.signature).equals(Buffer.from(b.signature)), where);
        continue;
      }
      assert.is(res.status, 503, where);
      assert.is(res.body.code, 'cert_revocation_unknown', where);
      assert.ok(isErrorCode(res.body.ocsp) && res.body.ocsp.startsWith('ocsp_'), where);
      seen.set(res.body.ocsp!, (seen.get(res.body.ocsp!) ?? 0) + 1);
    }
    console.log('OCSP codes for mutated answers:', Object.fromEntries(seen));
  } finally {
    await h.close();
    await ocsp.close();
  }
});

test.run();
