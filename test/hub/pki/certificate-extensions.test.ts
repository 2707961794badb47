// Certificates with empty or truncated extensions, properly signed by the test CA, sent to a real hub
// over HTTP for registration: each is refused with a stable 4xx code (an empty Extension used to
// crash the parser and answer 500).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestCa, signLikeCard, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { parseCertificate } from '../../../hub/pki/certificate.ts';
import { TAG, children, readTlv } from '../../../shared/asn1/der.ts';
import { encodeOid } from '../../../shared/asn1/oid.ts';
import { JPKI_AUTH_POLICY_OID } from '../../../shared/card.ts';
import { editExtensions, resign, tlv } from '../../helpers/der-edit.ts';
import { issue, startTestHub, type HubReply, type TestHub } from '../../helpers/hub.ts';

interface Ctx {
  ca: TestCa;
  cert: IssuedCert;
  h: TestHub;
  url: string;
}
type Reply = HubReply;

const test = suite<Ctx>('certificate extensions', {} as Ctx);

const oid = (...b: number[]) => tlv(TAG.OID, Uint8Array.from(b));
const SKI = oid(0x55, 0x1d, 0x0e); // 2.5.29.14
const KEY_USAGE = oid(0x55, 0x1d, 0x0f); // 2.5.29.15
const PRIVATE = oid(0x2a, 0x03, 0x04); // 1.2.3.4, unknown to the hub
const TRUE = tlv(TAG.BOOLEAN, Uint8Array.from([0xff]));
const EMPTY_OCTETS = tlv(TAG.OCTET_STRING);
const isKeyUsage = (e: Uint8Array) => Buffer.from(e).includes(Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x0f]));
const isPolicies = (e: Uint8Array) => Buffer.from(e).includes(Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x20]));
// The JPKI policy OID with its second subidentifier (392 = 83 08) padded to 80 83 08: a lenient
// decoder reads the same dotted OID, X.690 8.19.2 says it is no encoding at all.
const paddedPolicy = (() => {
  const v = encodeOid(JPKI_AUTH_POLICY_OID);
  return Uint8Array.from([v[0], 0x80, ...v.subarray(1)]);
})();
const PADDED_POLICIES = tlv(TAG.SEQUENCE, oid(0x55, 0x1d, 0x20), tlv(TAG.OCTET_STRING, tlv(TAG.SEQUENCE, tlv(TAG.SEQUENCE, tlv(TAG.OID, paddedPolicy)))));

const CASES: { name: string; edit: (exts: Uint8Array[]) => Uint8Array[]; wrap?: (seq: Uint8Array) => Uint8Array; status: number; code?: string }[] = [
  { name: 'an empty Extension SEQUENCE among the extensions', edit: (e) => [...e, tlv(TAG.SEQUENCE)], status: 400, code: 'cert_malformed' },
  { name: 'an Extension with only its extnID', edit: (e) => [...e, tlv(TAG.SEQUENCE, SKI)], status: 400, code: 'cert_malformed' },
  { name: 'subjectKeyIdentifier with an empty extnValue', edit: (e) => [...e, tlv(TAG.SEQUENCE, SKI, EMPTY_OCTETS)], status: 400, code: 'cert_malformed' },
  { name: 'keyUsage with an empty extnValue', edit: (e) => e.map((x) => (isKeyUsage(x) ? tlv(TAG.SEQUENCE, KEY_USAGE, TRUE, EMPTY_OCTETS) : x)), status: 400, code: 'cert_malformed' },
  { name: 'an empty critical flag', edit: (e) => [...e, tlv(TAG.SEQUENCE, PRIVATE, tlv(TAG.BOOLEAN), EMPTY_OCTETS)], status: 400, code: 'cert_malformed' },
  { name: 'an unknown critical extension with an empty extnValue', edit: (e) => [...e, tlv(TAG.SEQUENCE, PRIVATE, TRUE, EMPTY_OCTETS)], status: 422, code: 'cert_critical_extension' },
  { name: 'the JPKI policy OID spelt with a non-minimal arc', edit: (e) => e.map((x) => (isPolicies(x) ? PADDED_POLICIES : x)), status: 400, code: 'cert_malformed' },
  { name: 'an empty Extensions SEQUENCE (so no keyUsage)', edit: () => [], status: 422, code: 'cert_key_usage' },
  { name: 'an empty [3] extensions field', edit: (e) => e, wrap: () => new Uint8Array(0), status: 400, code: 'cert_malformed' },
  { name: 'an unknown non-critical extension with an empty extnValue (ignorable, RFC 5280 4.2)', edit: (e) => [...e, tlv(TAG.SEQUENCE, PRIVATE, EMPTY_OCTETS)], status: 201 },
];

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.cert = await issue(ctx.ca);
  ctx.h = await startTestHub({ ca: ctx.ca });
  ctx.url = (await ctx.h.hub.start()).url;
});
test.after(async (ctx) => {
  await ctx.h?.close();
});

async function post(url: string, body: unknown) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });
  return { status: res.status, body: (await res.json()) as Reply };
}

for (const c of CASES) {
  test(`registration with ${c.name} answers ${c.status}${c.code ? ` ${c.code}` : ''}`, async (ctx) => {
    const der = await resign(ctx.cert.certDer, ctx.ca.keyPair.privateKey, (tbs) => editExtensions(tbs, c.edit, c.wrap));
    const parsed = parseCertificate(der);
    if (c.code === 'cert_malformed') assert.is(parsed.ok, false);
    const ch = await post(`${ctx.url}/v1/challenges`, { purpose: 'register' });
    const sig = await signLikeCard(ctx.cert.keyPair.privateKey, new Uint8Array(Buffer.from(ch.body.challenge ?? '', 'base64url')));
    const r = await post(`${ctx.url}/v1/mykey-ids`, {
      proof: { challenge: ch.body.challenge, certificate: Buffer.from(der).toString('base64'), signature: Buffer.from(sig).toString('base64') },
    });
    assert.is(r.status, c.status, JSON.stringify(r.body));
    if (c.code) assert.is(r.body.code, c.code);
  });
}

test('a certificate whose outer signatureAlgorithm differs from the signed one only in its parameters is malformed', async (ctx) => {
  // RFC 5280 4.1.1.2: the same AlgorithmIdentifier; otherwise unsigned bytes could be altered.
  const der = ctx.cert.certDer;
  const [tbsT, algT, sigT] = children(der, readTlv(der, 0));
  const [oidT] = children(der, algT);
  const bytes = (t: { start: number; end: number }) => der.subarray(t.start, t.end);
  // The same OID with NULL parameters added outside the signed TBSCertificate.
  const altered = tlv(TAG.SEQUENCE, bytes(tbsT), tlv(TAG.SEQUENCE, bytes(oidT), tlv(TAG.NULL)), bytes(sigT));
  assert.ok(parseCertificate(der).ok);
  const r = parseCertificate(altered);
  assert.is(r.ok, false);
  if (!r.ok) assert.is(r.code, 'cert_malformed');
});

test.run();
