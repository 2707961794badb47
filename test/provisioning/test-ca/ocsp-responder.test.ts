import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { CrlReason } from '../../../shared/revocation.ts';
import { OID, createTestCa, generateRsaKeyPair, issueUserAuthCert, toPem, type CryptoKeyPair, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { OCSP_RESPONSE_STATUS, startOcspResponder, type OcspResponder } from '../../../provisioning/test-ca/ocsp-responder.ts';

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'test-ca-ocsp-'));
let kp: CryptoKeyPair;
let ca: TestCa;
let good: IssuedCert;
let revoked: IssuedCert;
let unknown: IssuedCert;
let otherCa: TestCa;
let foreign: IssuedCert;
const revokedAt = new Date('2026-02-03T04:05:06Z');
const responders: OcspResponder[] = [];

const status = (serial: bigint): { revokedAt: Date; reason: CrlReason } | undefined | 'unknown' => {
  if (serial === revoked.serial) return { revokedAt, reason: 'keyCompromise' };
  if (serial === unknown.serial) return 'unknown';
  return undefined;
};

test.before(async () => {
  kp = await generateRsaKeyPair();
  ca = await createTestCa({ keyPair: kp });
  good = await issueUserAuthCert(ca, { keyPair: kp });
  revoked = await issueUserAuthCert(ca, { keyPair: kp });
  unknown = await issueUserAuthCert(ca, { keyPair: kp });
  otherCa = await createTestCa({ ouSuffix: ' other' });
  foreign = await issueUserAuthCert(otherCa, { keyPair: kp, serial: good.serial });
  writeFileSync(join(tmp, 'ca.pem'), toPem(ca.certDer, 'CERTIFICATE'));
  for (const [n, c] of [
    ['good', good],
    ['revoked', revoked],
    ['unknown', unknown],
  ] as const)
    writeFileSync(join(tmp, `${n}.pem`), toPem(c.certDer, 'CERTIFICATE'));
});
test.after(async () => {
  await Promise.all(responders.map((r) => r.close()));
  rmSync(tmp, { recursive: true, force: true });
});

async function start(responder: 'ca' | 'delegated'): Promise<OcspResponder> {
  const r = await startOcspResponder({ ca, status, responder, responderKeyPair: kp });
  responders.push(r);
  return r;
}

const cert = (der: Uint8Array) => pkijs.Certificate.fromBER(der.slice().buffer);

async function ocspRequest(c: IssuedCert, opts: { issuer?: TestCa; nonce?: Uint8Array; hash?: string } = {}): Promise<Uint8Array> {
  const req = new pkijs.OCSPRequest();
  await req.createForCertificate(cert(c.certDer), { hashAlgorithm: opts.hash ?? 'SHA-256', issuerCertificate: cert((opts.issuer ?? ca).certDer) });
  if (opts.nonce) {
    req.tbsRequest.requestExtensions = [new pkijs.Extension({ extnID: OID.ocspNonce, critical: false, extnValue: new asn1js.OctetString({ valueHex: opts.nonce.slice().buffer }).toBER(false) })];
  }
  return new Uint8Array(req.toSchema(true).toBER(false));
}

async function post(url: string, body: Uint8Array): Promise<Uint8Array> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/ocsp-request' }, signal: AbortSignal.timeout(10_000) });
  assert.is(res.status, 200);
  assert.is(res.headers.get('content-type'), 'application/ocsp-response');
  return new Uint8Array(await res.arrayBuffer());
}

function basicOf(der: Uint8Array): { status: number; basic?: pkijs.BasicOCSPResponse } {
  const res = pkijs.OCSPResponse.fromBER(der.slice().buffer);
  const st = res.responseStatus.valueBlock.valueDec;
  if (!res.responseBytes) return { status: st };
  assert.is(res.responseBytes.responseType, '1.3.6.1.5.5.7.48.1.1');
  return { status: st, basic: pkijs.BasicOCSPResponse.fromBER(res.responseBytes.response.valueBlock.valueHexView.slice().buffer) };
}

/** The CertStatus choice tag of the first SingleResponse: 0 good, 1 revoked, 2 unknown (RFC 6960 4.2.1). */
const certStatusTag = (b: pkijs.BasicOCSPResponse, i = 0) => (b.tbsResponseData.responses[i].certStatus as asn1js.BaseBlock).idBlock.tagNumber;

for (const mode of ['ca', 'delegated'] as const) {
  test(`answers good, revoked and unknown over POST, signed by the ${mode === 'ca' ? 'CA' : 'delegated responder'}`, async () => {
    const r = await start(mode);
    const caCert = cert(ca.certDer);
    for (const [c, want] of [
      [good, 0],
      [revoked, 1],
      [unknown, 2],
    ] as const) {
      const { status: st, basic } = basicOf(await post(r.url, await ocspRequest(c)));
      assert.is(st, OCSP_RESPONSE_STATUS.successful);
      assert.ok(await basic!.verify({ trustedCerts: [caCert] }), 'signature verifies');
      assert.is(certStatusTag(basic!), want);
      const s = await basic!.getCertificateStatus(cert(c.certDer), caCert);
      assert.ok(s.isForCertificate);
      assert.is(s.status, want);
    }
    if (mode === 'delegated') {
      const { basic } = basicOf(await post(r.url, await ocspRequest(good)));
      const signer = basic!.certs![0];
      const eku = signer.extensions!.find((e) => e.extnID === OID.extKeyUsage)!.parsedValue as pkijs.ExtKeyUsage;
      assert.equal(eku.keyPurposes, [OID.ocspSigning]);
      assert.equal(new Uint8Array(signer.toSchema(true).toBER(false)), r.responderCertDer);
    }
  });
}

