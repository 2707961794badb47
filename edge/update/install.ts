// What an edge checks before it installs a release, and the install beside the running version.
// Every refusal is a result with its own code, reported to the hub: an unsigned or altered manifest,
// a release for another service, a downgrade not marked as allowed, a running version older than the
// release updates from, a bundle whose size or SHA-256 is not the signed one, an archive that is not
// plain files inside its folder.
import { createHash, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fail, ok, type Result } from '../../shared/errors.ts';
import { compareVersions, releaseIsForService, verifySignedRelease, type ReleaseManifest } from '../../shared/release.ts';
import type { Layout } from './layout.ts';
import { readTar, writeEntries } from './untar.ts';

export type RefusalCode =
  | 'release_manifest_invalid'
  | 'release_signature_invalid'
  | 'release_wrong_service'
  | 'release_downgrade_refused'
  | 'release_min_version'
  | 'release_size_mismatch'
  | 'release_digest_mismatch'
  | 'release_bundle_invalid';

/** Checks a signed release against the trusted key and this edge; the manifest when it may install. */
export function checkRelease(signed: unknown, keys: readonly KeyObject[], edge: { running: string; serviceId: string }): Result<ReleaseManifest, RefusalCode> {
  const v = verifySignedRelease(signed, keys);
  if (!v.ok) return v;
  const m = v.value;
  if (!releaseIsForService(m, edge.serviceId)) return fail('release_wrong_service', `release ${m.version} is for ${m.services.join(', ')}, not ${edge.serviceId}`);
  if (compareVersions(m.version, edge.running) < 0 && !m.allowDowngrade)
    return fail('release_downgrade_refused', `release ${m.version} is older than the running ${edge.running} and not marked as a downgrade`);
  if (compareVersions(edge.running, m.minVersion) < 0) return fail('release_min_version', `release ${m.version} updates from ${m.minVersion} or later; this edge runs ${edge.running}`);
  return ok(m);
}

/** Reads a downloaded bundle and checks it against the signed size and digest. */
export function readVerifiedBundle(file: string, m: ReleaseManifest): Result<Buffer, 'release_size_mismatch' | 'release_digest_mismatch'> {
  const data = readFileSync(file);
  if (data.length !== m.size) return fail('release_size_mismatch', `the bundle is ${data.length} bytes, the manifest signs ${m.size}`);
  if (createHash('sha256').update(data).digest('hex') !== m.digest) return fail('release_digest_mismatch', 'the bundle does not match the SHA-256 digest its manifest signs');
  return ok(data);
}

/**
 * Unpacks a verified bundle into releases/<version> beside the running version: into a scratch folder
 * first, every file fsynced, then renamed into place, so releases/<version> exists only complete. A
 * folder already there is a finished earlier install (a power cut after the rename) and is kept.
 */
export function installBeside(layout: Layout, version: string, bundle: Buffer, entry = 'main.js', nodeModules?: string): Result<string, 'release_bundle_invalid'> {
  const dir = layout.releaseDir(version);
  if (existsSync(dir)) return ok(dir);
  const entries = readTar(bundle);
  if (!entries.ok) return entries;
  if (!entries.value.some((e) => e.type === 'file' && e.path === entry)) return fail('release_bundle_invalid', `the bundle has no ${entry} at its top level`);
  const scratch = `${dir}.partial`;
  rmSync(scratch, { recursive: true, force: true });
  writeEntries(entries.value, scratch);
  // The bundles leave native modules (pcsclite) outside; a release in the updates folder finds the
  // ones installed with the factory package through this link (made here, never taken from the bundle).
  if (nodeModules && !existsSync(join(scratch, 'node_modules'))) symlinkSync(nodeModules, join(scratch, 'node_modules'));
  layout.fsyncDir(scratch);
  renameSync(scratch, dir);
  layout.fsyncDir(layout.paths.releases);
  return ok(dir);
}
