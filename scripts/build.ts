// `npm run build`: plain JavaScript for Node.js, no TypeScript loader at run time. Each entry point is
// bundled by esbuild into one ESM file; native modules (pcsclite, better-sqlite3, koffi) stay external
// and are installed by npm next to the bundles. Three folders come out:
//
//   dist/hub/    the hub and its operator CLIs; package.json + lockfile list better-sqlite3 only;
//                service/ holds provisioning/hub-service (systemd unit, nginx site, example config)
//   dist/edge/   the reader agent and the enrollment CLI; package.json + lockfile list pcsclite
//                (koffi, for the uinput keyboard hand-off only, is an optional dependency);
//                service/ holds provisioning/edge-service (unit, polkit and udev rules)
//   dist/tools/  development and counter tools (dev hub, test CA, virtual card, register, card
//                writer, CSV import); run from a checkout, whose node_modules they use
//
// Each package folder installs on its own with `npm ci --omit=dev` (the lockfile is cut from the
// repository's package-lock.json, so the versions are exactly the ones the tests ran with).
//
//   npm run build            (tsx scripts/build.ts [--out dist])
import { build, type Plugin } from 'esbuild';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Modules with native code: never bundled, installed by npm where the bundle runs. */
export const NATIVE_MODULES = ['pcsclite', 'better-sqlite3', 'koffi'] as const;

export interface PackageSpec {
  /** Folder under the output directory. */
  dir: string;
  /** npm package name written into its package.json. */
  name: string;
  description: string;
  /** Bundle file name (without .js) -> source file, relative to the repository. */
  entries: Record<string, string>;
  dependencies: string[];
  optionalDependencies: string[];
  /** Folder in the package -> folder of the repository copied into it (service files, docs). */
  extras: Record<string, string>;
}

/** What is built. The test and the bench read this table, so an entry added here is checked too. */
export const PACKAGES: PackageSpec[] = [
  {
    dir: 'hub',
    name: 'mykey-hub',
    description: 'MyKey Platform hub (built): node main.js --config hub.json',
    entries: { main: 'hub/main.ts', cli: 'hub/cli.ts', 'console-cli': 'hub/console/cli.ts' },
    dependencies: ['better-sqlite3'],
    optionalDependencies: [],
    extras: { service: 'provisioning/hub-service' },
  },
  {
    dir: 'edge',
    name: 'mykey-edge',
    description: 'MyKey Platform edge reader agent (built): node main.js --config edge.json',
    entries: { main: 'edge/main.ts', enroll: 'provisioning/enroll/cli.ts', boot: 'edge/update/boot.ts' },
    dependencies: ['pcsclite'],
    // Only the uinput keyboard back end (edge/handoff/keyboard/uinput.ts) loads koffi, and only when
    // configured; `npm ci --omit=dev --omit=optional` leaves it out.
    optionalDependencies: ['koffi'],
    extras: { service: 'provisioning/edge-service' },
  },
  {
    dir: 'tools',
    name: 'mykey-tools',
    description: 'MyKey Platform development and counter tools (built)',
    entries: {
      'dev-hub': 'provisioning/dev-hub.ts',
      'register-cli': 'provisioning/register-cli.ts',
      'test-ca': 'provisioning/test-ca/cli.ts',
      'virtual-card': 'provisioning/virtual-card/cli.ts',
      'card-writer': 'provisioning/card-writer/cli.ts',
      import: 'provisioning/import/cli.ts',
    },
    dependencies: ['better-sqlite3', 'pcsclite'],
    optionalDependencies: ['koffi'],
    extras: {},
  },
];

// The "am I the program?" test the entry files use. In a bundle every module shares the bundle's
// import.meta.url, so the test would hold for every entry file bundled in (the hub CLI bundles
// hub/main.ts and would start a hub). The plugin makes it `true` in the bundle's own entry and `false`
// in every other module, which is what it meant in the source tree.
const MAIN_GUARD = /process\.argv\[1\]\s*&&\s*(?:resolve\(process\.argv\[1\]\)\s*===\s*fileURLToPath\(import\.meta\.url\)|fileURLToPath\(import\.meta\.url\)\s*===\s*process\.argv\[1\])/g;
const LEFTOVER_GUARD = /process\.argv\[1\][^\n]*import\.meta\.url|import\.meta\.url[^\n]*process\.argv\[1\]/;