test('a revoked answer carries the revocation time and reason', async () => {
  const r = await start('ca');
  const { basic } = basicOf(await post(r.url, await ocspRequest(revoked)));
  const info = basic!.tbsResponseData.responses[0].certStatus as asn1js.Constructed;
  const time = info.valueBlock.value[0] as asn1js.GeneralizedTime;
  assert.is(time.toDate().toISOString(), revokedAt.toISOString());
  const reason = (info.valueBlock.value[1] as asn1js.Constructed).valueBlock.value[0] as asn1js.Enumerated;
  assert.is(reason.valueBlock.valueDec, 1); // keyCompromise
});

test('a GET request (base64 in the path) gets the same answer as POST', async () => {
  const r = await start('ca');
  const b64 = Buffer.from(await ocspRequest(revoked)).toString('base64');
  const res = await fetch(`${r.url}/${encodeURIComponent(b64)}`, { signal: AbortSignal.timeout(10_000) });
  assert.is(res.status, 200);
  const { basic } = basicOf(new Uint8Array(await res.arrayBuffer()));
  assert.is(certStatusTag(basic!), 1);
});

test('the nonce is echoed when present and absent otherwise', async () => {
  const r = await start('ca');
  const nonce = new Uint8Array(randomBytes(16));
  const { basic } = basicOf(await post(r.url, await ocspRequest(good, { nonce })));
  const ext = basic!.tbsResponseData.responseExtensions!.find((e) => e.extnID === OID.ocspNonce)!;
  const echoed = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView).result as asn1js.OctetString;
  assert.equal(new Uint8Array(echoed.valueBlock.valueHexView), nonce);
  const plain = basicOf(await post(r.url, await ocspRequest(good))).basic!;
  assert.is(plain.tbsResponseData.responseExtensions, undefined);
});

test('a certificate of another CA (same serial) and SHA-1 CertIDs are handled', async () => {
  const r = await start('ca');
  const other = basicOf(await post(r.url, await ocspRequest(foreign, { issuer: otherCa })));
  assert.is(certStatusTag(other.basic!), 2); // unknown: not our issuer
  const sha1 = basicOf(await post(r.url, await ocspRequest(revoked, { hash: 'SHA-1' })));
  assert.is(certStatusTag(sha1.basic!), 1);
});

test('malformed requests get malformedRequest, never a crash', async () => {
  const r = await start('ca');
  const bodies: Uint8Array[] = [
    new Uint8Array(0),
    Uint8Array.from([1, 2, 3]),
    Uint8Array.from([0x30, 0x03, 0x30, 0x01, 0x00]),
    Uint8Array.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
    new Uint8Array(randomBytes(300)),
  ];
  for (const b of bodies) {
    const { status: st, basic } = basicOf(await post(r.url, b));
    assert.is(st, OCSP_RESPONSE_STATUS.malformedRequest);
    assert.is(basic, undefined);
  }
  const bad = await fetch(`${r.url}/${encodeURIComponent('%%%not base64')}`, { signal: AbortSignal.timeout(10_000) });
  assert.is(basicOf(new Uint8Array(await bad.arrayBuffer())).status, OCSP_RESPONSE_STATUS.malformedRequest);
  const huge = await fetch(r.url, { method: 'POST', body: new Uint8Array(64 * 1024), signal: AbortSignal.timeout(10_000) });
  assert.is(huge.status, 413);
  const put = await fetch(r.url, { method: 'PUT', body: 'x', signal: AbortSignal.timeout(10_000) });
  assert.is(put.status, 405);
  // Still answering after all that.
  assert.is(certStatusTag(basicOf(await post(r.url, await ocspRequest(good))).basic!), 0);
});

test('a throwing status lookup gives internalError', async () => {
  const r = await startOcspResponder({
    ca,
    status: () => {
      throw new Error('database down');
    },
  });
  responders.push(r);
  assert.is(basicOf(await post(r.url, await ocspRequest(good))).status, OCSP_RESPONSE_STATUS.internalError);
});

for (const mode of ['ca', 'delegated'] as const) {
  test(`openssl ocsp agrees (${mode} signer)`, async () => {
    const r = await start(mode);
    const caPem = join(tmp, 'ca.pem');
    for (const [name, want] of [
      ['good', ': good'],
      ['revoked', ': revoked'],
      ['unknown', ': unknown'],
    ] as const) {
      const { stdout, stderr } = await run('openssl', ['ocsp', '-issuer', caPem, '-cert', join(tmp, `${name}.pem`), '-url', r.url, '-CAfile', caPem, '-timeout', '10'], {
        timeout: 20_000,
      });
      assert.ok(stdout.includes(want), `${name}: ${stdout}`);
      assert.match(stderr + stdout, /Response verify OK/);
      if (name === 'revoked') assert.match(stdout, /Reason: keyCompromise/);
    }
  });
}

test.run();
