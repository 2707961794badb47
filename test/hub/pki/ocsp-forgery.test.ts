// Forged and bent OCSP answers, sent by a real OCSP responder on loopback to a real hub over HTTP,
// during a real registration with a certificate from the test CA, while the CRL is missing or
// stale. Each is refused with its own code (RFC 6960 4.1.1 CertID, 4.2.2.1 freshness, 4.2.2.2
// signer authorization), and an OCSP "good" never undoes a CRL "revoked".
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { randomBytes } from 'node:crypto';
import { OID, createTestCa, generateRsaKeyPair, issueOcspResponderCert, issueUserAuthCert, issueWithProfile, signLikeCard, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { writeCrl } from '../../../provisioning/test-ca/crl-writer.ts';
import { issuerHashesOf, startOcspResponder, type OcspForgery, type OcspResponder } from '../../../provisioning/test-ca/ocsp-responder.ts';
import type { CrlReason } from '../../../shared/revocation.ts';
import { children, readTlv, type Tlv } from '../../../shared/asn1/der.ts';
import { tlv } from '../../helpers/der-edit.ts';
import { startTestHub, type HubReply, type TestHub } from '../../helpers/hub.ts';

/**
 * An honest answer with its responseType OID (id-pkix-ocsp-basic, outside the signed bytes) spelt
 * with its second arc padded: 2b 06 ... becomes 2b 80 06 ... A decoder that lets a subidentifier
 * start with 0x80 reads the same OID; X.690 8.19.2 says it is not an encoding of any.
 */
function paddedResponseType(der: Uint8Array): Uint8Array {
  const bytes = (t: Tlv) => der.subarray(t.start, t.end);
  const [status, responseBytes] = children(der, readTlv(der, 0));
  const rb = readTlv(der, responseBytes.valueStart);
  const [typeT, responseT] = children(der, rb);
  const v = der.subarray(typeT.valueStart, typeT.end);
  const padded = Uint8Array.from([v[0], 0x80, ...v.subarray(1)]);
  return tlv(0x30, bytes(status), tlv(0xa0, tlv(0x30, tlv(0x06, padded), bytes(responseT))));
}

interface Hub {
  th: TestHub;
  url: string;
}

interface Ctx {
  ca: TestCa;
  /** Same DN as `ca`, another key: a CA the hub does not trust. */
  otherCa: TestCa;
  revoked: IssuedCert;
  holder: IssuedCert;
  good: IssuedCert;
  responders: Record<'delegated' | 'noEku' | 'otherCa' | 'expired' | 'caFlagged', IssuedCert>;
  /** What the responder's own lookup says (the truth). */
  truth: Map<bigint, { revokedAt: Date; reason: CrlReason }>;
  forge?: OcspForgery;
  ocsp: OcspResponder;
  /** No CRL ever loaded. */
  missing: Hub;
  /** An empty CRL whose nextUpdate has passed (crlGraceHours 0). */
  stale: Hub;
}

type Reply = HubReply;

const test = suite<Ctx>('OCSP forgeries through a real registration', {} as Ctx);
const HOUR = 3600_000;

function ext(extnID: string, critical: boolean, value: { toSchema(): asn1js.AsnType } | asn1js.AsnType): pkijs.Extension {
  const schema = 'toSchema' in value && typeof value.toSchema === 'function' ? value.toSchema() : (value as asn1js.AsnType);
  return new pkijs.Extension({ extnID, critical, extnValue: schema.toBER(false) });
}

async function hubFor(ctx: Ctx, extra: Record<string, unknown> = {}): Promise<Hub> {
  const th = await startTestHub({
    ca: ctx.ca,
    // No answer cache: every registration here must reach the (forging) responder.
    overrides: { jpki: { requireRevocationStatus: true, ocspUrl: ctx.ocsp.url, ocspCacheSeconds: 0, crlGraceHours: 0, ...extra }, broker: { port: 0 }, devices: { httpsPort: 0 } },
  });
  const { url } = await th.hub.start();
  return { th, url };
}

async function staleCrl(ctx: Ctx, entries: { serial: bigint; reason: CrlReason }[]): Promise<Uint8Array> {
  const t = Date.now();
  return writeCrl({
    issuerNameDer: ctx.ca.nameDer,
    signingKey: ctx.ca.keyPair.privateKey,
    thisUpdate: new Date(t - 3 * HOUR),
    nextUpdate: new Date(t - 2 * HOUR),
    crlNumber: BigInt(t),
    authorityKeyId: ctx.ca.subjectKeyId,
    entries: entries.map((e) => ({ serial: e.serial, reason: e.reason, revokedAt: new Date(t - 4 * HOUR) })),
  });
}

async function post(url: string, body: unknown): Promise<{ status: number; body: Reply }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });
  return { status: res.status, body: (await res.json()) as Reply };
}

