// The release tool: make a release key pair, sign a bundle, verify a signed bundle.
//
//   tsx provisioning/release/cli.ts keygen --out keys/           (release.key: keep it off the hub)
//   tsx provisioning/release/cli.ts sign --key release.key --bundle mykey-edge-1.2.0.tar --version 1.2.0
//        [--min-version 1.0.0] [--allow-downgrade] [--services library,museum]   -> <bundle>.release.json
//   tsx provisioning/release/cli.ts verify --public-key <line or file> --bundle b.tar --signed b.tar.release.json
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MyKeyError } from '../../shared/errors.ts';
import { parseReleasePublicKey, verifySignedRelease } from '../../shared/release.ts';
import { generateReleaseKeys, loadReleasePrivateKey, manifestFor, signManifest } from './sign.ts';

const USAGE = `usage:
  release keygen --out <dir>
  release sign --key <release.key> --bundle <file.tar> --version <x.y.z> [--min-version <x.y.z>] [--allow-downgrade] [--services a,b|*] [--out <file>]
  release verify --public-key <base64 SPKI or PEM file> --bundle <file.tar> --signed <file.release.json>`;

function args(argv: string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new MyKeyError('validation_failed', `unexpected argument ${a}\n${USAGE}`);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[a.slice(2)] = true;
    else out[a.slice(2)] = argv[++i];
  }
  return out;
}

function need(a: Record<string, string | true>, k: string): string {
  const v = a[k];
  if (typeof v !== 'string') throw new MyKeyError('validation_failed', `--${k} is required\n${USAGE}`);
  return v;
}

/** Runs one command; returns what to print. */
export function runReleaseCli(argv: string[]): string {
  const [cmd, ...rest] = argv;
  const a = args(rest);
  if (cmd === 'keygen') {
    const dir = need(a, 'out');
    mkdirSync(dir, { recursive: true });
    const k = generateReleaseKeys();
    const priv = join(dir, 'release.key');
    if (existsSync(priv)) throw new MyKeyError('conflict', `${priv} exists; a release key is never overwritten`);
    writeFileSync(priv, k.privateKeyPem, { mode: 0o600, flag: 'wx' });
    writeFileSync(join(dir, 'release.pub'), k.publicKeyPem);
    return `key id ${k.keyId}\nprivate key: ${priv} (keep it off the hub)\npublic key (hub releases.publicKeys, edge updates.releaseKey):\n${k.publicKeyLine}`;
  }
  if (cmd === 'sign') {
    const bundlePath = need(a, 'bundle');
    const bundle = readFileSync(bundlePath);
    const services =
      typeof a.services === 'string'
        ? a.services
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : undefined;
    const m = manifestFor(bundle, {
      version: need(a, 'version'),
      minVersion: typeof a['min-version'] === 'string' ? a['min-version'] : undefined,
      allowDowngrade: a['allow-downgrade'] === true,
      services,
    });
    const signed = signManifest(m, loadReleasePrivateKey(readFileSync(need(a, 'key'), 'utf8')));
    const out = typeof a.out === 'string' ? a.out : `${bundlePath}.release.json`;
    writeFileSync(out, `${JSON.stringify(signed, null, 2)}\n`);
    return `signed ${m.version} (sha256 ${m.digest}, ${m.size} bytes, key ${signed.keyId}) -> ${out}`;
  }
  if (cmd === 'verify') {
    const pk = need(a, 'public-key');
    const key = parseReleasePublicKey(existsSync(pk) ? readFileSync(pk, 'utf8') : pk);
    const r = verifySignedRelease(JSON.parse(readFileSync(need(a, 'signed'), 'utf8')), [key]);
    if (!r.ok) throw new MyKeyError(r.code, r.message);
    const bundle = readFileSync(need(a, 'bundle'));
    if (bundle.length !== r.value.size) throw new MyKeyError('release_size_mismatch', `the bundle is ${bundle.length} bytes, the manifest says ${r.value.size}`);
    if (createHash('sha256').update(bundle).digest('hex') !== r.value.digest) throw new MyKeyError('release_digest_mismatch');
    return `ok: ${r.value.version} for ${r.value.services.join(',')} (from ${r.value.minVersion}${r.value.allowDowngrade ? ', may downgrade' : ''})`;
  }
  throw new MyKeyError('validation_failed', USAGE);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    console.log(runReleaseCli(process.argv.slice(2)));
  } catch (e) {
    console.error(e instanceof MyKeyError ? `${e.code}: ${e.message}` : e);
    process.exit(1);
  }
}
