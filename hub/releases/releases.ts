// Signed edge releases on the hub: stored only when their signature verifies against a configured
// release public key (the hub never holds the private key), bundles checked against the signed digest
// and size, rollouts to a service, a share of its edges or named edges, and the abort criteria: a
// rollout halts by itself once as many edges as it allows have refused or rolled back the release.
import { createHash, type KeyObject } from 'node:crypto';
import { createWriteStream, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fail, MyKeyError, ok, type Result } from '../../shared/errors.ts';
import { parseReleasePublicKey, verifySignedRelease, type ReleaseManifest, type SignedRelease, type UpdateOffer, type UpdateReport } from '../../shared/release.ts';
import { FAILURE_STATES, type EdgeUpdateRow, type ReleaseRepo, type RolloutRow } from '../store/release-repo.ts';

/** The configured release public keys (`releases.publicKeys`), or a config_invalid error naming the one that is not Ed25519. */
export function parseReleaseKeys(texts: readonly string[]): KeyObject[] {
  return texts.map((k, i) => {
    try {
      return parseReleasePublicKey(k);
    } catch (e) {
      throw new MyKeyError('config_invalid', `invalid configuration:\n  - /releases/publicKeys/${i}: not an Ed25519 public key`, { cause: e });
    }
  });
}

export interface ReleasesDeps {
  repo: ReleaseRepo;
  /** Where bundles are kept (<dataDir>/releases). */
  dir: string;
  /** Trusted release public keys (config releases.publicKeys). */
  keys: () => readonly KeyObject[];
  now: () => number;
  log: { info(msg: string, f?: Record<string, unknown>): void; warn(msg: string, f?: Record<string, unknown>): void };
}

export interface RolloutRequest {
  version: string;
  serviceId?: string;
  percent?: number;
  edges?: string[];
  maxFailures?: number;
}

/** The 0..99 bucket of an edge in a rollout: stable per (rollout, edge), spread evenly. */
export function rolloutBucket(rolloutId: number, edgeId: string): number {
  return createHash('sha256').update(`${rolloutId}\0${edgeId}`).digest().readUInt32BE(0) % 100;
}

/** True when the rollout targets this edge (its service, its named edges, its share). */
export function rolloutTargets(r: RolloutRow, edgeId: string, serviceId: string): boolean {
  if (r.service_id && r.service_id !== serviceId) return false;
  if (r.edges) return (JSON.parse(r.edges) as string[]).includes(edgeId);
  return rolloutBucket(r.id, edgeId) < r.percent;
}

