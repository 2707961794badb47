// Signed webhook notices (失効連絡) to services' business systems, from a durable outbox: retried
// with exponential backoff, in order per service, never lost across hub restarts.
//
// Each POST carries the notice as JSON and `X-MyKey-Signature: t=<unix seconds>,v1=<hex>` where v1 is
// HMAC-SHA256 under the service's webhook secret of `<t>.<body>`. Receivers check the signature and
// that t is recent, and use the notice id to ignore a repeat.
import { createHmac } from 'node:crypto';
import type { Logger } from '../../shared/log.ts';
import type { LinkRepo } from '../store/link-repo.ts';

/** Signature header value for a body. */
export function signWebhook(secret: Uint8Array, body: string, t: number): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/** Checks a signature header (receivers' side; used by tests and the demo's library system). */
export function verifyWebhook(secret: Uint8Array, body: string, header: string, nowS: number, toleranceS = 300): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m || Math.abs(nowS - Number(m[1])) > toleranceS) return false;
  const expected = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest('hex');
  return expected === m[2];
}

export interface WebhookSenderOptions {
  repo: LinkRepo;
  log: Logger;
  now?: () => number;
  timeoutMs?: number;
  /** First retry delay; doubles per attempt up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  pollMs?: number;
  fetchImpl?: typeof fetch;
}

export function createWebhookSender(o: WebhookSenderOptions) {
  const now = o.now ?? Date.now;
  const doFetch = o.fetchImpl ?? fetch;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<number> | undefined;
  let stopped = false;

  /** Delivers what is due; a call while a round runs joins that round. */
  function deliverDue(): Promise<number> {
    if (stopped) return Promise.resolve(0);
    current ??= round().finally(() => (current = undefined));
    return current;
  }

  async function round(): Promise<number> {
    let delivered = 0;
    const due = o.repo.dueWebhooks(now());
    await Promise.all(
      due.map(async (row) => {
        const s = o.repo.service(row.service_id);
        if (!s?.webhook_url || !s.webhook_secret) {
          o.repo.webhookFailed(row.id, now() + (o.maxDelayMs ?? 3600_000), 'the service has no webhook configured');
          return;
        }
        const t = Math.floor(now() / 1000);
        try {
          const res = await doFetch(s.webhook_url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-mykey-signature': signWebhook(s.webhook_secret, row.event, t) },
            body: row.event,
            signal: AbortSignal.timeout(o.timeoutMs ?? 5000),
            redirect: 'error',
          });
          await res.arrayBuffer().catch(() => undefined);
          if (res.status < 200 || res.status >= 300) throw new Error(`HTTP ${res.status}`);
          o.repo.webhookDelivered(row.id, now());
          delivered++;
        } catch (e) {
          if (stopped) return;
          const delay = Math.min(o.maxDelayMs ?? 3600_000, (o.baseDelayMs ?? 1000) * 2 ** Math.min(row.attempts, 20));
          const jitter = Math.floor(Math.random() * delay * 0.2);
          o.repo.webhookFailed(row.id, now() + delay + jitter, (e as Error).message);
          o.log.warn('webhook delivery failed', { service: row.service_id, attempt: row.attempts + 1, error: (e as Error).message });
        }
      }),
    );
    // In-order delivery: a delivered notice may have made the next one of its service due.
    if (delivered > 0 && !stopped) delivered += await round();
    return delivered;
  }

  return {
    deliverDue,
    kick(): void {
      deliverDue().catch((e) => o.log.error('webhook round failed', { error: e }));
    },
    start(): void {
      timer = setInterval(() => this.kick(), o.pollMs ?? 1000);
      timer.unref();
      this.kick();
    },
    /** Stops the schedule and waits for a round in flight, so nothing writes after the store closes. */
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(timer);
      await current?.catch(() => undefined);
    },
  };
}

export type WebhookSender = ReturnType<typeof createWebhookSender>;
