// Redemption of one-time enrollment tokens: a technician's provisioning script sends the token, the
// edge id and the edge's CSR, and gets the device certificate from the hub's device CA. Served on the
// device listener only (hub/http/app.ts createDeviceApp), over TLS whose device CA the script pinned
// by fingerprint before sending the token; no client certificate is needed (the token is the
// credential). Rate-limited.
import type { Env, Hono } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { EnrollmentRequest, EnrollmentResponse } from '../../shared/device-api.ts';
import { createEnrollmentTokens, type EnrollmentTokens } from './tokens.ts';
import { csrDerOf, CSR_PEM_MISSING, type DeviceEnrollment } from './device-enrollment.ts';
import type { ConsoleRepo } from '../store/console-repo.ts';
import type { LinkRepo } from '../store/link-repo.ts';
import type { OpenApi } from '../http/openapi.ts';
import { problem } from '../http/problem.ts';
import { rateLimit, type RateLimitOptions } from '../http/rate-limit.ts';
import { createRouter, type BodyLimit } from '../http/router.ts';

export interface EnrollmentRoutesDeps extends BodyLimit {
  consoleRepo: ConsoleRepo;
  linkRepo: LinkRepo;
  /**
   * Device enrollment (device CA + device repo), or a getter for it (the hub opens its device CA in
   * `start()`); while there is none, redemption answers 503 unavailable.
   */
  enrollment?: DeviceEnrollment | (() => DeviceEnrollment | undefined);
  /** Defaults to a token service over `consoleRepo`. */
  tokens?: EnrollmentTokens;
  deviceCertValidityDays?: number;
  /** Where an enrolled edge connects (mqtts://...); a getter when known only after start. */
  brokerUrl?: string | (() => string | undefined);
  /** Further broker URLs (the other nodes of a broker cluster) the edge fails over to. */
  brokerUrls?: readonly string[];
  /** The hub's device API base URL; a getter when known only after start. */
  hubUrl?: string | (() => string | undefined);
  /** The release public key told to enrolled edges (signed updates), if any. */
  releaseKey?: string;
  /** Defaults: 1 per second per address, burst 10. */
  rateLimit?: RateLimitOptions;
  now?: () => number;
}

function clientAddress(c: Parameters<typeof getConnInfo>[0]): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'local';
  }
}

export function mountEnrollmentRoutes<E extends Env>(app: Hono<E>, api: OpenApi, deps: EnrollmentRoutesDeps): void {
  const now = deps.now ?? Date.now;
  const tokens = deps.tokens ?? createEnrollmentTokens({ repo: deps.consoleRepo, now });
  const r = createRouter(api, {}, { maxBodyBytes: deps.maxBodyBytes });

  r.route(
    {
      method: 'post',
      path: '/v1/enrollments',
      tag: 'Provisioning',
      auth: 'public',
      body: EnrollmentRequest,
      rateLimit: rateLimit({ perSecond: 1, burst: 10, ...deps.rateLimit, scope: 'enrollment' }),
      summary: 'Redeem a one-time enrollment token for a device certificate',
      description: 'The token was issued in the operator console for one service and one edge id. It works once, until it expires; a failed certificate issue (bad CSR) leaves it unused.',
      responses: { 201: { description: 'the device certificate and where to connect', schema: EnrollmentResponse } },
      errors: [
        'enrollment_token_invalid',
        'enrollment_token_expired',
        'enrollment_token_used',
        'csr_invalid',
        'forbidden',
        'unavailable',
        'edge_enrolled_elsewhere',
        'edge_service_move',
        'device_reenroll_revoked',
        'device_ca_retired',
      ],
    },
    async (c) => {
      const b = c.get('body');
      const enrollment = typeof deps.enrollment === 'function' ? deps.enrollment() : deps.enrollment;
      if (!enrollment) return problem(c, 'unavailable', 'device enrollment is not available on this hub yet');
      const csrDer = csrDerOf(b.csrPem);
      if (!csrDer) return problem(c, 'csr_invalid', CSR_PEM_MISSING);
      const claimed = await tokens.claim(b.token, b.edgeId);
      const address = clientAddress(c);
      if (!claimed.ok) {
        await deps.consoleRepo.audit({ at: now(), actor: `edge:${b.edgeId}`, action: 'enrollment.redeem', target: b.token.slice(0, 17), outcome: claimed.code, detail: { address } });
        return problem(c, claimed.code, claimed.message);
      }
      const { row, claimedAt } = claimed.value;
      const service = await deps.linkRepo.service(row.service_id);
      if (!service || service.status !== 'active') {
        await tokens.release(row.id, claimedAt);
        return problem(c, 'forbidden', `service ${row.service_id} is not active`);
      }
      let r: Awaited<ReturnType<DeviceEnrollment['enroll']>>;
      try {
        r = await enrollment.enroll(csrDer, { edgeId: row.edge_id, serviceId: row.service_id, validityDays: deps.deviceCertValidityDays ?? 365, allowRevoked: row.allow_revoked === 1 });
      } catch (e) {
        await tokens.release(row.id, claimedAt);
        throw e;
      }
      // The redemption of a claimed token: refused with its code, or done (with the certificate's serial prefix).
      const redeemed = (outcome: string | undefined, detail: Record<string, string> = {}) =>
        deps.consoleRepo.audit({ at: now(), actor: `edge:${row.edge_id}`, action: 'enrollment.redeem', target: `mket_${row.id}`, service_id: row.service_id, outcome, detail: { address, ...detail } });
      if (!r.ok) {
        await tokens.release(row.id, claimedAt);
        await redeemed(r.code);
        return problem(c, r.code, r.message);
      }
      await redeemed(undefined, { certSerial: r.value.serialHex.slice(0, 8), issuedBy: row.created_by });
      const brokerUrl = typeof deps.brokerUrl === 'function' ? deps.brokerUrl() : deps.brokerUrl;
      const hubUrl = typeof deps.hubUrl === 'function' ? deps.hubUrl() : deps.hubUrl;
      const body: EnrollmentResponse = {
        certPem: r.value.certPem,
        caPem: r.value.caPem,
        serviceId: row.service_id,
        edgeId: row.edge_id,
        notAfter: r.value.notAfter.toISOString(),
        ...(brokerUrl ? { brokerUrl } : {}),
        ...(deps.brokerUrls?.length ? { brokerUrls: [...deps.brokerUrls] } : {}),
        ...(hubUrl ? { hubUrl } : {}),
        ...(deps.releaseKey ? { releaseKey: deps.releaseKey } : {}),
      };
      return c.json(body, 201, { 'cache-control': 'no-store' });
    },
  );
  r.mount(app);
}
