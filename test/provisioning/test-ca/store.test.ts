import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pkijs from 'pkijs';
import { MyKeyError } from '../../../shared/errors.ts';
import { generateRsaKeyPair, type CryptoKeyPair } from '../../../provisioning/test-ca/ca.ts';
import { initCaDir, openCaDir } from '../../../provisioning/test-ca/store.ts';

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'test-ca-store-'));
let kp: CryptoKeyPair;
let n = 0;
const freshDir = () => join(tmp, `ca${n++}`);

test.before(async () => {
  kp = await generateRsaKeyPair();
});
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** `openssl crl -text` entries as serial (uppercase hex) -> reason text ('' when none). */
async function opensslCrlEntries(der: Uint8Array, caPem: string): Promise<{ entries: Map<string, string>; number: string; text: string }> {
  const f = join(tmp, `crl${n++}.der`);
  writeFileSync(f, der);
  const { stdout } = await run('openssl', ['crl', '-inform', 'DER', '-in', f, '-text', '-noout']);
  await run('openssl', ['crl', '-inform', 'DER', '-in', f, '-CAfile', caPem, '-noout']); // throws unless the signature verifies
  const entries = new Map<string, string>();
  const blocks = stdout.split('Serial Number: ').slice(1);
  for (const b of blocks) {
    const serial = b.split('\n')[0].trim();
    const reason = /CRL Reason Code:\s*\n\s*(.+)/.exec(b)?.[1].trim() ?? '';
    entries.set(serial, reason);
  }
  const number = /CRL Number:\s*\n\s*(\d+)/.exec(stdout)?.[1] ?? '';
  return { entries, number, text: stdout };
}