export function createReleases(deps: ReleasesDeps) {
  const { repo } = deps;
  mkdirSync(deps.dir, { recursive: true });
  const bundlePath = (version: string) => join(deps.dir, `${version}.tar`);
  // The services a stored release is for, as its manifest said when its signature was checked at
  // upload. The edge checks the signed manifest again itself: it trusts the release key, not the hub.
  const servicesOf = async (version: string): Promise<string[]> => JSON.parse((await repo.release(version))?.services ?? '[]') as string[];
  const forService = async (version: string, serviceId: string) => {
    const s = await servicesOf(version);
    return s.includes('*') || s.includes(serviceId);
  };

  return {
    bundlePath,
    /** Stores a signed release after checking its signature; the bundle follows with putBundle. */
    async add(signed: SignedRelease): Promise<Result<ReleaseManifest, 'release_manifest_invalid' | 'release_signature_invalid' | 'release_exists'>> {
      const v = verifySignedRelease(signed, deps.keys());
      if (!v.ok) return v;
      const m = v.value;
      const stored = await repo.insertRelease({
        version: m.version,
        signed: JSON.stringify(signed),
        key_id: signed.keyId,
        digest: m.digest,
        size: m.size,
        services: JSON.stringify(m.services),
        uploaded_at: deps.now(),
      });
      if (!stored) return fail('release_exists', `release ${m.version} is already stored`);
      deps.log.info('release stored', { version: m.version, keyId: signed.keyId });
      return ok(m);
    },

    /**
     * Streams a bundle to disk, counting and hashing as it goes; it is kept only when size and digest
     * are the signed ones (a bundle never replaces a ready one).
     */
    async putBundle(version: string, body: ReadableStream<Uint8Array> | null): Promise<Result<true, 'release_not_found' | 'release_exists' | 'release_size_mismatch' | 'release_digest_mismatch'>> {
      const row = await repo.release(version);
      if (!row) return fail('release_not_found', `no release ${version}; upload its signed manifest first`);
      if (row.bundle_ready) return fail('release_exists', `the bundle of ${version} is already stored`);
      const part = `${bundlePath(version)}.part`;
      const out = createWriteStream(part);
      const hash = createHash('sha256');
      let size = 0;
      let tooBig = false;
      try {
        if (body) {
          const reader = body.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            size += value.length;
            if (size > row.size) {
              tooBig = true;
              await reader.cancel();
              break;
            }
            hash.update(value);
            if (!out.write(value)) await new Promise<void>((r) => out.once('drain', () => r()));
          }
        }
        await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
      } catch (e) {
        out.destroy();
        rmSync(part, { force: true });
        throw e;
      }
      if (tooBig || size !== row.size) {
        rmSync(part, { force: true });
        return fail('release_size_mismatch', `the bundle is ${tooBig ? 'larger than' : `${size} bytes, not`} the ${row.size} bytes its manifest signs`);
      }
      if (hash.digest('hex') !== row.digest) {
        rmSync(part, { force: true });
        return fail('release_digest_mismatch', 'the bundle does not match the SHA-256 digest its manifest signs');
      }
      renameSync(part, bundlePath(version));
      await repo.markBundleReady(version);
      return ok(true);
    },

    /** Starts a rollout of a stored release with its bundle. */
    async startRollout(req: RolloutRequest): Promise<Result<RolloutRow, 'release_not_found' | 'release_wrong_service' | 'validation_failed'>> {
      const row = await repo.release(req.version);
      if (!row || !row.bundle_ready) return fail('release_not_found', `release ${req.version} is not stored with its bundle`);
      if (req.serviceId && !(await forService(req.version, req.serviceId)))
        return fail('release_wrong_service', `release ${req.version} is for ${(await servicesOf(req.version)).join(', ')}, not ${req.serviceId}`);
      if (req.edges && req.edges.length === 0) return fail('validation_failed', 'name at least one edge, or none for the whole service');
      const id = await repo.insertRollout({
        version: req.version,
        service_id: req.serviceId ?? null,
        percent: req.percent ?? 100,
        edges: req.edges ? JSON.stringify([...new Set(req.edges)]) : null,
        max_failures: req.maxFailures ?? 1,
        now: deps.now(),
      });
      deps.log.info('rollout started', { rollout: id, version: req.version, percent: req.percent ?? 100 });
      return ok((await repo.rollout(id))!);
    },

    async halt(id: number, reason: string): Promise<Result<RolloutRow, 'rollout_not_found' | 'conflict'>> {
      const r = await repo.rollout(id);
      if (!r) return fail('rollout_not_found');
      if (!(await repo.setRolloutState(id, 'active', 'halted', reason, deps.now()))) return fail('conflict', `the rollout is ${r.state}`);
      return ok((await repo.rollout(id))!);
    },

    /** What an edge is offered: the newest active rollout that targets it, unless it already failed there. */
    async offer(edgeId: string, serviceId: string): Promise<UpdateOffer> {
      const mine = await repo.edge(edgeId);
      for (const r of await repo.activeRollouts()) {
        if (!rolloutTargets(r, edgeId, serviceId)) continue;
        const row = await repo.release(r.version);
        if (!row?.bundle_ready) continue;
        // An edge that refused or rolled back this rollout's release is not asked again (no boot loop).
        if (mine && mine.rollout_id === r.id && (FAILURE_STATES as readonly string[]).includes(mine.state)) return { release: null };
        if (mine?.running === r.version) return { release: null };
        if (!(await forService(r.version, serviceId))) continue;
        return { release: { version: r.version, signed: JSON.parse(row.signed) as SignedRelease, bundle: `/v1/device/releases/${r.version}/bundle`, rolloutId: r.id } };
      }
      return { release: null };
    },

    /** Records an edge's report and halts the rollout when its failures reach the threshold. */
    async report(edgeId: string, serviceId: string, rep: UpdateReport): Promise<EdgeUpdateRow> {
      const about = rep.version ?? rep.running;
      const rollout = (await repo.rollouts(1000)).find((r) => r.version === about && rolloutTargets(r, edgeId, serviceId));
      const row: EdgeUpdateRow = {
        edge_id: edgeId,
        running: rep.running,
        version: rep.version ?? null,
        rollout_id: rollout?.id ?? null,
        state: rep.state,
        code: rep.code ?? null,
        reason: rep.reason ?? null,
        updated_at: deps.now(),
      };
      await repo.upsertEdge(row);
      if (rollout && rollout.state === 'active' && (FAILURE_STATES as readonly string[]).includes(rep.state)) {
        const n = await repo.failures(rollout.id);
        if (n >= rollout.max_failures && (await repo.setRolloutState(rollout.id, 'active', 'halted', `${n} edge(s) failed (last: ${rep.code ?? rep.state})`, deps.now()))) {
          deps.log.warn('rollout halted: failures reached its threshold', { rollout: rollout.id, failures: n });
        }
      }
      return row;
    },

    /** Size of the stored bundle file (0 when missing). */
    bundleSize(version: string): number {
      try {
        return statSync(bundlePath(version)).size;
      } catch {
        return 0;
      }
    },
  };
}

export type Releases = ReturnType<typeof createReleases>;
