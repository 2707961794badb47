// Who may talk to the kiosk page. Pure checks over request headers, run before any route:
// - Host: a page on evil.example whose name is made to resolve to 127.0.0.1 (DNS rebinding) reaches
//   this server with `Host: evil.example:<port>`; only the names and addresses the page is really
//   served under are accepted (RFC 9110 7.2: Host carries the authority the client asked for).
// - Origin / Sec-Fetch-Site: a browser names the page that started a request (RFC 6454 7, Fetch
//   metadata); anything not from this very origin is refused, for EventSource, WebSocket upgrades
//   and POSTs alike.
// - Token: beyond loopback anyone on the LAN could open the page and drive registration; there a
//   token is required, carried in the URL once and then in an HttpOnly, SameSite=Strict cookie.
import { timingSafeEqual, createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { ErrorCode } from '../../shared/errors.ts';

/** Largest form or JSON body the edge's local pages (kiosk, holder) accept. */
export const MAX_BODY_BYTES = 1024;

/**
 * Headers on every answer of the edge's local pages: only their own script, style and connections
 * (CSP), never framed, no MIME sniffing, no referrer, nothing cached.
 */
export const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** The cookie that carries the kiosk token after the first visit. */
export const KIOSK_TOKEN_COOKIE = 'mykey_kiosk';
/** The query parameter that carries the kiosk token once. */
export const KIOSK_TOKEN_PARAM = 'token';

export type GuardVerdict =
  | { ok: true; setCookie?: string; redirectTo?: string }
  | { ok: false; status: number; code: Extract<ErrorCode, 'kiosk_host_refused' | 'kiosk_origin_refused' | 'kiosk_token_required' | 'kiosk_token_invalid'>; message: string };

export interface GuardPolicy {
  /** Lower-case host names or addresses (IPv6 without brackets) the page is served under. */
  hosts: ReadonlySet<string>;
  /** The listening port. */
  port: number;
  /** The token every request must carry; undefined when none is needed (loopback only). */
  token?: string;
}

export interface GuardRequest {
  method: string;
  /** The request target, path and query. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

/** True for 127.0.0.0/8, ::1 and `localhost`: only this machine can reach such a binding. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h.startsWith('::ffff:127.');
}

/** Splits a Host header into a lower-case name (IPv6 unbracketed) and a port; undefined when malformed. */
export function parseHostHeader(value: string): { name: string; port: number | undefined } | undefined {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/i.exec(value.trim());
  if (!m) return undefined;
  const name = m[1]!.toLowerCase().replace(/^\[|\]$/g, '');
  return { name, port: m[2] === undefined ? undefined : Number(m[2]) };
}

/** Checks one request; an ok verdict may ask to set the token cookie and redirect away from the token URL. */
export function guardRequest(req: GuardRequest, policy: GuardPolicy): GuardVerdict {
  const hostHeader = single(req.headers.host);
  const host = hostHeader === undefined ? undefined : parseHostHeader(hostHeader);
  if (!host || !policy.hosts.has(host.name) || (host.port ?? 80) !== policy.port) {
    return { ok: false, status: 403, code: 'kiosk_host_refused', message: 'this page is not served under that host name' };
  }
  const origin = single(req.headers.origin);
  // Fetch metadata: a browser marks requests started by another site even where it leaves Origin out.
  const site = single(req.headers['sec-fetch-site']);
  if ((origin !== undefined && origin.toLowerCase() !== `http://${hostHeader!.toLowerCase()}`) || site === 'cross-site') {
    return { ok: false, status: 403, code: 'kiosk_origin_refused', message: 'cross-origin request' };
  }
  if (policy.token === undefined) return { ok: true };

  const url = new URL(req.url, 'http://kiosk');
  const fromUrl = url.searchParams.get(KIOSK_TOKEN_PARAM);
  if (fromUrl !== null) {
    if (req.method !== 'GET' || !sameSecret(fromUrl, policy.token)) return { ok: false, status: 403, code: 'kiosk_token_invalid', message: 'wrong kiosk token' };
    url.searchParams.delete(KIOSK_TOKEN_PARAM);
    return {
      ok: true,
      // HttpOnly: the page's script never sees it; SameSite=Strict: no other site's request carries it.
      setCookie: `${KIOSK_TOKEN_COOKIE}=${policy.token}; Path=/; HttpOnly; SameSite=Strict`,
      redirectTo: url.pathname + url.search,
    };
  }
  const fromCookie = cookieValue(single(req.headers.cookie), KIOSK_TOKEN_COOKIE);
  if (fromCookie === undefined) return { ok: false, status: 401, code: 'kiosk_token_required', message: 'open the kiosk link with its token once' };
  if (!sameSecret(fromCookie, policy.token)) return { ok: false, status: 403, code: 'kiosk_token_invalid', message: 'wrong kiosk token' };
  return { ok: true };
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** Constant-time comparison (of digests, so lengths leak nothing either). */
function sameSecret(a: string, b: string): boolean {
  const d = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(d(a), d(b));
}