// A text file read beside its module (`readFileSync(new URL('./console.css', import.meta.url), 'utf8')`)
// is inlined as a string: the bundle has no source tree beside it. Any other import.meta.url-relative
// path fails the build rather than the installed program.
const TEXT_ASSET = /readFileSync\(\s*new URL\(\s*(['"])(\.{1,2}\/[^'"]+)\1\s*,\s*import\.meta\.url\s*\)\s*,\s*['"]utf-?8['"]\s*\)/g;
const LEFTOVER_URL = /new URL\([^)]*import\.meta\.url/;

function sourcePlugin(entry: string): Plugin {
  return {
    name: 'mykey-source',
    setup(b) {
      b.onLoad({ filter: /\.tsx?$/ }, (args) => {
        if (args.path.includes(`${'/'}node_modules${'/'}`)) return undefined;
        const source = readFileSync(args.path, 'utf8');
        const here = dirname(args.path);
        const contents = source.replace(MAIN_GUARD, args.path === entry ? 'true' : 'false').replace(TEXT_ASSET, (_m, _q, rel: string) => JSON.stringify(readFileSync(resolve(here, rel), 'utf8')));
        const where = relative(ROOT, args.path);
        if (LEFTOVER_GUARD.test(contents)) return { errors: [{ text: `${where}: a main-module test the build does not recognise (use the form in hub/main.ts)` }] };
        if (LEFTOVER_URL.test(contents)) return { errors: [{ text: `${where}: a file found through import.meta.url the build does not carry (read text assets as in hub/console/mount.tsx)` }] };
        return { contents, loader: args.path.endsWith('.tsx') ? 'tsx' : 'ts' };
      });
    },
  };
}

// Bundled CommonJS packages (aedes, mqtt, ws...) call require() for Node's built-ins; an ESM bundle
// has no require of its own, so one is made from the bundle's URL (this also finds the externals).
const BANNER = "import { createRequire as __mykeyCreateRequire } from 'node:module';\nconst require = __mykeyCreateRequire(import.meta.url);";

interface LockPackage {
  version: string;
  resolved?: string;
  integrity?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optional?: boolean;
  dev?: boolean;
  [k: string]: unknown;
}
interface Lockfile {
  lockfileVersion: number;
  packages: Record<string, LockPackage>;
}

/**
 * A lockfile (v3) for a package folder whose dependencies are `deps` (+ `optional`), cut from the
 * repository's lockfile: every package they need, transitively, with the same version and integrity.
 * Only top-level (hoisted) entries are expected; a nested one is looked up under its parent first, as
 * Node resolves it.
 */
export function cutLockfile(root: Lockfile, name: string, version: string, deps: string[], optional: string[]): { lock: Lockfile; versions: Record<string, string> } {
  const out: Record<string, LockPackage> = {};
  const versions: Record<string, string> = {};
  const find = (dep: string, from: string): string | undefined => {
    // Node's resolution: node_modules beside the requiring package, then each parent's.
    let base = from;
    for (;;) {
      const key = base ? `${base}/node_modules/${dep}` : `node_modules/${dep}`;
      if (root.packages[key]) return key;
      if (!base) return undefined;
      const i = base.lastIndexOf('/node_modules/');
      base = i < 0 ? '' : base.slice(0, i);
    }
  };
  const visit = (dep: string, from: string, isOptional: boolean) => {
    const key = find(dep, from);
    if (!key) {
      if (isOptional) return; // a platform package (e.g. @koromix/koffi-linux-arm64) may be absent here
      throw new Error(`package-lock.json has no ${dep} (needed from ${from || 'the package'}): run npm install`);
    }
    const seen = out[key];
    if (seen) {
      if (!isOptional && seen.optional) delete seen.optional;
      return;
    }
    const entry: LockPackage = { ...root.packages[key] };
    delete entry.dev;
    delete entry.devOptional;
    delete entry.peer;
    if (isOptional) entry.optional = true;
    else delete entry.optional;
    out[key] = entry;
    for (const d of Object.keys(entry.dependencies ?? {})) visit(d, key, isOptional);
    for (const d of Object.keys(entry.optionalDependencies ?? {})) visit(d, key, true);
  };
  for (const d of deps) visit(d, '', false);
  for (const d of optional) visit(d, '', true);
  for (const d of [...deps, ...optional]) versions[d] = root.packages[`node_modules/${d}`].version;
  const rootEntry: LockPackage = { name, version, license: 'UNLICENSED' } as LockPackage;
  const depVersions = (list: string[]) => Object.fromEntries(list.map((d) => [d, versions[d]]));
  if (deps.length) rootEntry.dependencies = depVersions(deps);
  if (optional.length) rootEntry.optionalDependencies = depVersions(optional);
  const sorted = Object.fromEntries(
    Object.keys(out)
      .sort()
      .map((k) => [k, out[k]]),
  );
  return { lock: { name, version, lockfileVersion: 3, requires: true, packages: { '': rootEntry, ...sorted } } as Lockfile, versions };
}

/**
 * Bundles one entry file into one ESM file as every shipped program is bundled (the benchmarks use it
 * to measure the form an operator runs). The native modules stay external: `outfile` must lie where
 * Node finds them (under the repository, or beside an installed node_modules).
 */
export async function bundleEntry(entry: string, outfile: string): Promise<void> {
  await build({
    absWorkingDir: ROOT,
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    tsconfig: join(ROOT, 'tsconfig.json'),
    external: [...NATIVE_MODULES],
    banner: { js: BANNER },
    plugins: [sourcePlugin(entry)],
    legalComments: 'none',
    logLevel: 'error',
    // ws probes for optional native speed-ups in a try/catch; without them it uses plain JS.
    logOverride: { 'require-resolve-not-external': 'silent' },
  });
}

export interface BuildResult {
  outDir: string;
  files: string[];
}

/** Builds every package of PACKAGES (or those whose dir is in `only`) into `outDir` (wiped first). */
export async function buildAll(outDir = join(ROOT, 'dist'), only?: string[]): Promise<BuildResult> {
  const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; engines?: Record<string, string>; allowScripts?: Record<string, boolean> };
  const rootLock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as Lockfile;
  rmSync(outDir, { recursive: true, force: true });
  const files: string[] = [];
  for (const pkg of PACKAGES.filter((p) => !only || only.includes(p.dir))) {
    const dir = join(outDir, pkg.dir);
    mkdirSync(dir, { recursive: true });
    for (const [out, src] of Object.entries(pkg.entries)) {
      const outfile = join(dir, `${out}.js`);
      await bundleEntry(join(ROOT, src), outfile);
      files.push(relative(outDir, outfile));
    }
    const { lock, versions } = cutLockfile(rootLock, pkg.name, rootPkg.version, pkg.dependencies, pkg.optionalDependencies);
    const exact = (list: string[]) => Object.fromEntries(list.map((d) => [d, versions[d]]));
    const manifest = {
      name: pkg.name,
      version: rootPkg.version,
      private: true,
      description: pkg.description,
      type: 'module',
      engines: rootPkg.engines,
      dependencies: exact(pkg.dependencies),
      ...(pkg.optionalDependencies.length ? { optionalDependencies: exact(pkg.optionalDependencies) } : {}),
      allowScripts: Object.fromEntries(Object.entries(rootPkg.allowScripts ?? {}).filter(([k]) => k in versions)),
    };
    for (const [to, from] of Object.entries(pkg.extras)) {
      cpSync(join(ROOT, from), join(dir, to), { recursive: true });
      files.push(relative(outDir, join(dir, to)) + '/');
    }
    writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
    writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock, null, 2) + '\n');
    files.push(relative(outDir, join(dir, 'package.json')), relative(outDir, join(dir, 'package-lock.json')));
  }
  return { outDir, files };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const outDir = i > 0 ? resolve(process.argv[i + 1]) : join(ROOT, 'dist');
  const t0 = performance.now();
  const r = await buildAll(outDir);
  console.log(`built ${r.files.length} files into ${relative(process.cwd(), r.outDir) || '.'} in ${Math.round(performance.now() - t0)} ms`);
  for (const f of r.files) console.log(`  ${f}`);
}
