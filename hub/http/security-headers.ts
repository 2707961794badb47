// The security headers of every hub response: Hono's secureHeaders() defaults, written straight onto
// the Node response under @hono/node-server. Hono's middleware sets them after the handler on
// `c.res.headers`, which turns the adapter's plain response (status, body, a header object, written
// with one writeHead) into a WHATWG Headers object built and sorted per request: a few percent of a
// registration's CPU. Set on the ServerResponse before the handler, Node merges them into the
// handler's own writeHead (whose headers would win; no hub handler sets these). In-process requests
// (app.request, tests) have no Node response: Hono's middleware does it there, with the same values
// (test/hub/http/security-headers.test.ts compares the two).
import type { ServerResponse } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';

/** What secureHeaders() with its default options sets (hono/dist/middleware/secure-headers: HEADERS_MAP, DEFAULT_OPTIONS). */
export const SECURITY_HEADERS: readonly (readonly [string, string])[] = [
  ['Cross-Origin-Resource-Policy', 'same-origin'],
  ['Cross-Origin-Opener-Policy', 'same-origin'],
  ['Origin-Agent-Cluster', '?1'],
  ['Referrer-Policy', 'no-referrer'],
  ['Strict-Transport-Security', 'max-age=15552000; includeSubDomains'],
  ['X-Content-Type-Options', 'nosniff'],
  ['X-DNS-Prefetch-Control', 'off'],
  ['X-Download-Options', 'noopen'],
  ['X-Frame-Options', 'SAMEORIGIN'],
  ['X-Permitted-Cross-Domain-Policies', 'none'],
  ['X-XSS-Protection', '0'],
];

function outgoingOf(env: unknown): ServerResponse | undefined {
  const o = env !== null && typeof env === 'object' && 'outgoing' in env ? (env as { outgoing?: unknown }).outgoing : undefined;
  return o !== null && typeof o === 'object' && typeof (o as ServerResponse).setHeader === 'function' && !(o as ServerResponse).headersSent ? (o as ServerResponse) : undefined;
}

export function securityHeaders(): MiddlewareHandler {
  const inProcess = secureHeaders();
  return async (c, next) => {
    const outgoing = outgoingOf(c.env);
    if (!outgoing) return inProcess(c, next);
    for (const [name, value] of SECURITY_HEADERS) outgoing.setHeader(name, value);
    // secureHeaders' removePoweredBy: nothing in the hub sets X-Powered-By; kept off the wire all the same.
    outgoing.removeHeader('X-Powered-By');
    await next();
  };
}
