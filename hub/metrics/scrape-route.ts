// GET /metrics on the hub's public app, for a Prometheus scraper holding the dedicated scrape token
// (metrics.token). Not the operator token: the scraper keeps its credential in a file on another
// machine, and that file should let its reader see aggregate numbers, not revoke edges or change
// services. Not a separate listener either: the public app already sits behind the operator's TLS
// proxy. An empty metrics.token turns the route off (404, as for any route that is not there).
import type { Env, Hono } from 'hono';
import { createHash, timingSafeEqual } from 'node:crypto';
import { problem } from '../http/problem.ts';

export interface ScrapeRouteDeps {
  token: () => string;
  scrape: () => Promise<{ contentType: string; body: string }>;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function mountScrapeRoute<E extends Env>(app: Hono<E>, deps: ScrapeRouteDeps): void {
  app.get('/metrics', async (c) => {
    const expected = deps.token();
    if (!expected) return problem(c, 'not_found', 'no route GET /metrics (set metrics.token to serve it)');
    const got = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
    if (!got || !timingSafeEqual(digest(expected), digest(got))) {
      return problem(c, 'unauthorized', 'a valid metrics bearer token is required', undefined, { 'www-authenticate': 'Bearer' });
    }
    const { contentType, body } = await deps.scrape();
    return c.body(body, 200, { 'content-type': contentType, 'cache-control': 'no-store' });
  });
}
