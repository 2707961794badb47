// The hub's two Hono apps, one per listener, so that nothing answers on a listener it was not meant
// for: the public app (holders, services' business systems, the operator API and console, behind
// the plain HTTP listener or a TLS-terminating proxy) and the device app (the device API and
// enrollment redemption, behind the device mutual-TLS listener). Each has its own OpenAPI document,
// the common middleware and problem JSON for every error.
import { Hono } from 'hono';
import { securityHeaders } from './security-headers.ts';
import { createOpenApi, DEVICE_SCHEMAS, PUBLIC_SCHEMAS, type OpenApi } from './openapi.ts';
import { errorHandler, problem } from './problem.ts';
import { mountMyKeyRoutes, type MyKeyRoutesDeps } from './mykey-routes.ts';
import { mountLinksRoutes, type LinksRoutesDeps } from './links-routes.ts';
import { mountDeviceRoutes, type DeviceRoutesDeps } from './device-routes.ts';
import { mountEnrollmentRoutes, type EnrollmentRoutesDeps } from '../enrollment/redeem-routes.ts';
import { accessLog, type AccessLogOptions } from '../metrics/access-log.ts';
import { mountScrapeRoute, type ScrapeRouteDeps } from '../metrics/scrape-route.ts';
import { mountReleaseDeviceRoutes, mountReleaseRoutes, type ReleaseDeviceRoutesDeps, type ReleaseRoutesDeps } from '../releases/routes.ts';
import { mountLinkageRoutes, type LinkageRoutesDeps } from '../linkage/routes.ts';

interface CommonDeps {
  version: string;
  maxBodyBytes?: number;
  log: (msg: string, err?: unknown) => void;
  /** The access log and HTTP metrics (hub/metrics/access-log.ts). */
  accessLog?: AccessLogOptions;
}

export interface PublicAppDeps extends CommonDeps, MyKeyRoutesDeps, Omit<LinksRoutesDeps, 'rateLimits'> {
  rateLimits: MyKeyRoutesDeps['rateLimits'] & LinksRoutesDeps['rateLimits'];
  health: () => Promise<Record<string, unknown>>;
  /** GET /metrics for a Prometheus scraper (hub/metrics/scrape-route.ts). */
  metrics?: ScrapeRouteDeps;
  /** Signed edge releases and rollouts (operator API). */
  releases?: ReleaseRoutesDeps;
  /** Certificate linkage file imports (operator API, hub/linkage). */
  linkage?: LinkageRoutesDeps;
}

export interface DeviceAppDeps extends CommonDeps, Omit<DeviceRoutesDeps, 'lifecycle'> {
  /**
   * One-time enrollment token redemption (POST /v1/enrollments); its device enrollment, audit log
   * and certificate validity also serve the device's self-revocation and rotation.
   */
  enrollments?: EnrollmentRoutesDeps;
  /** Update offers, bundles and reports. */
  releases?: Omit<ReleaseDeviceRoutesDeps, 'resolveDevice'>;
}

// The body size limit (deps.maxBodyBytes) is enforced where bodies are read (http/validate.ts),
// without building a WHATWG Request per request: each route set gets it with its deps.
function baseApp(deps: CommonDeps, title: string, description: string, schemas: typeof PUBLIC_SCHEMAS): { app: Hono; api: OpenApi } {
  const app = new Hono();
  const api = createOpenApi({ title, version: deps.version, description }, schemas);
  if (deps.accessLog) app.use('*', accessLog(deps.accessLog));
  app.use('*', securityHeaders());
  app.onError(errorHandler(deps.log));
  app.notFound((c) => problem(c, 'not_found', `no route ${c.req.method} ${c.req.path}`));
  return { app, api };
}

/** The public app: holders' routes, the services' API, the operator API (the console mounts on it too). */
export function createPublicApp(deps: PublicAppDeps): Hono {
  const { app, api } = baseApp(
    deps,
    'MyKey Platform hub',
    'JPKI-backed MyKey IDs, service links and revocation. Errors are problem JSON (RFC 9457) with a stable `code`. The device API and enrollment redemption are served on the device listener only (mutual TLS), with their own document.',
    PUBLIC_SCHEMAS,
  );
  app.get('/healthz', async (c) => c.json({ ok: true, version: deps.version, ...(await deps.health()) }));
  mountMyKeyRoutes(app, api, deps);
  mountLinksRoutes(app, api, deps);
  if (deps.metrics) mountScrapeRoute(app, deps.metrics);
  if (deps.releases) mountReleaseRoutes(app, api, { maxBodyBytes: deps.maxBodyBytes, ...deps.releases });
  if (deps.linkage) mountLinkageRoutes(app, api, deps.linkage);
  app.get('/openapi.json', (c) => c.json(api.document()));
  return app;
}

/**
 * The device app, served only on the device listener (HTTPS that requests a client certificate from
 * the device CA). Device routes demand a verified device certificate themselves (device-routes.ts);
 * enrollment redemption is the one route without one: the technician's tool has no certificate yet
 * and authenticates with the one-time token, over TLS whose CA it pinned by fingerprint.
 */
export function createDeviceApp(deps: DeviceAppDeps): Hono {
  const { app, api } = baseApp(
    deps,
    'MyKey Platform hub: device API',
    'What enrolled edges ask the hub over mutual TLS with their device certificate, and enrollment redemption. Errors are problem JSON (RFC 9457) with a stable `code`.',
    DEVICE_SCHEMAS,
  );
  // Liveness only: counts and other details stay on the operator's side.
  app.get('/healthz', (c) => c.json({ ok: true, version: deps.version }));
  const e = deps.enrollments;
  mountDeviceRoutes(app, api, {
    ...deps,
    lifecycle: e && {
      enrollment: () => (typeof e.enrollment === 'function' ? e.enrollment() : e.enrollment),
      audit: async (entry) => void (await e.consoleRepo.audit(entry).catch((err) => deps.log('an audit entry could not be written', err))),
      certValidityDays: e.deviceCertValidityDays,
      now: e.now,
    },
  });
  if (e) mountEnrollmentRoutes(app, api, { maxBodyBytes: deps.maxBodyBytes, ...e });
  if (deps.releases) mountReleaseDeviceRoutes(app, api, { maxBodyBytes: deps.maxBodyBytes, ...deps.releases, resolveDevice: deps.resolveDevice });
  app.get('/openapi.json', (c) => c.json(api.document()));
  return app;
}
