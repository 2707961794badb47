// The hub's Hono app: common middleware, one router per feature, OpenAPI, problem JSON for every error.
import { Hono } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { createOpenApi } from './openapi.ts';
import { errorHandler, problem } from './problem.ts';
import { mountMyKeyRoutes, type MyKeyRoutesDeps } from './mykey-routes.ts';
import { mountLinksRoutes, type LinksRoutesDeps } from './links-routes.ts';
import { mountDeviceRoutes, type DeviceRoutesDeps } from './device-routes.ts';
import { mountEnrollmentRoutes, type EnrollmentRoutesDeps } from './enrollment-routes.ts';

export interface AppDeps extends MyKeyRoutesDeps, Omit<LinksRoutesDeps, 'rateLimits'>, Omit<DeviceRoutesDeps, 'rateLimits'> {
  version: string;
  maxBodyBytes?: number;
  log: (msg: string, err?: unknown) => void;
  health: () => Record<string, unknown>;
  /** One-time enrollment token redemption (POST /v1/enrollments). */
  enrollments?: EnrollmentRoutesDeps;
}

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  const api = createOpenApi({
    title: 'MyKey Platform hub',
    version: deps.version,
    description: 'JPKI-backed MyKey IDs, service links and revocation. Errors are problem JSON (RFC 9457) with a stable `code`.',
  });
  app.use('*', secureHeaders());
  // The body size limit is enforced where bodies are read (http/validate.ts), without building a
  // WHATWG Request per request; this only passes the configured limit down.
  app.use('*', async (c, next) => {
    c.set('maxBodyBytes' as never, (deps.maxBodyBytes ?? 64 * 1024) as never);
    await next();
  });
  app.onError(errorHandler(deps.log));
  app.notFound((c) => problem(c, 'not_found', `no route ${c.req.method} ${c.req.path}`));

  app.get('/healthz', (c) => c.json({ ok: true, version: deps.version, ...deps.health() }));
  mountMyKeyRoutes(app, api, deps);
  mountLinksRoutes(app, api, deps);
  mountDeviceRoutes(app, api, deps);
  if (deps.enrollments) mountEnrollmentRoutes(app, api, deps.enrollments);
  app.get('/openapi.json', (c) => c.json(api.document()));
  return app;
}
