// The edge package (dist/edge) installs on its own into a fresh folder with `npm ci --omit=dev`, as a
// Raspberry Pi installs it: only pcsclite (compiled there) and its helpers, koffi as the one optional
// dependency, none of the hub's packages; and the installed agent and enrollment CLI run with node.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildEdgePackage, installedPackages, installPackage, openTempDir, treeBytes } from './edge-fixture.ts';

const work = openTempDir('mykey-edge-pkg-');
let dir = '';

test.before(async () => {
  const pkg = await buildEdgePackage(work);
  dir = installPackage(pkg, work, 'reader').dir;
});

test.after(() => {
  rmSync(work, { recursive: true, force: true });
});

test('installs pcsclite and its helpers, koffi as optional, and nothing of the hub', () => {
  const names = installedPackages(dir);
  const koffiPlatform = names.filter((n) => n.startsWith('@koromix/koffi-'));
  assert.ok(koffiPlatform.length <= 1, `one koffi platform package at most: ${koffiPlatform}`);
  assert.equal(
    names.filter((n) => !n.startsWith('@koromix/koffi-')),
    ['bindings', 'file-uri-to-path', 'koffi', 'nan', 'pcsclite'],
  );
  for (const absent of ['aedes', 'better-sqlite3', 'hono', 'pkijs', 'mqtt', 'tsx', 'typescript', 'esbuild']) assert.not.ok(names.includes(absent), absent);
  assert.ok(existsSync(join(dir, 'node_modules', 'pcsclite', 'build', 'Release', 'pcsclite.node')), 'pcsclite was compiled');
  const mb = treeBytes(dir) / 1e6;
  assert.ok(mb <= 40, `the installed folder is ${mb.toFixed(1)} MB (target 40)`);
});

test('the installed agent and enrollment CLI run with node and find pcsclite', () => {
  for (const [file, usage] of [
    ['main.js', /usage: .*--config edge\.json/],
    ['enroll.js', /usage:\s+enroll\s+--hub/],
  ] as const) {
    const r = spawnSync(process.execPath, [join(dir, file), '--help'], { cwd: dir, env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8', timeout: 20_000 });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout + r.stderr, usage);
  }
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', "import { createRequire } from 'node:module'; createRequire(import.meta.url)('pcsclite'); console.log('ok')"], {
    cwd: dir,
    encoding: 'utf8',
  });
  assert.is(r.stdout.trim(), 'ok', r.stderr);
});

test.run();
