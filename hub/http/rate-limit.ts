// Per-client token buckets for the endpoints that cost the hub work (challenges, registration).
import type { MiddlewareHandler } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { problem } from './problem.ts';

export interface RateLimitOptions {
  /** Sustained requests per second per client address. */
  perSecond?: number;
  /** Bucket size: how many may come at once. */
  burst?: number;
  /** Upper bound of tracked clients; the oldest are forgotten first. */
  maxClients?: number;
  now?: () => number;
}

function clientAddress(c: Parameters<MiddlewareHandler>[0]): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'local'; // in-process requests (tests) have no socket
  }
}

/** Token bucket rate limiter keyed by client address; answers 429 rate_limited with Retry-After. */
export function rateLimit({ perSecond = 20, burst = 100, maxClients = 100_000, now = Date.now }: RateLimitOptions = {}): MiddlewareHandler {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return async (c, next) => {
    const key = clientAddress(c);
    const t = now();
    let b = buckets.get(key);
    if (!b) {
      if (buckets.size >= maxClients) buckets.delete(buckets.keys().next().value!);
      b = { tokens: burst, at: t };
      buckets.set(key, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((t - b.at) / 1000) * perSecond);
    b.at = t;
    if (b.tokens < 1) {
      const retry = Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
      return problem(c, 'rate_limited', `slow down: at most ${perSecond} requests per second`, undefined, { 'retry-after': String(retry) });
    }
    b.tokens -= 1;
    await next();
  };
}
