// Signed webhook notices (失効連絡) to services' business systems, from a durable outbox: retried
// with exponential backoff, oldest first per service, never lost across hub restarts.
//
// Each POST is signed as every webhook of the platform is (shared/webhook-signature.ts: webhook-id,
// webhook-timestamp, webhook-signature over `id.timestamp.body` under the service's webhook secret as
// the console showed it). A lone pending notice goes as the notice itself (webhook-id
// `mykey-notice-<n>`, the same on every retry); when several are pending they go in batches
// (NoticeBatch below, webhook-id `mykey-notices-<first>-<last>`), several batches of a service in
// flight at once, so a CRL run's thousands of notices cost a few dozen round trips, not one each.
// Every notice keeps its own `id` and `seq`: a receiver ignores a notice it has seen and orders by
// `seq` (batches in flight together may arrive in any order). The target is checked against the URL
// policy at every delivery, on the address the name resolves to (url-policy.ts).
import { MyKeyError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { Emitter } from '../../shared/typed-events.ts';
import { signWebhook } from '../../shared/webhook-signature.ts';
import type { LinkRepo, WebhookRow } from '../store/link-repo.ts';
import type { FanoutEvents } from '../fanout.ts';
import { postTo } from './post.ts';
import { checkWebhookUrl, resolveWebhookTarget, STRICT_WEBHOOK_POLICY, type ResolvedAddress, type WebhookLookup, type WebhookUrlPolicy } from './url-policy.ts';

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
  /** Notices per batch. Default 500 (about 100 KB of JSON). */
  batchSize?: number;
  /** Batches of one service in flight at once. Default 4. */
  inFlight?: number;
  /** Told `notified` of every acknowledged request (hub/fanout.ts). */
  events?: Emitter<FanoutEvents>;
  /** Delivered notices are deleted this many days after delivery (webhooks.retentionDays); default 7. */
  retentionDays?: number;
  /** How often delivered notices are pruned; default hourly. */
  pruneEveryMs?: number;
  /**
   * Hub replicas (hub/replicas/coordinator.ts): true while this replica is the one sender (the outbox
   * publisher's lock), so a service gets each notice from one replica. Without it this process sends.
   */
  mayDeliver?: () => Promise<boolean>;
}

/** The body of a batch: `type` tells it from a lone notice (whose types are `link.*`). */
export interface NoticeBatch {
  type: 'notices';
  notices: unknown[];
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
    if (o.mayDeliver && !(await o.mayDeliver())) return 0;
    let delivered = 0;
    // The oldest undelivered notice of each service, when it is due: that service's turn.
    const due = await o.repo.dueWebhooks(now());
    const counts = await Promise.all(due.map((first) => deliverService(first.service_id)));
    for (const c of counts) delivered += c;
    // A delivered batch may have left more of its service due.
    if (delivered > 0 && !stopped) delivered += await round();
    return delivered;
  }

  /** Sends up to `inFlight` batches of one service's oldest notices at once; returns notices delivered. */
  async function deliverService(serviceId: string): Promise<number> {
    const size = Math.max(1, o.batchSize ?? 500);
    const rows = await o.repo.pendingWebhooks(serviceId, size * Math.max(1, o.inFlight ?? 4));
    if (rows.length === 0) return 0;
    const s = await o.repo.service(serviceId);
    if (!s?.webhook_url || !s.webhook_secret) {
      await o.repo.webhooksFailed(
        rows.map((r) => r.id),
        now() + (o.maxDelayMs ?? 3600_000),
        'the service has no webhook configured',
      );
      return 0;
    }
    const batches: WebhookRow[][] = [];
    for (let i = 0; i < rows.length; i += size) batches.push(rows.slice(i, i + size));
    let target: { url: URL; to: ResolvedAddress };
    try {
      // Checked again now: the policy may have tightened since the URL was set, and the name may
      // resolve elsewhere than it did (DNS rebinding). The connection goes to the checked address.
      const url = checkWebhookUrl(s.webhook_url, policy);
      target = { url, to: await resolveWebhookTarget(url, policy, o.lookup) };
    } catch (e) {
      await failed(serviceId, rows, e);
      return 0;
    }
    const secret = s.webhook_secret.toString('base64url');
    const sent = await Promise.all(
      batches.map(async (batch) => {
        const single = batch.length === 1;
        const body = single ? batch[0].event : `{"type":"notices","notices":[${batch.map((r) => r.event).join(',')}]}`;
        const id = single ? `mykey-notice-${batch[0].id}` : `mykey-notices-${batch[0].id}-${batch.at(-1)!.id}`;
        try {
          const headers = { 'content-type': 'application/json', ...signWebhook(secret, body, { id, nowMs: now() }) };
          const status = await postTo(target.url, target.to, headers, body, o.timeoutMs ?? 5000);
          if (status < 200 || status >= 300) throw new Error(`HTTP ${status}`);
          await o.repo.webhooksDelivered(
            batch.map((r) => r.id),
            now(),
          );
          o.events?.emit('notified', { notices: batch.length });
          return batch.length;
        } catch (e) {
          await failed(serviceId, batch, e);
          return 0;
        }
      }),
    );
    return sent.reduce((a, b) => a + b, 0);
  }

  async function failed(serviceId: string, rows: WebhookRow[], e: unknown): Promise<void> {
    if (stopped) return;
    const attempts = rows[0].attempts;
    const delay = Math.min(o.maxDelayMs ?? 3600_000, (o.baseDelayMs ?? 1000) * 2 ** Math.min(attempts, 20));
    const jitter = Math.floor(Math.random() * delay * 0.2);
    // The code leads the recorded error, so the console and the operator API show why (webhook_url_private...).
    const why = e instanceof MyKeyError ? `${e.code}: ${e.message}` : (e as Error).message;
    await o.repo.webhooksFailed(
      rows.map((r) => r.id),
      now() + delay + jitter,
      why,
    );
    o.log.warn('webhook delivery failed', { service: serviceId, notices: rows.length, attempt: attempts + 1, error: why });
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
      const n = await o.repo.pruneDelivered(before, PRUNE_BATCH);
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
