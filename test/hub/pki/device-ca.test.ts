// The hub's device CA: created once with its key at mode 0600, issues device certificates only from
// CSRs whose signature verifies, with the documented profile, and a server certificate for the
// broker; OpenSSL agrees with what it issues.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as pkijs from 'pkijs';
import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeviceCsr, openDeviceCa, type DeviceCa } from '../../../hub/pki/device-ca.ts';

let dir: string;
let ca: DeviceCa;
test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mykey-device-ca-'));
  ca = await openDeviceCa(join(dir, 'device-ca'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

test('creates the CA once: key PKCS#8 at mode 0600, certificate PEM; reopening keeps it', async () => {
  const keyStat = statSync(join(dir, 'device-ca', 'ca-key.pem'));
  assert.is(keyStat.mode & 0o777, 0o600);
  assert.match(readFileSync(join(dir, 'device-ca', 'ca-key.pem'), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  const again = await openDeviceCa(join(dir, 'device-ca'));
  assert.is(again.certPem, ca.certPem);
  const text = openssl(['x509', '-in', join(dir, 'device-ca', 'ca-cert.pem'), '-noout', '-text']);
  assert.match(text, /CA:TRUE, pathlen:0/);
  assert.match(text, /Certificate Sign, CRL Sign/);
  assert.match(text, /prime256v1/);
});

test('issues a device certificate with CN = edge id, OU = service, clientAuth, that OpenSSL verifies', async () => {
  const { csrDer } = await createDeviceCsr('edge-01');
  const r = await ca.issueDeviceCertificate(csrDer, { edgeId: 'edge-01', serviceId: 'library', validityDays: 30 });
  assert.ok(r.ok);
  if (!r.ok) return;
  const p = join(dir, 'edge-01.pem');
  writeFileSync(p, r.value.certPem);
  assert.match(openssl(['verify', '-CAfile', join(dir, 'device-ca', 'ca-cert.pem'), '-purpose', 'sslclient', p]), /OK/);
  const text = openssl(['x509', '-in', p, '-noout', '-text']);
  assert.match(text, /Subject: O = MyKey Platform devices, OU = library, CN = edge-01/);
  assert.match(text, /TLS Web Client Authentication/);
  assert.match(text, /CA:FALSE/);
  assert.match(text, /Digital Signature/);
  const days = (r.value.notAfter.getTime() - Date.now()) / 86400_000;
  assert.ok(days > 29.9 && days <= 30);
  assert.is(r.value.fingerprint.length, 64);
  assert.match(r.value.serialHex, /^[0-9a-f]+$/);
});

test('the subject of the CSR is ignored: the hub names the device', async () => {
  const { csrDer } = await createDeviceCsr('edge-someone-else');
  const r = await ca.issueDeviceCertificate(csrDer, { edgeId: 'edge-02', serviceId: 'museum', validityDays: 1 });
  assert.ok(r.ok);
  if (r.ok) assert.match(openssl(['x509', '-noout', '-subject', '-in', writeTmp('e2.pem', r.value.certPem)]), /OU = museum, CN = edge-02/);
});

function writeTmp(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

test('refuses a CSR whose signature does not verify', async () => {
  const { csrDer } = await createDeviceCsr('edge-03');
  const bad = Uint8Array.from(csrDer);
  bad[bad.length - 5] ^= 0x01;
  const r = await ca.issueDeviceCertificate(bad, { edgeId: 'edge-03', serviceId: 'library', validityDays: 30 });
  assert.equal(r.ok ? 'ok' : r.code, 'csr_invalid');
});

test('refuses a CSR signed with another key than the one it carries', async () => {
  const a = await createDeviceCsr('edge-04');
  const b = await createDeviceCsr('edge-04');
  const csr = pkijs.CertificationRequest.fromBER(a.csrDer.slice().buffer);
  csr.subjectPublicKeyInfo = pkijs.CertificationRequest.fromBER(b.csrDer.slice().buffer).subjectPublicKeyInfo;
  await csr.sign(a.keyPair.privateKey, 'SHA-256');
  const r = await ca.issueDeviceCertificate(new Uint8Array(csr.toSchema(true).toBER(false)), { edgeId: 'edge-04', serviceId: 'library', validityDays: 30 });
  assert.equal(r.ok ? 'ok' : r.code, 'csr_invalid');
});

const junk: Array<[string, () => Uint8Array]> = [
  ['empty input', () => new Uint8Array(0)],
  ['a truncated structure', () => Uint8Array.from([0x30, 0x03, 0x02, 0x01])],
  ['a certificate instead of a CSR', () => ca.certDer],
];
for (const [what, der] of junk) {
  test(`refuses ${what} as a CSR`, async () => {
    const r = await ca.issueDeviceCertificate(der(), { edgeId: 'edge-05', serviceId: 'library', validityDays: 30 });
    assert.equal(r.ok ? 'ok' : r.code, 'csr_invalid');
  });
}

test('refuses trailing bytes after the CSR', async () => {
  const { csrDer } = await createDeviceCsr('edge-06');
  const r = await ca.issueDeviceCertificate(Buffer.concat([csrDer, Buffer.from([0])]), { edgeId: 'edge-06', serviceId: 'library', validityDays: 30 });
  assert.equal(r.ok ? 'ok' : r.code, 'csr_invalid');
});

test('refuses an RSA key below 2048 bits and accepts RSA-2048', async () => {
  for (const [bits, expected] of [
    [1024, 'csr_invalid'],
    [2048, 'ok'],
  ] as const) {
    const keyPair = (await webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const { csrDer } = await createDeviceCsr('edge-07', { keyPair });
    const r = await ca.issueDeviceCertificate(csrDer, { edgeId: 'edge-07', serviceId: 'library', validityDays: 30 });
    assert.is(r.ok ? 'ok' : r.code, expected, `RSA-${bits}`);
  }
});

test('refuses invalid edge ids, service ids and validity', async () => {
  const { csrDer } = await createDeviceCsr('edge-08');
  for (const req of [
    { edgeId: 'Edge/08', serviceId: 'library', validityDays: 30 },
    { edgeId: 'edge-08', serviceId: 'lib+', validityDays: 30 },
    { edgeId: 'edge-08', serviceId: 'library', validityDays: 0 },
    { edgeId: 'edge-08', serviceId: 'library', validityDays: 1.5 },
  ]) {
    const r = await ca.issueDeviceCertificate(csrDer, req);
    assert.equal(r.ok ? 'ok' : r.code, 'validation_failed', JSON.stringify(req));
  }
});

test('the broker certificate names loopback and the configured hosts, and is reused until they change', async () => {
  const s1 = await ca.serverCredentials(['hub.example.jp']);
  const p = writeTmp('server.pem', s1.certPem);
  assert.match(openssl(['verify', '-CAfile', join(dir, 'device-ca', 'ca-cert.pem'), '-purpose', 'sslserver', p]), /OK/);
  const san = openssl(['x509', '-in', p, '-noout', '-ext', 'subjectAltName']);
  for (const n of ['IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1', 'DNS:localhost', 'DNS:hub.example.jp']) assert.ok(san.includes(n), n);
  assert.is(statSync(join(dir, 'device-ca', 'server-key.pem')).mode & 0o777, 0o600);
  const s2 = await ca.serverCredentials(['hub.example.jp']);
  assert.is(s2.certPem, s1.certPem);
  const s3 = await ca.serverCredentials(['hub.example.jp', '192.0.2.7']);
  assert.is.not(s3.certPem, s1.certPem);
  assert.ok(openssl(['x509', '-in', writeTmp('s3.pem', s3.certPem), '-noout', '-ext', 'subjectAltName']).includes('IP Address:192.0.2.7'));
});

test.run();
