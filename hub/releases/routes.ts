// Release routes. Operator API (public listener, admin bearer token): upload a signed release and its
// bundle, start, list and halt rollouts, see each edge's version and update state. Device API (mutual
// TLS): the release offered to the calling edge, its bundle with HTTP Range (RFC 9110 14) so a cut
// download resumes, and the edge's update report.
import type { Context, Env, Hono } from 'hono';
import { Type } from '@sinclair/typebox';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { EDGE_ID_PATTERN, SERVICE_ID_PATTERN } from '../../shared/ids.ts';
import { RELEASE_VERSION_PATTERN, SignedRelease, UpdateOffer, UpdateReport, isReleaseVersion } from '../../shared/release.ts';
import { adminAuth } from '../http/auth.ts';
import { deviceAuth, type DeviceResolver } from '../http/device-auth.ts';
import type { OpenApi } from '../http/openapi.ts';
import { problem } from '../http/problem.ts';
import { createRouter, type BodyLimit } from '../http/router.ts';
import type { ReleaseRepo } from '../store/release-repo.ts';
import type { Releases } from './releases.ts';

export const RolloutRequest = Type.Object(
  {
    version: Type.String({ pattern: RELEASE_VERSION_PATTERN }),
    serviceId: Type.Optional(Type.String({ pattern: SERVICE_ID_PATTERN, description: 'only edges of this service; absent: every service the release is for' })),
    percent: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'share of the targeted edges (stable per edge)' })),
    edges: Type.Optional(Type.Array(Type.String({ pattern: EDGE_ID_PATTERN }), { minItems: 1, maxItems: 1000, description: 'only these edges' })),
    maxFailures: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'halt after this many edges refused or rolled back (default 1)' })),
  },
  { additionalProperties: false },
);

export interface ReleaseRoutesDeps extends BodyLimit {
  releases: Releases;
  repo: ReleaseRepo;
  adminToken: () => string;
}

export interface ReleaseDeviceRoutesDeps extends BodyLimit {
  releases: Releases;
  resolveDevice: DeviceResolver;
}

async function rolloutView(repo: ReleaseRepo, id: number) {
  const r = await repo.rollout(id);
  if (!r) return undefined;
  return {
    id: r.id,
    version: r.version,
    serviceId: r.service_id,
    percent: r.percent,
    edges: r.edges ? (JSON.parse(r.edges) as string[]) : null,
    maxFailures: r.max_failures,
    state: r.state,
    haltedReason: r.halted_reason,
    failures: await repo.failures(r.id),
    edgeStates: (await repo.edgesOfRollout(r.id)).map((e) => ({ edgeId: e.edge_id, running: e.running, state: e.state, code: e.code, reason: e.reason, at: new Date(e.updated_at).toISOString() })),
  };
}

/** Operator routes (public app). */
export function mountReleaseRoutes<E extends Env>(app: Hono<E>, api: OpenApi, deps: ReleaseRoutesDeps): void {
  const r = createRouter(api, { operator: adminAuth(deps.adminToken) }, { maxBodyBytes: deps.maxBodyBytes });
  const tag = 'Operator';
  const version = (c: Context) => {
    const v = c.req.param('version');
    return isReleaseVersion(v) ? v : undefined;
  };

  r.route(
    {
      method: 'post',
      path: '/v1/admin/releases',
      tag,
      auth: 'operator',
      summary: 'Store a signed release manifest (verified against releases.publicKeys); the bundle follows',
      body: SignedRelease,
      responses: { 201: { description: 'stored' } },
      errors: ['release_manifest_invalid', 'release_signature_invalid', 'release_exists'],
    },
    async (c) => {
      const res = await deps.releases.add(c.get('body'));
      if (!res.ok) return problem(c, res.code, res.message);
      return c.json({ version: res.value.version, digest: res.value.digest, size: res.value.size, services: res.value.services }, 201);
    },
  );

  r.route(
    {
      method: 'put',
      path: '/v1/admin/releases/{version}/bundle',
      tag,
      auth: 'operator',
      summary: 'Upload the bundle (application/octet-stream); kept only when it matches the signed digest and size',
      responses: { 204: { description: 'stored' } },
      errors: ['release_not_found', 'release_exists', 'release_size_mismatch', 'release_digest_mismatch'],
    },
    async (c) => {
      const v = version(c);
      if (!v) return problem(c, 'release_not_found', 'not a release version');
      const res = await deps.releases.putBundle(v, c.req.raw.body);
      if (!res.ok) return problem(c, res.code, res.message);
      return c.body(null, 204);
    },
  );

  r.route({ method: 'get', path: '/v1/admin/releases', tag, auth: 'operator', summary: 'Stored releases', responses: { 200: { description: 'releases' } } }, async (c) =>
    c.json(
      (await deps.repo.releases()).map((x) => ({
        version: x.version,
        keyId: x.key_id,
        digest: x.digest,
        size: x.size,
        services: JSON.parse(x.services) as string[],
        bundleReady: x.bundle_ready === 1,
        uploadedAt: new Date(x.uploaded_at).toISOString(),
      })),
    ),
  );

  r.route(
    {
      method: 'post',
      path: '/v1/admin/rollouts',
      tag,
      auth: 'operator',
      summary: 'Roll a release out to a service, a share of its edges, or named edges',
      body: RolloutRequest,
      responses: { 201: { description: 'the rollout' } },
      errors: ['release_not_found', 'release_wrong_service'],
    },
    async (c) => {
      const res = await deps.releases.startRollout(c.get('body'));
      if (!res.ok) return problem(c, res.code, res.message);
      return c.json(await rolloutView(deps.repo, res.value.id), 201);
    },
  );

  r.route({ method: 'get', path: '/v1/admin/rollouts', tag, auth: 'operator', summary: "Rollouts, newest first, with each edge's state", responses: { 200: { description: 'rollouts' } } }, async (c) =>
    c.json(await Promise.all((await deps.repo.rollouts()).map((x) => rolloutView(deps.repo, x.id)))),
  );

  r.route(
    {
      method: 'get',
      path: '/v1/admin/rollouts/{id}',
      tag,
      auth: 'operator',
      summary: "One rollout with each edge's version and update state",
      responses: { 200: { description: 'the rollout' } },
      errors: ['rollout_not_found'],
    },
    async (c) => {
      const v = await rolloutView(deps.repo, Number(c.req.param('id')));
      return v ? c.json(v) : problem(c, 'rollout_not_found');
    },
  );

  r.route(
    {
      method: 'post',
      path: '/v1/admin/rollouts/{id}/halt',
      tag,
      auth: 'operator',
      summary: 'Halt a rollout: no edge is offered its release any more',
      responses: { 200: { description: 'halted' } },
      errors: ['rollout_not_found', 'conflict'],
    },
    async (c) => {
      const res = await deps.releases.halt(Number(c.req.param('id')), 'halted by an operator');
      if (!res.ok) return problem(c, res.code, res.message);
      return c.json(await rolloutView(deps.repo, res.value.id));
    },
  );

  r.route(
    { method: 'get', path: '/v1/admin/edge-updates', tag, auth: 'operator', summary: "Every edge's running version and last update state", responses: { 200: { description: 'edges' } } },
    async (c) =>
      c.json(
        (await deps.repo.edges()).map((e) => ({
          edgeId: e.edge_id,
          running: e.running,
          version: e.version,
          rolloutId: e.rollout_id,
          state: e.state,
          code: e.code,
          reason: e.reason,
          at: new Date(e.updated_at).toISOString(),
        })),
      ),
  );
  r.mount(app);
}

