// Who may talk to the home companion. It listens on loopback only, yet every web page the holder
// opens could send requests to it, so:
// - Host: only the loopback names it is served under, with its port (DNS rebinding, RFC 9110 7.2);
// - Origin: the companion's own page, or the hub's configured origin; nothing else (RFC 6454 7);
// - a per-session token: the printed link carries it once and trades it for an HttpOnly,
//   SameSite=Strict cookie (the kiosk page's mechanism, edge/kiosk/request-guard.ts); the page gets
//   it once more in its HTML and sends it in a header with every API call, a header no other site
//   can set without a CORS preflight that only the hub's origin passes. The hub's page, which has no
//   cookie, calls with the header alone.
import { createHash, timingSafeEqual } from 'node:crypto';
import { guardRequest, parseHostHeader, type GuardRequest } from '../kiosk/request-guard.ts';
import type { ErrorCode } from '../../shared/errors.ts';

/** The header that carries the session token on API calls. */
export const HOLDER_TOKEN_HEADER = 'x-mykey-holder-token';
/** Loopback names a browser may use for the companion. */
export const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '::1']);

export type HolderGuardCode = Extract<ErrorCode, 'holder_host_refused' | 'holder_origin_refused' | 'holder_token_required' | 'holder_token_invalid'>;

export type HolderVerdict = { ok: true; setCookie?: string; redirectTo?: string; corsOrigin?: string; preflight?: boolean } | { ok: false; status: number; code: HolderGuardCode; message: string };

export interface HolderPolicy {
  port: number;
  token: string;
  /** The hub's origin (https://hub.example.jp), the only foreign origin let in. */
  hubOrigin: string;
}

const KIOSK_TO_HOLDER: Record<string, HolderGuardCode> = {
  kiosk_host_refused: 'holder_host_refused',
  kiosk_origin_refused: 'holder_origin_refused',
  kiosk_token_required: 'holder_token_required',
  kiosk_token_invalid: 'holder_token_invalid',
};

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function sameSecret(a: string, b: string): boolean {
  const d = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(d(a), d(b));
}

/** Checks one request; pure over the request's method, target and headers. */
export function guardHolderRequest(req: GuardRequest, policy: HolderPolicy): HolderVerdict {
  const isApi = new URL(req.url, 'http://holder').pathname.startsWith('/api/');
  const origin = single(req.headers.origin);
  const fromHub = origin !== undefined && origin === policy.hubOrigin;
  if (fromHub) {
    // The hub's page: Host still checked, then the token header (the preflight carries none).
    const hostHeader = single(req.headers.host);
    const host = hostHeader === undefined ? undefined : parseHostHeader(hostHeader);
    if (!host || !LOOPBACK_HOSTS.has(host.name) || host.port !== policy.port) {
      return { ok: false, status: 403, code: 'holder_host_refused', message: 'this companion is not served under that host name' };
    }
    if (!isApi) return { ok: false, status: 403, code: 'holder_origin_refused', message: "the hub's page may call the API only" };
    if (req.method === 'OPTIONS') return { ok: true, corsOrigin: origin, preflight: true };
    return tokenHeader(req, policy, origin);
  }
  const v = guardRequest(req, { hosts: LOOPBACK_HOSTS, port: policy.port, token: policy.token });
  if (!v.ok) return { ok: false, status: v.status, code: KIOSK_TO_HOLDER[v.code]!, message: v.message };
  if (!isApi) return v;
  return tokenHeader(req, policy, undefined);
}

function tokenHeader(req: GuardRequest, policy: HolderPolicy, corsOrigin: string | undefined): HolderVerdict {
  const t = single(req.headers[HOLDER_TOKEN_HEADER]);
  if (t === undefined) return { ok: false, status: 401, code: 'holder_token_required', message: `API calls carry the session token in ${HOLDER_TOKEN_HEADER}` };
  if (!sameSecret(t, policy.token)) return { ok: false, status: 403, code: 'holder_token_invalid', message: 'wrong session token' };
  return corsOrigin ? { ok: true, corsOrigin } : { ok: true };
}
