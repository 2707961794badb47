// Repository of services, credentials, links, the per-service change log and the two outboxes.
// Plain statements; the transactions that combine them live in hub/links.
import type { KeyScheme } from '../../shared/sync.ts';
import type { Db } from './db.ts';

export interface ServiceRow {
  id: string;
  name: string;
  status: 'active' | 'disabled';
  sync_secret: Buffer;
  webhook_url: string | null;
  webhook_secret: Buffer | null;
  require_holder_proof: number;
  head_seq: number;
  created_at: number;
  /** Derivation of the keyed identities its edges get (shared/sync.ts). */
  key_scheme: KeyScheme;
  /** What a touch at its readers proves (migration 175; PIN-checked touch, #14). */
  touch_assurance: 'possession' | 'pin';
}

export interface LinkRow {
  service_id: string;
  mykey_id: string;
  service_user_id: string;
  state: 'active' | 'suspended';
  linked_at: number;
  linked_by: string;
}

export interface ChangeRow {
  service_id: string;
  seq: number;
  kind: string;
  mykey_id: string;
  service_user_id: string | null;
  by: string;
  entry: string;
  at: number;
}

export interface WebhookRow {
  id: number;
  service_id: string;
  event: string;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  delivered_at: number | null;
  last_error: string | null;
}

