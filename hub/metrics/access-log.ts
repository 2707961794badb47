// The hub's HTTP access log, a middleware on both apps: method, route PATTERN (the path of a holder
// or service route holds identifiers: `/v1/services/:serviceId/links/:serviceUserId`, never its
// values), status and duration. No query string, no body, no client address, no certificate
// subject. Scrapes and health checks go to debug, so they do not drown the rest.
import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Logger } from '../../shared/log.ts';

/**
 * The pattern of the route whose handler answered, read after `next()` (Hono leaves routeIndex at
 * the last handler it dispatched), or `unmatched` when only catch-all middleware ran (a 404).
 */
export function routePattern(c: Context): string {
  const p = routePath(c);
  return p === '' || p === '*' || p === '/*' ? 'unmatched' : p;
}

const QUIET = new Set(['/metrics', '/healthz']);

export interface AccessLogOptions {
  /** Which listener: `public` or `device`. */
  app: string;
  log?: Logger;
  /** Also told of every request (the HTTP metrics). */
  observe?: (app: string, method: string, route: string, status: number, seconds: number) => void;
}

export function accessLog({ app, log, observe }: AccessLogOptions): MiddlewareHandler {
  return async (c, next) => {
    const t0 = performance.now();
    try {
      await next();
    } finally {
      const seconds = (performance.now() - t0) / 1000;
      const route = routePattern(c);
      const status = c.res.status;
      const method = c.req.method;
      observe?.(app, method, route, status, seconds);
      const fields = { app, method, route, status, durationMs: Math.round(seconds * 10_000) / 10 };
      if (QUIET.has(route)) log?.debug('request', fields);
      else log?.info('request', fields);
    }
  };
}
