// Signed webhook notices (失効連絡) to services' business systems, from a durable outbox: retried
// with exponential backoff, in order per service, never lost across hub restarts.
//
// Each POST carries the notice as JSON, signed as every webhook of the platform is
// (shared/webhook-signature.ts: webhook-id, webhook-timestamp, webhook-signature over
// `id.timestamp.body` under the service's webhook secret as the console showed it). The id is the
// same on every retry of a notice, so a receiver can ignore a repeat. The target is checked against
// the URL policy at every delivery, on the address the name resolves to (url-policy.ts).
import { MyKeyError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { signWebhook } from '../../shared/webhook-signature.ts';
import type { LinkRepo } from '../store/link-repo.ts';
import { postTo } from './post.ts';
import { checkWebhookUrl, resolveWebhookTarget, STRICT_WEBHOOK_POLICY, type WebhookLookup, type WebhookUrlPolicy } from './url-policy.ts';

export interface WebhookSenderOptions {
  repo: LinkRepo;
  log: Logger;
  now?: () => number;
  timeoutMs?: number;
  /** First retry delay; doubles per attempt up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  pollMs?: number;
  /** Which targets are allowed (hub config webhooks.allowPrivateTargets / allowHttp); strict by default. */
  allowPrivateTargets?: boolean;
  allowHttp?: boolean;
  /** DNS for delivery-time checks (tests give their own). */
  lookup?: WebhookLookup;
  /** Delivered notices are deleted this many days after delivery (webhooks.retentionDays); default 7. */
  retentionDays?: number;
  /** How often delivered notices are pruned; default hourly. */
  pruneEveryMs?: number;
}

/** Delivered notices deleted per transaction while pruning (each a short write). */
const PRUNE_BATCH = 5000;

export function createWebhookSender(o: WebhookSenderOptions) {
  const now = o.now ?? Date.now;
  const policy: WebhookUrlPolicy = {
    allowPrivateTargets: o.allowPrivateTargets ?? STRICT_WEBHOOK_POLICY.allowPrivateTargets,
    allowHttp: o.allowHttp ?? STRICT_WEBHOOK_POLICY.allowHttp,
  };
  let timer: NodeJS.Timeout | undefined;
  let pruneTimer: NodeJS.Timeout | undefined;
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
        try {
          // Checked again now: the policy may have tightened since the URL was set, and the name may
          // resolve elsewhere than it did (DNS rebinding). The connection goes to the checked address.
          const url = checkWebhookUrl(s.webhook_url, policy);
          const to = await resolveWebhookTarget(url, policy, o.lookup);
          const headers = { 'content-type': 'application/json', ...signWebhook(s.webhook_secret.toString('base64url'), row.event, { id: `mykey-notice-${row.id}`, nowMs: now() }) };
          const status = await postTo(url, to, headers, row.event, o.timeoutMs ?? 5000);
          if (status < 200 || status >= 300) throw new Error(`HTTP ${status}`);
          o.repo.webhookDelivered(row.id, now());
          delivered++;
        } catch (e) {
          if (stopped) return;
          const delay = Math.min(o.maxDelayMs ?? 3600_000, (o.baseDelayMs ?? 1000) * 2 ** Math.min(row.attempts, 20));
          const jitter = Math.floor(Math.random() * delay * 0.2);
          // The code leads the recorded error, so the console and the operator API show why (webhook_url_private...).
          const why = e instanceof MyKeyError ? `${e.code}: ${e.message}` : (e as Error).message;
          o.repo.webhookFailed(row.id, now() + delay + jitter, why);
          o.log.warn('webhook delivery failed', { service: row.service_id, attempt: row.attempts + 1, error: why });
        }
      }),
    );
    // In-order delivery: a delivered notice may have made the next one of its service due.
    if (delivered > 0 && !stopped) delivered += await round();
    return delivered;
  }

  /**
   * Deletes notices delivered longer ago than the retention, in short batches with a turn of the
   * event loop between them; returns how many. Delivered notices are only a receipt (the change log
   * and the audit trail are the record), and kept forever they grow the outbox without bound.
   */
  async function pruneDelivered(): Promise<number> {
    const before = now() - (o.retentionDays ?? 7) * 86_400_000;
    let pruned = 0;
    while (!stopped) {
      const n = o.repo.pruneDelivered(before, PRUNE_BATCH);
      pruned += n;
      if (n < PRUNE_BATCH) break;
      await new Promise<void>((r) => setImmediate(r));
    }
    return pruned;
  }
  const prune = () =>
    void pruneDelivered().then(
      (n) => n > 0 && o.log.debug('delivered webhook notices pruned', { count: n }),
      (e) => o.log.warn('pruning delivered webhook notices failed; retried at the next pruning', { error: (e as Error).message }),
    );

  return {
    deliverDue,
    pruneDelivered,
    kick(): void {
      deliverDue().catch((e) => o.log.error('webhook round failed', { error: e }));
    },
    start(): void {
      timer = setInterval(() => this.kick(), o.pollMs ?? 1000);
      timer.unref();
      pruneTimer = setInterval(prune, o.pruneEveryMs ?? 3600_000);
      pruneTimer.unref();
      prune();
      this.kick();
    },
    /** Stops the schedule and waits for a round in flight, so nothing writes after the store closes. */
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(timer);
      clearInterval(pruneTimer);
      await current?.catch(() => undefined);
    },
  };
}

export type WebhookSender = ReturnType<typeof createWebhookSender>;