/** RFC 9110 14.1.2: one `bytes=first-[last]` range; undefined when absent, 'bad' when unsatisfiable. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | 'bad' {
  if (!header) return undefined;
  const m = /^bytes=(\d{1,15})-(\d{0,15})$/.exec(header.trim());
  if (!m) return 'bad';
  const start = Number(m[1]);
  const end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
  if (start >= size || end < start) return 'bad';
  return { start, end };
}

/** Device routes (device app). */
export function mountReleaseDeviceRoutes<E extends Env>(app: Hono<E>, api: OpenApi, deps: ReleaseDeviceRoutesDeps): void {
  const r = createRouter(api, { device: deviceAuth(deps.resolveDevice) }, { maxBodyBytes: deps.maxBodyBytes });
  const tag = 'Device';

  r.route(
    { method: 'get', path: '/v1/device/update', tag, auth: 'device', summary: 'The signed release offered to this edge, if any', responses: { 200: { description: 'offer', schema: UpdateOffer } } },
    async (c) => {
      const d = c.get('device');
      return c.json(await deps.releases.offer(d.edgeId, d.serviceId));
    },
  );

  r.route(
    {
      method: 'post',
      path: '/v1/device/update',
      tag,
      auth: 'device',
      summary: "The edge's update state (what it runs, what it did with the release and why)",
      body: UpdateReport,
      responses: { 204: { description: 'recorded' } },
    },
    async (c) => {
      const d = c.get('device');
      await deps.releases.report(d.edgeId, d.serviceId, c.get('body'));
      return c.body(null, 204);
    },
  );

  r.route(
    {
      method: 'get',
      path: '/v1/device/releases/{version}/bundle',
      tag,
      auth: 'device',
      summary: 'A release bundle; Range: bytes=N- resumes a cut download (206)',
      responses: { 200: { description: 'the bundle' }, 206: { description: 'part of the bundle' } },
      errors: ['release_not_found', 'range_not_satisfiable'],
    },
    (c) => {
      const v = c.req.param('version');
      const size = isReleaseVersion(v) ? deps.releases.bundleSize(v) : 0;
      if (!size) return problem(c, 'release_not_found');
      const range = parseRange(c.req.header('range'), size);
      if (range === 'bad') return problem(c, 'range_not_satisfiable', `the bundle has ${size} bytes`, undefined, { 'content-range': `bytes */${size}` });
      const { start, end } = range ?? { start: 0, end: size - 1 };
      const body = Readable.toWeb(createReadStream(deps.releases.bundlePath(v as string), { start, end })) as ReadableStream<Uint8Array>;
      const headers: Record<string, string> = { 'content-type': 'application/x-tar', 'content-length': String(end - start + 1), 'accept-ranges': 'bytes' };
      if (range) headers['content-range'] = `bytes ${start}-${end}/${size}`;
      return new Response(body, { status: range ? 206 : 200, headers });
    },
  );
  r.mount(app);
}
