// `npm run build` (scripts/build.ts): every entry point comes out as plain JavaScript that `node` runs
// with no TypeScript loader, and each starts: CLIs print their usage for --help, the hub's bundled CLI
// does not start a hub as well (the main-module test is per bundle), and the development hub starts
// for real on free ports.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { buildAll, PACKAGES, ROOT } from '../../scripts/build.ts';
import { openTempDir } from './edge-fixture.ts';
import { listeningUrl } from '../helpers/hub-log.ts';

const work = openTempDir('mykey-build-');
const dist = join(work, 'dist');
// A clean environment: no NODE_OPTIONS (which could carry `--import tsx`), no tsx on the way.
const env = { PATH: '/usr/bin:/bin', HOME: work, MYKEY_LOG_LEVEL: 'info' };
// Entries without --help, started otherwise below.
const NO_HELP = new Set(['tools/dev-hub']);

test.before(async () => {
  await buildAll(dist);
  // The native modules, as `npm ci` in a package folder (test/build/edge-package.test.ts) or a checkout
  // gives them; resolution walks up from dist/<pkg>/ to here.
  symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'));
});

test.after(() => {
  rmSync(work, { recursive: true, force: true });
});

test('writes one JavaScript file per entry point, a package.json and lockfile per package, and its service files', () => {
  for (const pkg of PACKAGES) {
    const files = readdirSync(join(dist, pkg.dir)).sort();
    const expected = [...Object.keys(pkg.entries).map((e) => `${e}.js`), ...Object.keys(pkg.extras), 'package-lock.json', 'package.json'].sort();
    assert.equal(files, expected, pkg.dir);
  }
});

test('leaves no TypeScript import, no tsx and no source path behind in any bundle', () => {
  for (const pkg of PACKAGES) {
    for (const e of Object.keys(pkg.entries)) {
      const js = readFileSync(join(dist, pkg.dir, `${e}.js`), 'utf8');
      assert.not.match(js, /\bfrom\s*["'][^"']+\.tsx?["']/, `${pkg.dir}/${e}.js imports a .ts file`);
      assert.not.match(js, /\bimport\(\s*["'][^"']+\.tsx?["']\s*\)/, `${pkg.dir}/${e}.js imports a .ts file dynamically`);
      assert.not.match(js, /["']tsx(\/[a-z]+)?["']/, `${pkg.dir}/${e}.js refers to tsx`);
    }
  }
});

test('keeps the native modules out of the bundles and lists exactly them, pinned, in each package.json', () => {
  for (const pkg of PACKAGES) {
    const manifest = JSON.parse(readFileSync(join(dist, pkg.dir, 'package.json'), 'utf8')) as { type: string; dependencies: Record<string, string>; optionalDependencies?: Record<string, string> };
    assert.is(manifest.type, 'module');
    assert.equal(Object.keys(manifest.dependencies).sort(), [...pkg.dependencies].sort(), pkg.dir);
    assert.equal(Object.keys(manifest.optionalDependencies ?? {}).sort(), [...pkg.optionalDependencies].sort(), pkg.dir);
    for (const v of [...Object.values(manifest.dependencies), ...Object.values(manifest.optionalDependencies ?? {})]) assert.match(v, /^\d+\.\d+\.\d+$/, `${pkg.dir}: exact version`);
    const lock = JSON.parse(readFileSync(join(dist, pkg.dir, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; integrity?: string }> };
    for (const [k, v] of Object.entries(lock.packages)) if (k) assert.ok(v.version && v.integrity, `${pkg.dir} lock ${k} has version and integrity`);
  }
  const edgeLock = Object.keys(JSON.parse(readFileSync(join(dist, 'edge', 'package-lock.json'), 'utf8')).packages as object);
  for (const absent of ['aedes', 'better-sqlite3', 'hono', 'pkijs', 'mqtt', 'tsx', 'typescript']) assert.not.ok(edgeLock.includes(`node_modules/${absent}`), `edge lock has no ${absent}`);
});

test('the edge agent bundle carries none of the hub (no aedes, hono, pkijs, better-sqlite3)', () => {
  // esbuild marks each bundled module with a `// <path>/node_modules/<package>/<file>` comment line.
  const js = readFileSync(join(dist, 'edge', 'main.js'), 'utf8');
  const bundled = (pkg: string) => new RegExp(`^// (?:\\S*/)?node_modules/${pkg.replace('/', '\\/')}/`, 'm').test(js);
  for (const hub of ['aedes', 'hono', '@hono/node-server', 'pkijs', 'better-sqlite3']) assert.not.ok(bundled(hub), hub);
  assert.ok(bundled('mqtt'), 'the marker comments are there (mqtt is bundled)');
});

for (const pkg of PACKAGES) {
  for (const e of Object.keys(pkg.entries)) {
    const name = `${pkg.dir}/${e}`;
    if (NO_HELP.has(name)) continue;
    test(`node dist/${name}.js --help prints its usage and exits`, () => {
      const r = spawnSync(process.execPath, [join(dist, pkg.dir, `${e}.js`), '--help'], { cwd: work, env, encoding: 'utf8', timeout: 20_000 });
      const out = r.stdout + r.stderr;
      assert.is(r.signal, null, `${name} ended by ${r.signal}: ${out}`);
      assert.match(out, /usage/i, `${name}: ${out}`);
      // A bundled entry file (hub/main.ts inside the hub CLI) must not start too.
      assert.not.match(out, /listening|started/i, `${name} started something: ${out}`);
      // register-cli answers --help with its usage as an error (exit 1); the others exit 0.
      assert.ok(r.status === 0 || (name === 'tools/register-cli' && r.status === 1), `${name} exit ${r.status}: ${out}`);
    });
  }
}

test('node dist/tools/dev-hub.js starts a development hub on free ports and stops on SIGTERM', async () => {
  const child = spawn(process.execPath, [join(dist, 'tools', 'dev-hub.js')], {
    cwd: work,
    env: { ...env, MYKEY_HUB_DATA_DIR: join(work, 'dev-data'), MYKEY_HUB_HTTP_PORT: '0', MYKEY_HUB_BROKER_PORT: '0', MYKEY_HUB_DEVICES_HTTPS_PORT: '0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const until = Date.now() + 30_000;
  while (!listeningUrl(err)) {
    if (Date.now() > until || child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = listeningUrl(err);
  try {
    assert.ok(url, `the dev hub did not come up:\n${err}`);
    const res = await fetch(`${url}/healthz`);
    assert.is(res.status, 200);
  } finally {
    child.kill('SIGTERM');
  }
  assert.is(await exited, 0, err);
});

test.run();
