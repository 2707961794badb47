// `npm run release`: the edge package (dist/edge, from `npm run build`) as a release bundle, a ustar
// archive with the same bytes for the same build, and, with --key, its signed manifest.
//
//   npm run build && npm run release -- --version 1.2.0 [--key release.key] [--min-version 1.0.0]
//        [--allow-downgrade] [--services library,museum] [--dist dist] [--out dist/release]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MyKeyError } from '../shared/errors.ts';
import { isReleaseVersion } from '../shared/release.ts';
import { loadReleasePrivateKey, manifestFor, signManifest } from '../provisioning/release/sign.ts';
import { packFolder } from '../provisioning/release/tar.ts';

export interface ReleaseOptions {
  version: string;
  dist?: string;
  out?: string;
  keyPem?: string;
  minVersion?: string;
  allowDowngrade?: boolean;
  services?: string[];
}

/** Packs dist/edge; signs when a key is given. Returns the written paths. */
export function makeRelease(o: ReleaseOptions): { bundle: string; signed?: string } {
  if (!isReleaseVersion(o.version)) throw new MyKeyError('validation_failed', `--version must be x.y.z (got ${o.version})`);
  const src = join(o.dist ?? 'dist', 'edge');
  if (!existsSync(join(src, 'main.js'))) throw new MyKeyError('validation_failed', `${src}/main.js is missing: run npm run build first`);
  const outDir = o.out ?? join(o.dist ?? 'dist', 'release');
  mkdirSync(outDir, { recursive: true });
  const bundle = packFolder(src);
  const bundlePath = join(outDir, `mykey-edge-${o.version}.tar`);
  writeFileSync(bundlePath, bundle);
  if (!o.keyPem) return { bundle: bundlePath };
  const signed = signManifest(manifestFor(bundle, o), loadReleasePrivateKey(o.keyPem));
  const signedPath = `${bundlePath}.release.json`;
  writeFileSync(signedPath, `${JSON.stringify(signed, null, 2)}\n`);
  return { bundle: bundlePath, signed: signedPath };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const get = (k: string) => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  try {
    const key = get('key');
    const r = makeRelease({
      version: get('version') ?? JSON.parse(readFileSync('package.json', 'utf8')).version,
      dist: get('dist'),
      out: get('out'),
      keyPem: key ? readFileSync(key, 'utf8') : undefined,
      minVersion: get('min-version'),
      allowDowngrade: argv.includes('--allow-downgrade'),
      services: get('services')?.split(','),
    });
    console.log(`bundle: ${r.bundle}${r.signed ? `\nsigned: ${r.signed}` : '\n(unsigned: sign with provisioning/release/cli.ts sign --key ...)'}`);
  } catch (e) {
    console.error(e instanceof MyKeyError ? `${e.code}: ${e.message}` : e);
    process.exit(1);
  }
}
