// Bearer authentication for the operator (admin) API and the services' business systems: the
// `operator` and `service` auth kinds of hub/http/router.ts (device certificates: device-auth.ts).
import type { MiddlewareHandler } from 'hono';
import { createHash, timingSafeEqual } from 'node:crypto';
import { problem } from './problem.ts';
import type { AuthVariables, HubEnv } from './router.ts';

function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return m?.[1];
}

/** Operator API: a configured admin token (empty disables the admin API). */
export function adminAuth(token: () => string): MiddlewareHandler {
  return async (c, next) => {
    const expected = token();
    const got = bearer(c.req.header('authorization'));
    if (!expected) return problem(c, 'forbidden', 'the admin API is disabled (set admin.token)');
    const a = createHash('sha256').update(expected).digest();
    const b = createHash('sha256')
      .update(got ?? '')
      .digest();
    if (!got || !timingSafeEqual(a, b)) return problem(c, 'unauthorized', 'a valid admin bearer token is required', undefined, { 'www-authenticate': 'Bearer' });
    await next();
  };
}

/** Service API: the token must belong to the service named in the path. */
export function serviceAuth(
  authenticate: (token: string) => Promise<{ serviceId: string; credentialId: string } | undefined>,
): MiddlewareHandler<{ Bindings: HubEnv['Bindings']; Variables: AuthVariables['service'] }> {
  return async (c, next) => {
    const token = bearer(c.req.header('authorization'));
    const who = token ? await authenticate(token) : undefined;
    if (!who) return problem(c, 'unauthorized', 'a valid service API token is required', undefined, { 'www-authenticate': 'Bearer' });
    if (who.serviceId !== c.req.param('serviceId')) return problem(c, 'forbidden', 'this token belongs to another service');
    c.set('credentialId', who.credentialId);
    await next();
  };
}
