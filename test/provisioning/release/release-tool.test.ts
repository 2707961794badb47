// The release tool: key pairs, signatures over the exact manifest bytes, reproducible ustar bundles
// that the edge's reader unpacks, and the CLI round trip keygen -> sign -> verify.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { generateReleaseKeys, manifestFor, signManifest } from '../../../provisioning/release/sign.ts';
import { packFolder, ustarHeader } from '../../../provisioning/release/tar.ts';
import { runReleaseCli } from '../../../provisioning/release/cli.ts';
import { readTar } from '../../../edge/update/untar.ts';
import { makeRelease } from '../../../scripts/release.ts';
import { symlinkSync } from 'node:fs';
import { compareVersions, parseReleasePublicKey, verifySignedRelease } from '../../../shared/release.ts';

const test = suite('release tool');

function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-rel-'));
  mkdirSync(join(dir, 'service'));
  writeFileSync(join(dir, 'main.js'), 'console.log(1)\n');
  writeFileSync(join(dir, 'service', 'unit.txt'), 'x'.repeat(1000));
  return dir;
}

test('a folder packs into the same ustar bytes every time, and unpacks to its files', () => {
  const dir = folder();
  const a = packFolder(dir);
  const b = packFolder(dir);
  assert.ok(a.equals(b));
  const r = readTar(a);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(
    r.value.map((e) => `${e.type}:${e.path}`),
    ['file:main.js', 'dir:service', 'file:service/unit.txt'],
  );
  assert.is(r.value[2].data.toString(), 'x'.repeat(1000));
  // tar(1) reads it too (the oracle).
  const listed = execFileSync('tar', ['-tf', '-'], { input: a }).toString().trim().split('\n');
  assert.equal(listed, ['main.js', 'service/', 'service/unit.txt']);
  rmSync(dir, { recursive: true });
});

test('the edge refuses archives with paths outside the folder, links, or a cut end', () => {
  const end = Buffer.alloc(1024);
  const table: [string, Buffer][] = [
    ['parent path', Buffer.concat([ustarHeader('../evil.js', 0, '0', 0o644), end])],
    ['absolute path', Buffer.concat([ustarHeader('/etc/evil', 0, '0', 0o644), end])],
    ['inner parent', Buffer.concat([ustarHeader('a/../../evil', 0, '0', 0o644), end])],
    ['cut end', ustarHeader('main.js', 0, '0', 0o644)],
    ['size beyond the archive', Buffer.concat([ustarHeader('main.js', 5000, '0', 0o644), end])],
  ];
  const link = ustarHeader('link', 0, '0', 0o644);
  link[156] = '2'.charCodeAt(0); // symlink type, checksum now stale: recompute
  link.fill(' ', 148, 156);
  let sum = 0;
  for (const b of link) sum += b;
  link.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  table.push(['symbolic link', Buffer.concat([link, end])]);
  for (const [name, buf] of table) {
    const r = readTar(buf);
    assert.is(r.ok ? 'ok' : r.code, 'release_bundle_invalid', name);
  }
});

test('a signed manifest verifies with its public key only, and any change to its bytes breaks it', () => {
  const k = generateReleaseKeys();
  const other = generateReleaseKeys();
  const m = manifestFor(Buffer.from('bundle'), { version: '1.2.3', services: ['library'] });
  const s = signManifest(m, createPrivateKey(k.privateKeyPem));
  const ok = verifySignedRelease(s, [parseReleasePublicKey(k.publicKeyLine)]);
  assert.ok(ok.ok);
  assert.is(ok.ok && ok.value.version, '1.2.3');
  const wrongKey = verifySignedRelease(s, [parseReleasePublicKey(other.publicKeyPem)]);
  assert.is(!wrongKey.ok && wrongKey.code, 'release_signature_invalid');
  const bytes = Buffer.from(s.manifest, 'base64url');
  bytes[bytes.length - 3] ^= 1;
  const altered = verifySignedRelease({ ...s, manifest: bytes.toString('base64url') }, [parseReleasePublicKey(k.publicKeyLine)]);
  assert.is(!altered.ok && altered.code, 'release_signature_invalid');
  const unsigned = verifySignedRelease({ manifest: s.manifest }, [parseReleasePublicKey(k.publicKeyLine)]);
  assert.is(!unsigned.ok && unsigned.code, 'release_manifest_invalid');
});

test('versions compare as numbers', () => {
  assert.ok(compareVersions('1.10.0', '1.9.9') > 0);
  assert.ok(compareVersions('0.9.0', '1.0.0') < 0);
  assert.is(compareVersions('2.0.0', '2.0.0'), 0);
});

test('the CLI makes a key pair, signs a bundle and verifies it; a changed bundle fails verification', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-rel-cli-'));
  const out = runReleaseCli(['keygen', '--out', dir]);
  const line = out.trim().split('\n').pop()!;
  const bundle = join(dir, 'b.tar');
  writeFileSync(bundle, packFolder(folder()));
  assert.match(runReleaseCli(['sign', '--key', join(dir, 'release.key'), '--bundle', bundle, '--version', '1.0.1', '--services', 'library']), /signed 1\.0\.1/);
  assert.match(runReleaseCli(['verify', '--public-key', line, '--bundle', bundle, '--signed', `${bundle}.release.json`]), /^ok: 1\.0\.1 for library/);
  const b = readFileSync(bundle);
  b[10] ^= 1;
  writeFileSync(bundle, b);
  assert.throws(
    () => runReleaseCli(['verify', '--public-key', join(dir, 'release.pub'), '--bundle', bundle, '--signed', `${bundle}.release.json`]),
    (e: { code?: string }) => e.code === 'release_digest_mismatch',
  );
  // A release key is never overwritten.
  assert.throws(() => runReleaseCli(['keygen', '--out', dir]), /never overwritten/);
  rmSync(dir, { recursive: true });
});

test('npm run release packs dist/edge without node_modules or links, and signs it when given the key', () => {
  const dist = mkdtempSync(join(tmpdir(), 'mykey-rel-dist-'));
  const edge = join(dist, 'edge');
  mkdirSync(join(edge, 'node_modules', 'pcsclite'), { recursive: true });
  writeFileSync(join(edge, 'main.js'), 'x');
  writeFileSync(join(edge, 'boot.js'), 'y');
  writeFileSync(join(edge, 'node_modules', 'pcsclite', 'index.js'), 'native');
  symlinkSync('/etc/passwd', join(edge, 'link'));
  const k = generateReleaseKeys();
  const r = makeRelease({ version: '3.1.4', dist, keyPem: k.privateKeyPem, services: ['library'] });
  const entries = readTar(readFileSync(r.bundle));
  assert.equal(entries.ok && entries.value.map((e) => e.path), ['boot.js', 'main.js']);
  const v = verifySignedRelease(JSON.parse(readFileSync(r.signed!, 'utf8')), [parseReleasePublicKey(k.publicKeyLine)]);
  assert.is(v.ok && v.value.version, '3.1.4');
  assert.throws(() => makeRelease({ version: '3.1', dist }), /x\.y\.z/);
  rmSync(dist, { recursive: true });
});

test.run();