/** A proof made the way a card makes it, over HTTP. */
async function proof(h: Hub, cert: IssuedCert, purpose: 'register' | 'status' = 'register') {
  const ch = await post(`${h.url}/v1/challenges`, { purpose });
  assert.is(ch.status, 201, JSON.stringify(ch.body));
  const sig = await signLikeCard(cert.keyPair.privateKey, new Uint8Array(Buffer.from(ch.body.challenge ?? '', 'base64url')));
  return { challenge: ch.body.challenge, certificate: Buffer.from(cert.certDer).toString('base64'), signature: Buffer.from(sig).toString('base64') };
}

async function register(h: Hub, cert: IssuedCert) {
  return post(`${h.url}/v1/mykey-ids`, { proof: await proof(h, cert) });
}

test.before(async (ctx) => {
  ctx.ca = await createTestCa({ label: 'jpki' });
  ctx.otherCa = await createTestCa({ label: 'impostor' });
  ctx.revoked = await issueUserAuthCert(ctx.ca);
  ctx.holder = await issueUserAuthCert(ctx.ca);
  ctx.good = await issueUserAuthCert(ctx.ca);
  const eku = ext(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID.ocspSigning] }));
  const bare = { keyUsage: ['digitalSignature' as const], policyOid: null, bare: true };
  ctx.responders = {
    delegated: await issueOcspResponderCert(ctx.ca),
    noEku: await issueWithProfile(ctx.ca, { cnPrefix: 'JPKI-OCSP-', ...bare }),
    otherCa: await issueOcspResponderCert(ctx.otherCa),
    expired: await issueOcspResponderCert(ctx.ca, { notBefore: new Date(Date.now() - 48 * HOUR), notAfter: new Date(Date.now() - 24 * HOUR) }),
    caFlagged: await issueWithProfile(ctx.ca, { cnPrefix: 'JPKI-OCSP-', ...bare, extra: [ext('2.5.29.19', true, new pkijs.BasicConstraints({ cA: true })), eku] }),
  };
  ctx.truth = new Map([[ctx.revoked.serial, { revokedAt: new Date(Date.now() - HOUR), reason: 'keyCompromise' }]]);
  ctx.ocsp = await startOcspResponder({ ca: ctx.ca, status: (s) => ctx.truth.get(s), forge: () => ctx.forge });
  ctx.missing = await hubFor(ctx);
  ctx.stale = await hubFor(ctx);
  await ctx.stale.th.hub.crlManager.apply(await staleCrl(ctx, []), 'stale');
});

test.after(async (ctx) => {
  await ctx.missing?.th.close();
  await ctx.stale?.th.close();
  await ctx.ocsp?.close();
});

test.before.each((ctx) => {
  ctx.forge = undefined;
});

test('an honest responder: a good certificate registers, the revoked one is refused with its reason', async (ctx) => {
  for (const h of [ctx.missing, ctx.stale]) {
    const ok = await register(h, ctx.good);
    assert.ok(ok.status === 201 || ok.status === 200, JSON.stringify(ok.body));
    const r = await register(h, ctx.revoked);
    assert.is(r.status, 422, JSON.stringify(r.body));
    assert.is(r.body.code, 'cert_revoked');
    assert.is(r.body.reason, 'keyCompromise');
  }
});

const sha1Random = () => new Uint8Array(randomBytes(20));