export function createLinkRepo(db: Db) {
  const q = {
    service: db.prepare<[string], ServiceRow>('SELECT * FROM services WHERE id = ?'),
    services: db.prepare<[], ServiceRow>('SELECT * FROM services ORDER BY id'),
    insertService: db.prepare(
      `INSERT INTO services (id, name, status, sync_secret, webhook_url, webhook_secret, require_holder_proof, head_seq, created_at)
       VALUES (@id, @name, 'active', @sync_secret, @webhook_url, @webhook_secret, @require_holder_proof, 0, @created_at)`,
    ),
    updateWebhook: db.prepare('UPDATE services SET webhook_url = ?, webhook_secret = ? WHERE id = ?'),
    setRequireHolderProof: db.prepare('UPDATE services SET require_holder_proof = ? WHERE id = ?'),
    setTouchAssurance: db.prepare('UPDATE services SET touch_assurance = ? WHERE id = ?'),
    bumpSeq: db.prepare<[string], { head_seq: number }>('UPDATE services SET head_seq = head_seq + 1 WHERE id = ? RETURNING head_seq'),
    insertCredential: db.prepare('INSERT INTO service_credentials (id, service_id, label, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)'),
    credential: db.prepare<[string], { id: string; service_id: string; secret_hash: string; revoked_at: number | null }>(
      'SELECT id, service_id, secret_hash, revoked_at FROM service_credentials WHERE id = ?',
    ),
    credentials: db.prepare<[string], { id: string; label: string; created_at: number; revoked_at: number | null }>(
      'SELECT id, label, created_at, revoked_at FROM service_credentials WHERE service_id = ? ORDER BY created_at',
    ),
    revokeCredential: db.prepare('UPDATE service_credentials SET revoked_at = ? WHERE id = ? AND service_id = ? AND revoked_at IS NULL'),
    link: db.prepare<[string, string], LinkRow>('SELECT * FROM links WHERE service_id = ? AND mykey_id = ?'),
    linkByUser: db.prepare<[string, string], LinkRow>('SELECT * FROM links WHERE service_id = ? AND service_user_id = ?'),
    linksOfMyKey: db.prepare<[string], LinkRow>('SELECT * FROM links WHERE mykey_id = ? ORDER BY service_id'),
    upsertLink: db.prepare(
      `INSERT INTO links (service_id, mykey_id, service_user_id, state, linked_at, linked_by) VALUES (?, ?, ?, 'active', ?, ?)
       ON CONFLICT (service_id, mykey_id) DO UPDATE SET service_user_id = excluded.service_user_id, state = 'active',
         linked_at = excluded.linked_at, linked_by = excluded.linked_by`,
    ),
    deleteLink: db.prepare('DELETE FROM links WHERE service_id = ? AND mykey_id = ?'),
    setLinkState: db.prepare('UPDATE links SET state = ? WHERE service_id = ? AND mykey_id = ?'),
    renameMyKey: db.prepare('UPDATE links SET mykey_id = ? WHERE mykey_id = ?'),
    activeLinksOfService: db.prepare<[string], { mykey_id: string; service_user_id: string }>(
      "SELECT mykey_id, service_user_id FROM links WHERE service_id = ? AND state = 'active'",
    ),
    insertChange: db.prepare(
      'INSERT INTO link_changes (service_id, seq, kind, mykey_id, service_user_id, by, entry, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    changesAfter: db.prepare<[string, number, number], { entry: string }>('SELECT entry FROM link_changes WHERE service_id = ? AND seq > ? ORDER BY seq LIMIT ?'),
    insertMqtt: db.prepare('INSERT INTO mqtt_outbox (topic, payload, created_at) VALUES (?, ?, ?)'),
    pendingMqtt: db.prepare<[number], { id: number; topic: string; payload: string }>('SELECT id, topic, payload FROM mqtt_outbox ORDER BY id LIMIT ?'),
    deleteMqtt: db.prepare('DELETE FROM mqtt_outbox WHERE id = ?'),
    insertWebhook: db.prepare('INSERT INTO webhook_outbox (service_id, event, created_at, next_attempt_at) VALUES (?, ?, ?, ?)'),
    // Per service, only the oldest undelivered notice is due: notices arrive in order.
    dueWebhooks: db.prepare<[number, number], WebhookRow>(
      `SELECT w.* FROM webhook_outbox w
       JOIN (SELECT service_id, MIN(id) AS id FROM webhook_outbox WHERE delivered_at IS NULL GROUP BY service_id) f ON f.id = w.id
       WHERE w.next_attempt_at <= ? ORDER BY w.id LIMIT ?`,
    ),
    pendingWebhooks: db.prepare<[string, number], WebhookRow>('SELECT * FROM webhook_outbox WHERE service_id = ? AND delivered_at IS NULL ORDER BY id LIMIT ?'),
    webhookDelivered: db.prepare('UPDATE webhook_outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?'),
    webhookFailed: db.prepare('UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?'),
    // Pending notices through the pending index, delivered ones from the counter (migration 160):
    // neither reads a service's delivered history.
    webhookHealth: db.prepare<[{ id: string }], { pending: number; oldest: number | null; last_error: string | null; delivered: number }>(
      `SELECT COUNT(*) AS pending, MIN(created_at) AS oldest,
              (SELECT last_error FROM webhook_outbox WHERE service_id = @id AND delivered_at IS NULL ORDER BY id LIMIT 1) AS last_error,
              COALESCE((SELECT delivered FROM webhook_counts WHERE service_id = @id), 0) AS delivered
       FROM webhook_outbox WHERE service_id = @id AND delivered_at IS NULL`,
    ),
    pruneDelivered: db.prepare<[number, number]>(
      'DELETE FROM webhook_outbox WHERE id IN (SELECT id FROM webhook_outbox WHERE delivered_at IS NOT NULL AND delivered_at < ? LIMIT ?)',
    ),
    // Kept by triggers (migration 160): a read of a few rows, whatever the number of links.
    linkCounts: db.prepare<[], { service_id: string; state: string; n: number }>('SELECT service_id, state, n FROM link_counts WHERE n <> 0 ORDER BY service_id, state'),
    linkCountsOf: db.prepare<[string], { state: string; n: number }>('SELECT state, n FROM link_counts WHERE service_id = ?'),
    // keyed identities (shared/sync.ts)
    setKeyScheme: db.prepare('UPDATE services SET key_scheme = ? WHERE id = ?'),
    storedKey: db.prepare<[string, string, string], { key: string }>('SELECT key FROM service_keys WHERE service_id = ? AND scheme = ? AND identity = ?'),
    insertKey: db.prepare('INSERT OR IGNORE INTO service_keys (service_id, scheme, identity, key) VALUES (?, ?, ?, ?)'),
    linkedMyKeys: db.prepare<[string], { mykey_id: string }>('SELECT mykey_id FROM links WHERE service_id = ?'),
  };
  return {
    service: (id: string): ServiceRow | undefined => q.service.get(id),
    services: (): ServiceRow[] => q.services.all(),
    insertService: (row: Omit<ServiceRow, 'status' | 'head_seq' | 'key_scheme' | 'touch_assurance'>) => q.insertService.run({ ...row }),
    updateWebhook: (id: string, url: string | null, secret: Buffer | null) => q.updateWebhook.run(url, secret, id),
    setRequireHolderProof: (id: string, on: boolean) => q.setRequireHolderProof.run(on ? 1 : 0, id),
    setTouchAssurance: (id: string, level: 'possession' | 'pin') => q.setTouchAssurance.run(level, id),
    nextSeq: (serviceId: string): number => q.bumpSeq.get(serviceId)!.head_seq,
    insertCredential: (id: string, serviceId: string, label: string, hash: string, at: number) => q.insertCredential.run(id, serviceId, label, hash, at),
    credential: (id: string) => q.credential.get(id),
    credentials: (serviceId: string) => q.credentials.all(serviceId),
    revokeCredential: (serviceId: string, id: string, at: number): boolean => q.revokeCredential.run(at, id, serviceId).changes > 0,
    link: (serviceId: string, mykeyId: string): LinkRow | undefined => q.link.get(serviceId, mykeyId),
    linkByUser: (serviceId: string, serviceUserId: string): LinkRow | undefined => q.linkByUser.get(serviceId, serviceUserId),
    linksOfMyKey: (mykeyId: string): LinkRow[] => q.linksOfMyKey.all(mykeyId),
    upsertLink: (serviceId: string, mykeyId: string, serviceUserId: string, at: number, by: string) => q.upsertLink.run(serviceId, mykeyId, serviceUserId, at, by),
    deleteLink: (serviceId: string, mykeyId: string) => q.deleteLink.run(serviceId, mykeyId),
    setLinkState: (serviceId: string, mykeyId: string, state: LinkRow['state']) => q.setLinkState.run(state, serviceId, mykeyId),
    renameMyKey: (from: string, to: string) => q.renameMyKey.run(to, from),
    activeLinksOfService: (serviceId: string) => q.activeLinksOfService.iterate(serviceId),
    insertChange: (r: ChangeRow) => q.insertChange.run(r.service_id, r.seq, r.kind, r.mykey_id, r.service_user_id, r.by, r.entry, r.at),
    changesAfter: (serviceId: string, seq: number, limit: number): string[] => q.changesAfter.all(serviceId, seq, limit).map((r) => r.entry),
    insertMqtt: (topic: string, payload: string, at: number) => q.insertMqtt.run(topic, payload, at),
    pendingMqtt: (limit = 500) => q.pendingMqtt.all(limit),
    deleteMqtt: (id: number) => q.deleteMqtt.run(id),
    /** Deletes the rows one published (batched) message carried, in one transaction. */
    deleteMqttMany: db.transaction((ids: readonly number[]) => {
      for (const id of ids) q.deleteMqtt.run(id);
    }),
    insertWebhook: (serviceId: string, event: string, at: number) => q.insertWebhook.run(serviceId, event, at, at),
    dueWebhooks: (now: number, limit = 50): WebhookRow[] => q.dueWebhooks.all(now, limit),
    webhookDelivered: (id: number, at: number) => q.webhookDelivered.run(at, id),
    webhookFailed: (id: number, next: number, error: string) => q.webhookFailed.run(next, error.slice(0, 500), id),
    /** A service's undelivered notices, oldest first (batched delivery, hub/notify). */
    pendingWebhooks: (serviceId: string, limit: number): WebhookRow[] => q.pendingWebhooks.all(serviceId, limit),
    /** Marks the notices of one delivered batch, in one transaction. */
    webhooksDelivered: db.transaction((ids: readonly number[], at: number) => {
      for (const id of ids) q.webhookDelivered.run(at, id);
    }),
    /** Records a failed attempt of every notice of one batch, in one transaction. */
    webhooksFailed: db.transaction((ids: readonly number[], next: number, error: string) => {
      for (const id of ids) q.webhookFailed.run(next, error.slice(0, 500), id);
    }),
    webhookHealth: (serviceId: string) => q.webhookHealth.get({ id: serviceId })!,
    /** Links per service and state, kept as links change (O(services), never a count of links). */
    linkCounts: () => q.linkCounts.all(),
    /** Links of one service by state, kept as links change. */
    linkCountsOf(serviceId: string): { active: number; suspended: number } {
      const out = { active: 0, suspended: 0 };
      for (const r of q.linkCountsOf.all(serviceId)) if (r.state === 'active' || r.state === 'suspended') out[r.state] = r.n;
      return out;
    },
    /**
     * Deletes up to `limit` notices delivered before `before` (retention, webhooks.retentionDays);
     * returns how many. Undelivered notices are never pruned.
     */
    pruneDelivered: (before: number, limit = 5000): number => q.pruneDelivered.run(before, limit).changes,
    setKeyScheme: (serviceId: string, scheme: KeyScheme) => q.setKeyScheme.run(scheme, serviceId),
    storedKey: (serviceId: string, scheme: KeyScheme, identity: string): string | undefined => q.storedKey.get(serviceId, scheme, identity)?.key,
    insertKey: (serviceId: string, scheme: KeyScheme, identity: string, key: string) => q.insertKey.run(serviceId, scheme, identity, key),
    /** MyKey IDs linked with a service, in any state. */
    linkedMyKeys: (serviceId: string): string[] => q.linkedMyKeys.all(serviceId).map((r) => r.mykey_id),
  };
}

export type LinkRepo = ReturnType<typeof createLinkRepo>;
