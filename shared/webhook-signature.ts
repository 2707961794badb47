// The one webhook signature of the platform, used by the hub's notices (失効連絡) and the edge's
// touch hand-off alike, in the header layout of the Standard Webhooks specification
// (https://www.standardwebhooks.com/, "Verifying webhook authenticity"):
//
//   webhook-id:        a unique id of the message (the same on every retry of it)
//   webhook-timestamp: unix seconds when this attempt was signed
//   webhook-signature: v1,<base64 of HMAC-SHA256(secret, `${id}.${timestamp}.${body}`)>
//                      (several, space-separated, while a secret is being rotated)
//
// The key is the secret's text as UTF-8: exactly the string the console showed (hub) or the edge's
// config holds. Binding the id and the timestamp into the MAC lets a receiver refuse an old message
// (timestamp window) and a replayed one (id memory) without trusting anything unsigned.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { fail, ok, type Result } from './errors.ts';

/** Header names (lower case, as node:http and fetch's Headers give them). */
export const WEBHOOK_HEADERS = { id: 'webhook-id', timestamp: 'webhook-timestamp', signature: 'webhook-signature' } as const;
/** Default accepted clock difference between sender and receiver, seconds. */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;
const MAX_ID_LENGTH = 128;
const ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

/** The three headers of a signed delivery. */
export type WebhookSignatureHeaders = {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
};

/** A fresh message id (`msg_` and 18 random bytes), for senders without one of their own. */
export function newWebhookId(): string {
  return `msg_${randomBytes(18).toString('base64url')}`;
}

function mac(secret: string, id: string, timestamp: string, body: string): Buffer {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${id}.${timestamp}.${body}`).digest();
}

/** Signs one delivery attempt: the headers to send with `body` (sent byte for byte as signed). */
export function signWebhook(secret: string, body: string, opts: { id?: string; nowMs?: number } = {}): WebhookSignatureHeaders {
  const id = opts.id ?? newWebhookId();
  if (!ID_PATTERN.test(id)) throw new TypeError('a webhook id is 1-128 characters of A-Z a-z 0-9 _ . : -');
  const timestamp = String(Math.floor((opts.nowMs ?? Date.now()) / 1000));
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${mac(secret, id, timestamp, body).toString('base64')}` };
}

/** Remembers message ids already accepted, so a replay is refused. */
export interface WebhookReplayMemory {
  /** True when `id` was not seen yet; it is then remembered until `untilMs`. False for a repeat. */
  remember(id: string, untilMs: number): boolean;
}

/** An in-memory replay memory, bounded: ids are kept only while their timestamp could still pass. */
export function createReplayMemory(opts: { maxEntries?: number; now?: () => number } = {}): WebhookReplayMemory {
  const max = opts.maxEntries ?? 100_000;
  const now = opts.now ?? Date.now;
  const seen = new Map<string, number>();
  return {
    remember(id, untilMs) {
      const t = now();
      const until = seen.get(id);
      if (until !== undefined && until > t) return false;
      // Map keeps insertion order: the oldest entries go first once expired or when full.
      for (const [k, u] of seen) {
        if (u > t && seen.size < max) break;
        seen.delete(k);
      }
      seen.set(id, untilMs);
      return true;
    },
  };
}

/** Options of verifyWebhook. */
export interface VerifyWebhookOptions {
  /** Largest accepted difference between the signed timestamp and now, seconds (default 300). */
  toleranceSeconds?: number;
  /** Ids already accepted; with it, a replayed id is refused (webhook_replayed). */
  replay?: WebhookReplayMemory;
  /** Clock, ms (tests). */
  now?: () => number;
}

/** Request headers as node:http (an object) or fetch (a Headers) gives them. */
export type HeaderSource = { get(name: string): string | null } | Record<string, string | string[] | undefined>;

function header(h: HeaderSource, name: string): string | undefined {
  if (typeof (h as { get?: unknown }).get === 'function') return (h as { get(n: string): string | null }).get(name) ?? undefined;
  const v = (h as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Verifies a webhook delivery, for the services' business systems. Give it the body exactly as
 * received (the raw text, before any JSON parsing) and the request headers. In order:
 * the signature (HMAC-SHA256 over `id.timestamp.body`, compared in constant time) else
 * `webhook_signature_invalid`; the timestamp within `toleranceSeconds` of now else
 * `webhook_timestamp_invalid`; with a `replay` memory, an id seen before else `webhook_replayed`.
 *
 * ```ts
 * const replay = createReplayMemory();
 * const r = verifyWebhook(process.env.MYKEY_WEBHOOK_SECRET!, rawBody, req.headers, { replay });
 * if (!r.ok) return res.writeHead(r.code === 'webhook_replayed' ? 409 : 401).end(r.code);
 * ```
 */
export function verifyWebhook(
  secret: string,
  body: string,
  headers: HeaderSource,
  opts: VerifyWebhookOptions = {},
): Result<{ id: string; timestamp: number }, 'webhook_signature_invalid' | 'webhook_timestamp_invalid' | 'webhook_replayed'> {
  const id = header(headers, WEBHOOK_HEADERS.id);
  const ts = header(headers, WEBHOOK_HEADERS.timestamp);
  const sigs = header(headers, WEBHOOK_HEADERS.signature);
  if (!id || id.length > MAX_ID_LENGTH || !ID_PATTERN.test(id) || !sigs || sigs.length > 1024) return fail('webhook_signature_invalid', 'webhook-id or webhook-signature missing or malformed');
  if (!ts || !/^\d{1,12}$/.test(ts)) return fail('webhook_timestamp_invalid', 'webhook-timestamp missing or not unix seconds');
  const expected = mac(secret, id, ts, body);
  let good = false;
  for (const part of sigs.split(' ')) {
    const [version, value] = part.split(',', 2);
    if (version !== 'v1' || value === undefined) continue;
    const given = Buffer.from(value, 'base64');
    // timingSafeEqual needs equal lengths; the length of a MAC is no secret.
    if (given.length === expected.length && timingSafeEqual(given, expected)) good = true;
  }
  if (!good) return fail('webhook_signature_invalid', 'the signature does not verify');
  const nowMs = (opts.now ?? Date.now)();
  const tolerance = opts.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS;
  const t = Number(ts);
  if (Math.abs(nowMs / 1000 - t) > tolerance) return fail('webhook_timestamp_invalid', `the timestamp is more than ${tolerance} s away from now`);
  // Kept until the timestamp could no longer pass the window anyway.
  if (opts.replay && !opts.replay.remember(id, (t + tolerance) * 1000 + 1000)) return fail('webhook_replayed', 'this webhook id was accepted before');
  return ok({ id, timestamp: t });
}