/** Each forged answer, what it changes, and the code it must get. All claim "good" for the revoked certificate. */
const FORGERIES: { name: string; forge: (ctx: Ctx) => OcspForgery; code: string }[] = [
  { name: 'a CertID with another hash algorithm (SHA-256)', forge: () => ({ status: 'good', certId: { hashAlgorithmOid: '2.16.840.1.101.3.4.2.1' } }), code: 'ocsp_certid_mismatch' },
  { name: 'a CertID with another issuerNameHash', forge: () => ({ status: 'good', certId: { issuerNameHash: sha1Random() } }), code: 'ocsp_certid_mismatch' },
  { name: 'a CertID with another issuerKeyHash', forge: () => ({ status: 'good', certId: { issuerKeyHash: sha1Random() } }), code: 'ocsp_certid_mismatch' },
  { name: "a CertID with another serial (a good certificate's)", forge: (ctx) => ({ status: 'good', certId: { serial: ctx.good.serial } }), code: 'ocsp_certid_mismatch' },
  {
    name: "a holder's certificate posing as the issuer, signed with its key",
    forge: (ctx) => ({ status: 'good', certId: issuerHashesOf(ctx.holder.certDer), signer: { key: ctx.holder.keyPair.privateKey, certDers: [ctx.holder.certDer] } }),
    code: 'ocsp_responder_unauthorized',
  },
  {
    name: "a holder's certificate shipped as responder for the real CertID",
    forge: (ctx) => ({ status: 'good', signer: { key: ctx.holder.keyPair.privateKey, certDers: [ctx.holder.certDer] } }),
    code: 'ocsp_responder_unauthorized',
  },
  {
    name: "signed by the revoked certificate's own key, its certificate shipped",
    forge: (ctx) => ({ status: 'good', signer: { key: ctx.revoked.keyPair.privateKey, certDers: [ctx.revoked.certDer] } }),
    code: 'ocsp_responder_unauthorized',
  },
  {
    name: "signed by the revoked certificate's own key, no certificate shipped",
    forge: (ctx) => ({ status: 'good', signer: { key: ctx.revoked.keyPair.privateKey, certDers: [] } }),
    code: 'ocsp_signature_invalid',
  },
  {
    name: 'a delegated responder without id-kp-OCSPSigning',
    forge: (ctx) => ({ status: 'good', signer: { key: ctx.responders.noEku.keyPair.privateKey, certDers: [ctx.responders.noEku.certDer] } }),
    code: 'ocsp_responder_unauthorized',
  },
  {
    name: 'a responder certificate from another CA with the same name',
    forge: (ctx) => ({ status: 'good', signer: { key: ctx.responders.otherCa.keyPair.privateKey, certDers: [ctx.responders.otherCa.certDer] } }),
    code: 'ocsp_responder_unauthorized',
  },
  {
    name: 'an expired delegated responder',
    forge: (ctx) => ({ status: 'good', signer: { key: ctx.responders.expired.keyPair.privateKey, certDers: [ctx.responders.expired.certDer] } }),
    code: 'ocsp_responder_unauthorized',
  },
  {
    name: 'a delegated responder that is a CA certificate',
    forge: (ctx) => ({ status: 'good', signer: { key: ctx.responders.caFlagged.keyPair.privateKey, certDers: [ctx.responders.caFlagged.certDer] } }),
    code: 'ocsp_responder_unauthorized',
  },
  {
    name: 'a genuine "good" whose unsigned responseType OID has a non-minimal arc',
    forge: () => ({ status: 'good', rewrite: paddedResponseType }),
    code: 'ocsp_malformed',
  },
  {
    name: 'the other CA itself signing, its certificate shipped',
    forge: (ctx) => ({ status: 'good', signer: { key: ctx.otherCa.keyPair.privateKey, certDers: [ctx.otherCa.certDer] } }),
    code: 'ocsp_responder_unauthorized',
  },
  { name: 'a CA-signed answer whose ResponderID names another key', forge: () => ({ status: 'good', responderKeyHash: sha1Random() }), code: 'ocsp_responder_unauthorized' },
  { name: 'an answer echoing another nonce', forge: () => ({ status: 'good', nonce: new Uint8Array(randomBytes(16)) }), code: 'ocsp_nonce_mismatch' },
  { name: 'an "unknown" certStatus', forge: () => ({ status: 'unknown' }), code: 'ocsp_cert_unknown' },
  { name: 'thisUpdate an hour in the future', forge: () => ({ status: 'good', thisUpdate: new Date(Date.now() + HOUR), producedAt: new Date() }), code: 'ocsp_not_yet_valid' },
  {
    name: 'an old answer without nextUpdate, replayed two hours later',
    forge: () => ({ status: 'good', thisUpdate: new Date(Date.now() - 2 * HOUR), producedAt: new Date(Date.now() - 2 * HOUR), nextUpdate: null }),
    code: 'ocsp_stale',
  },
  {
    name: 'an answer whose nextUpdate has passed',
    forge: () => ({ status: 'good', thisUpdate: new Date(Date.now() - 3 * HOUR), producedAt: new Date(Date.now() - 3 * HOUR), nextUpdate: new Date(Date.now() - 2 * HOUR) }),
    code: 'ocsp_stale',
  },
];