test('init writes the CA files with a private key readable by the owner only', async () => {
  const dir = freshDir();
  const d = await initCaDir(dir, { keyPair: kp, label: 'jpki-auth' });
  for (const f of ['ca.pem', 'ca.key', 'state.json', 'revoked.json', 'issued.jsonl']) assert.ok(statSync(join(dir, f)).isFile(), f);
  assert.is(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
  assert.match(readFileSync(join(dir, 'ca.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  assert.ok(new X509Certificate(readFileSync(join(dir, 'ca.pem'))).ca);
  assert.is(d.crlNumber(), 0n);
  try {
    await initCaDir(dir, { keyPair: kp });
    assert.unreachable('a second init must fail');
  } catch (e) {
    assert.instance(e, MyKeyError);
    assert.is((e as MyKeyError).code, 'conflict');
  }
});

test('a reopened directory is the same CA and issues under it', async () => {
  const dir = freshDir();
  const first = await initCaDir(dir, { keyPair: kp });
  const d = await openCaDir(dir);
  assert.equal(d.ca.certDer, first.ca.certDer);
  assert.equal(d.ca.nameDer, first.ca.nameDer);
  assert.equal(d.ca.subjectKeyId, first.ca.subjectKeyId);
  const u = await d.issue({ keyPair: kp });
  const s = await d.issue({ keyPair: kp, profile: 'sign' });
  assert.ok(new X509Certificate(u.certDer).checkIssued(new X509Certificate(first.ca.certDer)));
  const issued = (await openCaDir(dir)).issued();
  assert.equal(
    issued.map((r) => [r.serialHex, r.cn, r.notAfter, r.profile]),
    [
      [u.serialHex, u.cn, u.notAfter.toISOString(), 'auth'],
      [s.serialHex, s.cn, s.notAfter.toISOString(), 'sign'],
    ],
  );
});

test('opening a directory without a CA fails with not_found', async () => {
  try {
    await openCaDir(join(tmp, 'nothing-here'));
    assert.unreachable();
  } catch (e) {
    assert.is((e as MyKeyError).code, 'not_found');
  }
});

test('revocations round-trip through a published CRL that openssl reads', async () => {
  const dir = freshDir();
  const d = await initCaDir(dir, { keyPair: kp });
  const a = await d.issue({ keyPair: kp });
  const b = await d.issue({ keyPair: kp });
  const at = new Date('2026-01-02T03:04:05Z');
  await d.revoke(a.serialHex, 'keyCompromise', at);
  await d.revoke(b.serialHex.toUpperCase(), 'superseded');
  await d.revoke('0A0B', 'cessationOfOperation');
  await d.revoke('0a0b', 'affiliationChanged'); // revoking again replaces the entry
  assert.equal(
    d.revoked().map((r) => [r.serial, r.reason]),
    [
      [a.serial, 'keyCompromise'],
      [b.serial, 'superseded'],
      [0x0a0bn, 'affiliationChanged'],
    ],
  );
  assert.is(d.revoked()[0].revokedAt.toISOString(), at.toISOString());

  const crl = await d.publishCrl();
  const { entries, number, text } = await opensslCrlEntries(crl, join(dir, 'ca.pem'));
  assert.is(number, '1');
  assert.is(entries.size, 3);
  assert.is(entries.get(a.serialHex.toUpperCase()), 'Key Compromise');
  assert.is(entries.get(b.serialHex.toUpperCase()), 'Superseded');
  assert.is(entries.get('0A0B'), 'Affiliation Changed');
  assert.match(text, /Revocation Date: Jan {2}2 03:04:05 2026 GMT/);

  // PKI.js agrees, and the CRL names the CA's DN as issuer.
  const parsed = pkijs.CertificateRevocationList.fromBER(crl.slice().buffer);
  assert.equal(new Uint8Array(parsed.issuer.toSchema().toBER(false)), d.ca.nameDer);
  assert.ok(await parsed.verify({ issuerCertificate: pkijs.Certificate.fromBER(d.ca.certDer.slice().buffer) }));

  assert.ok(await d.unrevoke('0a0b'));
  assert.not.ok(await d.unrevoke('0a0b'));
  const second = await opensslCrlEntries(await d.publishCrl(), join(dir, 'ca.pem'));
  assert.is(second.number, '2');
  assert.is(second.entries.size, 2);
  assert.is((await openCaDir(dir)).crlNumber(), 2n);
});

test('random filler entries make a CRL of the asked size', async () => {
  const dir = freshDir();
  const d = await initCaDir(dir, { keyPair: kp });
  await d.revoke('01', 'keyCompromise');
  let progressed = 0;
  const crl = await d.publishCrl({ extraRandomEntries: 500, onProgress: (done) => (progressed = done) });
  assert.is(progressed, 500);
  const parsed = pkijs.CertificateRevocationList.fromBER(crl.slice().buffer);
  assert.is(parsed.revokedCertificates?.length, 501);
  const thisUpdate = new Date('2027-03-01T00:00:00Z');
  const nextUpdate = new Date('2027-03-08T00:00:00Z');
  const again = pkijs.CertificateRevocationList.fromBER((await d.publishCrl({ thisUpdate, nextUpdate })).slice().buffer);
  assert.is(again.thisUpdate.value.toISOString(), thisUpdate.toISOString());
  assert.is(again.nextUpdate?.value.toISOString(), nextUpdate.toISOString());
});

test('a malformed serial or reason is refused with bad_request and changes nothing', async () => {
  const dir = freshDir();
  const d = await initCaDir(dir, { keyPair: kp });
  for (const [serial, reason] of [
    ['xyz', 'keyCompromise'],
    ['00', 'keyCompromise'],
    ['', 'keyCompromise'],
    ['01', 'notAReason'],
  ] as const) {
    try {
      await d.revoke(serial, reason as 'keyCompromise');
      assert.unreachable(`${serial} ${reason}`);
    } catch (e) {
      assert.is((e as MyKeyError).code, 'bad_request');
    }
  }
  assert.is(d.revoked().length, 0);
  assert.equal(JSON.parse(readFileSync(join(dir, 'revoked.json'), 'utf8')), []);
});

test('concurrent revocations on one directory are all kept', async () => {
  const dir = freshDir();
  const d = await initCaDir(dir, { keyPair: kp });
  await Promise.all(Array.from({ length: 20 }, (_, i) => d.revoke((i + 1).toString(16), 'superseded')));
  assert.is(d.revoked().length, 20);
});

test.run();
