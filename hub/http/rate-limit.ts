// Per-client token buckets for the endpoints that cost the hub work (challenges, registration).
//
// A client is an IPv4 address or an IPv6 /64: one subscriber, one LAN, is routinely given a whole
// /64 (RFC 6177, RFC 7934), so counting per exact IPv6 address would let one host rotate through 2^64
// addresses and never be limited.
import type { Context, MiddlewareHandler } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { isIPv4, isIPv6 } from 'node:net';
import type { RateBuckets } from '../replicas/shared-rate-limit.ts';
import { problem } from './problem.ts';

export interface RateLimitOptions {
  /** Sustained requests per second per client (IPv4 address or IPv6 /64). */
  perSecond?: number;
  /** Bucket size: how many may come at once. */
  burst?: number;
  /** Upper bound of tracked clients; the oldest are forgotten first. */
  maxClients?: number;
  now?: () => number;
  /**
   * Buckets shared by hub replicas (hub/replicas/shared-rate-limit.ts, PostgreSQL): a client is
   * counted across every replica. Without it, the buckets are this process's (one hub, SQLite).
   */
  shared?: RateBuckets;
  /** Which limit this is, naming its buckets in `shared` (each middleware made here counts apart). */
  scope?: string;
}

/** The eight 16-bit groups of an IPv6 address (RFC 4291 2.2 text forms), or undefined. */
function ipv6Groups(address: string): number[] | undefined {
  let a = address.split('%')[0]; // zone index (RFC 6874) is local, not part of the address
  // An embedded IPv4 tail (::ffff:192.0.2.1) is two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const o = v4[1].split('.').map(Number);
    a = `${a.slice(0, -v4[1].length)}${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const [head, tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = a.includes('::') ? 8 - h.length - t.length : 0;
  const groups = [...h, ...Array<string>(fill).fill('0'), ...t].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : undefined;
}

/**
 * The rate-limit key of an address: an IPv4 address itself (also when mapped into IPv6,
 * RFC 4291 2.5.5.2), or the /64 prefix of an IPv6 address.
 */
export function clientKeyOf(address: string | undefined): string {
  if (!address) return 'unknown';
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return 'unknown';
  const g = ipv6Groups(address);
  if (!g) return 'unknown';
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `${g[6] >> 8}.${g[6] & 0xff}.${g[7] >> 8}.${g[7] & 0xff}`;
  return `${g
    .slice(0, 4)
    .map((x) => x.toString(16))
    .join(':')}::/64`;
}

/** The rate-limit key of the request's client (its IPv4 address or IPv6 /64). */
export function clientKey(c: Context): string {
  try {
    return clientKeyOf(getConnInfo(c).remote.address);
  } catch {
    return 'local'; // in-process requests (tests) have no socket
  }
}

/** Token bucket rate limiter keyed by client (IPv4 address or IPv6 /64); answers 429 rate_limited with Retry-After. */
export function rateLimit({ perSecond = 20, burst = 100, maxClients = 100_000, now = Date.now, shared, scope = 'default' }: RateLimitOptions = {}): MiddlewareHandler {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const refuse = (c: Context, tokens: number) => {
    const retry = Math.max(1, Math.ceil((1 - tokens) / perSecond));
    return problem(c, 'rate_limited', `slow down: at most ${perSecond} requests per second`, undefined, { 'retry-after': String(retry) });
  };
  if (shared) {
    return async (c, next) => {
      const r = await shared.take(scope, clientKey(c), perSecond, burst, now());
      if (!r.ok) return refuse(c, r.tokens);
      await next();
    };
  }
  return async (c, next) => {
    const key = clientKey(c);
    const t = now();
    let b = buckets.get(key);
    if (!b) {
      if (buckets.size >= maxClients) buckets.delete(buckets.keys().next().value!);
      b = { tokens: burst, at: t };
      buckets.set(key, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((t - b.at) / 1000) * perSecond);
    b.at = t;
    if (b.tokens < 1) return refuse(c, b.tokens);
    b.tokens -= 1;
    await next();
  };
}