for (const f of FORGERIES) {
  test(`refuses ${f.name} (${f.code}), with the CRL missing and with it stale`, async (ctx) => {
    ctx.forge = f.forge(ctx);
    for (const [label, h] of [
      ['missing', ctx.missing],
      ['stale', ctx.stale],
    ] as const) {
      const r = await register(h, ctx.revoked);
      assert.is(r.status, 503, `${label}: ${JSON.stringify(r.body)}`);
      assert.is(r.body.code, 'cert_revocation_unknown', label);
      assert.is(r.body.ocsp, f.code, `${label}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.detail ?? '', f.code);
    }
  });
}

test('a delegated responder the CA issued with id-kp-OCSPSigning is accepted (good registers, revoked is refused)', async (ctx) => {
  const d = ctx.responders.delegated;
  ctx.forge = { signer: { key: d.keyPair.privateKey, certDers: [d.certDer] } };
  const holderOk = await register(ctx.missing, ctx.holder);
  assert.ok(holderOk.status === 201 || holderOk.status === 200, JSON.stringify(holderOk.body));
  const r = await register(ctx.missing, ctx.revoked);
  assert.is(r.status, 422, JSON.stringify(r.body));
  assert.is(r.body.code, 'cert_revoked');
  assert.is(r.body.reason, 'keyCompromise');
});

test('an answer without nextUpdate inside the maximum age is accepted', async (ctx) => {
  ctx.forge = { thisUpdate: new Date(Date.now() - 10 * 60_000), nextUpdate: null };
  const r = await register(ctx.stale, ctx.good);
  assert.ok(r.status === 201 || r.status === 200, JSON.stringify(r.body));
});

test('an OCSP "good" signed by the CA never overrides a CRL "revoked", with the reason as a field', async (ctx) => {
  const h = await hubFor(ctx);
  try {
    const superseded = await issueUserAuthCert(ctx.ca);
    await h.th.hub.crlManager.apply(
      await staleCrl(ctx, [
        { serial: ctx.revoked.serial, reason: 'keyCompromise' },
        { serial: superseded.serial, reason: 'superseded' },
      ]),
      'stale-with-entries',
    );
    ctx.forge = { status: 'good' }; // genuinely signed by the CA
    const r = await register(h, ctx.revoked);
    assert.is(r.status, 422, JSON.stringify(r.body));
    assert.is(r.body.code, 'cert_revoked');
    assert.is(r.body.reason, 'keyCompromise');
    const s = await register(h, superseded);
    assert.is(s.status, 422, JSON.stringify(s.body));
    assert.is(s.body.code, 'cert_revoked_superseded');
    assert.is(s.body.reason, 'superseded');
  } finally {
    await h.th.close();
  }
});

test('a holder proof with a certificate since revoked as superseded gets cert_revoked_superseded and the reason', async (ctx) => {
  const renewedAway = await issueUserAuthCert(ctx.ca, { keyPair: await generateRsaKeyPair() });
  const r = await register(ctx.missing, renewedAway);
  assert.ok(r.status === 201 || r.status === 200, JSON.stringify(r.body));
  ctx.truth.set(renewedAway.serial, { revokedAt: new Date(Date.now() - 60_000), reason: 'superseded' });
  const s = await post(`${ctx.missing.url}/v1/holder/status`, { proof: await proof(ctx.missing, renewedAway, 'status') });
  assert.is(s.status, 422, JSON.stringify(s.body));
  assert.is(s.body.code, 'cert_revoked_superseded');
  assert.is(s.body.reason, 'superseded');
});

test.run();
