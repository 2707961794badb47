import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createTestCa, exportPkcs8, issueUserAuthCert, toPem } from '../../../provisioning/test-ca/ca.ts';
import { loadCardFile, mykeyIdOf } from '../../../provisioning/virtual-card/card-file.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(root, 'provisioning/virtual-card/cli.ts');
const dir = mkdtempSync(join(tmpdir(), 'vcard-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: root, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test('make builds a card from a certificate, key and CA certificate in PEM', async () => {
  const ca = await createTestCa({ label: 'cli' });
  const issued = await issueUserAuthCert(ca);
  writeFileSync(join(dir, 'auth.pem'), toPem(issued.certDer, 'CERTIFICATE'));
  writeFileSync(join(dir, 'auth.key'), toPem(await exportPkcs8(issued.keyPair.privateKey), 'PRIVATE KEY'));
  writeFileSync(join(dir, 'ca.pem'), toPem(ca.certDer, 'CERTIFICATE'));
  const out = join(dir, 'pem-card.json');
  const r = await cli('make', '--cert', join(dir, 'auth.pem'), '--key', join(dir, 'auth.key'), '--ca-cert', join(dir, 'ca.pem'), '--out', out, '--pin', '4321', '--mykey', 'wxyz-2345');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /MyKey ID WXYZ-\*\*\*\*/);
  assert.not.match(r.stdout, /WXYZ2345|4321/, 'neither the full MyKey ID nor the PIN is printed');
  const card = await loadCardFile(out);
  assert.is(card.jpki.authPin.value, '4321');
  assert.is(mykeyIdOf(card), 'WXYZ2345');
  assert.equal(Buffer.from(card.jpki.authCert, 'base64'), Buffer.from(issued.certDer));
});

test('make refuses a key that does not belong to the certificate', async () => {
  const ca = await createTestCa({ label: 'cli-mismatch' });
  const a = await issueUserAuthCert(ca);
  const b = await issueUserAuthCert(ca);
  writeFileSync(join(dir, 'a.pem'), toPem(a.certDer, 'CERTIFICATE'));
  writeFileSync(join(dir, 'b.key'), toPem(await exportPkcs8(b.keyPair.privateKey), 'PRIVATE KEY'));
  writeFileSync(join(dir, 'ca2.pem'), toPem(ca.certDer, 'CERTIFICATE'));
  const r = await cli('make', '--cert', join(dir, 'a.pem'), '--key', join(dir, 'b.key'), '--ca-cert', join(dir, 'ca2.pem'), '--out', join(dir, 'x.json'));
  assert.is(r.code, 1);
  assert.match(r.stderr, /validation_failed/);
  assert.not.ok(existsSync(join(dir, 'x.json')));
});

test('make issues from a test-CA directory when the store is there', async () => {
  const storeUrl = new URL('../../../provisioning/test-ca/store.ts', import.meta.url);
  const { initCaDir } = (await import(storeUrl.href)) as { initCaDir: (d: string, o?: { label?: string }) => Promise<unknown> };
  const caDir = join(dir, 'ca');
  await initCaDir(caDir, { label: 'cli-dir' });
  const out = join(dir, 'dir-card.json');
  const r = await cli('make', '--ca', caDir, '--out', out, '--mykey-reserved');
  assert.is(r.code, 0, r.stderr);
  const card = await loadCardFile(out);
  assert.equal(card.mykey.idArea, { reserved: true, content: '' });
  const show = await cli('show', out);
  assert.match(show.stdout, /MyKey area reserved, empty/);
});

test('bad arguments are refused with a code and the usage', async () => {
  const none = await cli('make', '--out', join(dir, 'y.json'));
  assert.is(none.code, 1);
  assert.match(none.stderr, /bad_request/);
  assert.match(none.stderr, /usage:/);
  const badId = await cli('make', '--cert', 'a', '--key', 'b', '--ca-cert', 'c', '--out', join(dir, 'z.json'), '--mykey', 'ABCD-EFG0');
  assert.match(badId.stderr, /mykey_id_malformed/);
  const unknown = await cli('frobnicate');
  assert.is(unknown.code, 2);
});

test.run();
