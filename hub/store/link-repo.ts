// Repository of services, credentials, links, the per-service change log and the two outboxes.
// Plain statements; the transactions that combine them live in hub/links.
import type { KeyScheme } from '../../shared/sync.ts';
import type { Db } from './db.ts';
import { listStatement, repeated, single } from './list-statements.ts';
import { sqlOf, type Sql } from './sql.ts';

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

const Q = {
  service: 'SELECT * FROM services WHERE id = ?',
  services: 'SELECT * FROM services ORDER BY id',
  insertService: `INSERT INTO services (id, name, status, sync_secret, webhook_url, webhook_secret, require_holder_proof, head_seq, created_at)
     VALUES (?, ?, 'active', ?, ?, ?, ?, 0, ?)`,
  updateWebhook: 'UPDATE services SET webhook_url = ?, webhook_secret = ? WHERE id = ?',
  setRequireHolderProof: 'UPDATE services SET require_holder_proof = ? WHERE id = ?',
  setTouchAssurance: 'UPDATE services SET touch_assurance = ? WHERE id = ?',
  // One statement: the row lock (PostgreSQL) or the write lock (SQLite) orders concurrent appends.
  takeSeqs: 'UPDATE services SET head_seq = head_seq + ? WHERE id = ? RETURNING head_seq',
  insertCredential: 'INSERT INTO service_credentials (id, service_id, label, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)',
  credential: 'SELECT id, service_id, secret_hash, revoked_at FROM service_credentials WHERE id = ?',
  credentials: 'SELECT id, label, created_at, revoked_at FROM service_credentials WHERE service_id = ? ORDER BY created_at',
  revokeCredential: 'UPDATE service_credentials SET revoked_at = ? WHERE id = ? AND service_id = ? AND revoked_at IS NULL',
  link: 'SELECT * FROM links WHERE service_id = ? AND mykey_id = ?',
  linkByUser: 'SELECT * FROM links WHERE service_id = ? AND service_user_id = ?',
  linksOfMyKey: 'SELECT * FROM links WHERE mykey_id = ? ORDER BY service_id',
  upsertLink: `INSERT INTO links (service_id, mykey_id, service_user_id, state, linked_at, linked_by) VALUES (?, ?, ?, 'active', ?, ?)
     ON CONFLICT (service_id, mykey_id) DO UPDATE SET service_user_id = excluded.service_user_id, state = 'active',
       linked_at = excluded.linked_at, linked_by = excluded.linked_by`,
  deleteLink: 'DELETE FROM links WHERE service_id = ? AND mykey_id = ?',
  renameMyKey: 'UPDATE links SET mykey_id = ? WHERE mykey_id = ?',
  activeLinksOfService: "SELECT mykey_id, service_user_id FROM links WHERE service_id = ? AND state = 'active'",
  changesAfter: 'SELECT entry FROM link_changes WHERE service_id = ? AND seq > ? ORDER BY seq LIMIT ?',
  pendingMqtt: 'SELECT id, topic, payload FROM mqtt_outbox ORDER BY id LIMIT ?',
  insertWebhook: 'INSERT INTO webhook_outbox (service_id, event, created_at, next_attempt_at) VALUES (?, ?, ?, ?) RETURNING id',
  // Per service, only the oldest undelivered notice is due: notices arrive in order.
  dueWebhooks: `SELECT w.* FROM webhook_outbox w
     JOIN (SELECT service_id, MIN(id) AS id FROM webhook_outbox WHERE delivered_at IS NULL GROUP BY service_id) f ON f.id = w.id
     WHERE w.next_attempt_at <= ? ORDER BY w.id LIMIT ?`,
  pendingWebhooks: 'SELECT * FROM webhook_outbox WHERE service_id = ? AND delivered_at IS NULL ORDER BY id LIMIT ?',
  webhookDelivered: 'UPDATE webhook_outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?',
  webhookFailed: 'UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?',
  // Pending notices through the pending index, delivered ones from the counter (migration 160):
  // neither reads a service's delivered history.
  webhookHealth: `SELECT COUNT(*) AS pending, MIN(created_at) AS oldest,
            (SELECT last_error FROM webhook_outbox WHERE service_id = ? AND delivered_at IS NULL ORDER BY id LIMIT 1) AS last_error,
            COALESCE((SELECT delivered FROM webhook_counts WHERE service_id = ?), 0) AS delivered
     FROM webhook_outbox WHERE service_id = ? AND delivered_at IS NULL`,
  pruneDelivered: 'DELETE FROM webhook_outbox WHERE id IN (SELECT id FROM webhook_outbox WHERE delivered_at IS NOT NULL AND delivered_at < ? LIMIT ?)',
  // Kept by triggers (migration 160): a read of a few rows, whatever the number of links.
  linkCounts: 'SELECT service_id, state, n FROM link_counts WHERE n <> 0 ORDER BY service_id, state',
  linkCountsOf: 'SELECT state, n FROM link_counts WHERE service_id = ?',
  // keyed identities (shared/sync.ts)
  setKeyScheme: 'UPDATE services SET key_scheme = ? WHERE id = ?',
  storedKey: 'SELECT key FROM service_keys WHERE service_id = ? AND scheme = ? AND identity = ?',
  insertKey: 'INSERT INTO service_keys (service_id, scheme, identity, key) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
  linkedMyKeys: 'SELECT mykey_id FROM links WHERE service_id = ?',
};

const CHANGE_COLUMNS = ['service_id', 'seq', 'kind', 'mykey_id', 'service_user_id', 'by', 'entry', 'at'] as const;
const MQTT_COLUMNS = ['topic', 'payload', 'created_at'] as const;

const WEBHOOK_COLUMNS = ['service_id', 'event', 'created_at', 'next_attempt_at'] as const;

// Statements over lists of ids (hub/store/list-statements.ts).
const QL = {
  linksOfMyKeys: listStatement((n) => `SELECT * FROM links WHERE mykey_id IN (${repeated(n)}) ORDER BY service_id`),
  setLinkStates: listStatement((n) => `UPDATE links SET state = ? WHERE service_id = ? AND mykey_id IN (${repeated(n)})`),
  storedKeys: listStatement((n) => `SELECT identity, key FROM service_keys WHERE service_id = ? AND scheme = ? AND identity IN (${repeated(n)})`),
  // Up to 512 ids, as the outbox publisher deletes what one round published.
  deleteMqtt: listStatement((n) => `DELETE FROM mqtt_outbox WHERE id IN (${repeated(n)})`, [1, 16, 128, 512]),
};

/** The repository over an executor (or a SQLite connection, through its executor). */
export function createLinkRepo(target: Sql | Db) {
  const sql = sqlOf(target);
  const run = async (text: string, params: readonly unknown[]): Promise<void> => void (await sql.run(text, params));
  /** Takes `n` seqs of a service's change log at once; returns the first (they follow it without a gap). */
  const takeSeqs = async (serviceId: string, n: number): Promise<number> => (await sql.get<{ head_seq: number }>(Q.takeSeqs, [n, serviceId]))!.head_seq - n + 1;
  /** Sets the state of a service's links with many MyKey IDs: a statement per slice of ids. */
  const setLinkStates = async (serviceId: string, mykeyIds: readonly string[], state: LinkRow['state']): Promise<void> => {
    for (const { text, params } of QL.setLinkStates.slices(mykeyIds, single)) await sql.run(text, [state, serviceId, ...params]);
  };
  const deleteMqttIn = async (ids: readonly number[]): Promise<void> => {
    for (const { text, params } of QL.deleteMqtt.slices(ids, single)) await sql.run(text, params);
  };
  return {
    service: (id: string): Promise<ServiceRow | undefined> => sql.get<ServiceRow>(Q.service, [id]),
    services: (): Promise<ServiceRow[]> => sql.all<ServiceRow>(Q.services),
    insertService: (row: Omit<ServiceRow, 'status' | 'head_seq' | 'key_scheme' | 'touch_assurance'>) =>
      run(Q.insertService, [row.id, row.name, row.sync_secret, row.webhook_url, row.webhook_secret, row.require_holder_proof, row.created_at]),
    updateWebhook: (id: string, url: string | null, secret: Buffer | null) => run(Q.updateWebhook, [url, secret, id]),
    setRequireHolderProof: (id: string, on: boolean) => run(Q.setRequireHolderProof, [on ? 1 : 0, id]),
    setTouchAssurance: (id: string, level: 'possession' | 'pin') => run(Q.setTouchAssurance, [level, id]),
    nextSeq: (serviceId: string): Promise<number> => takeSeqs(serviceId, 1),
    takeSeqs,
    insertCredential: (id: string, serviceId: string, label: string, hash: string, at: number) => run(Q.insertCredential, [id, serviceId, label, hash, at]),
    credential: (id: string) => sql.get<{ id: string; service_id: string; secret_hash: string; revoked_at: number | null }>(Q.credential, [id]),
    credentials: (serviceId: string) => sql.all<{ id: string; label: string; created_at: number; revoked_at: number | null }>(Q.credentials, [serviceId]),
    revokeCredential: async (serviceId: string, id: string, at: number): Promise<boolean> => (await sql.run(Q.revokeCredential, [at, id, serviceId])).changes > 0,
    link: (serviceId: string, mykeyId: string): Promise<LinkRow | undefined> => sql.get<LinkRow>(Q.link, [serviceId, mykeyId]),
    linkByUser: (serviceId: string, serviceUserId: string): Promise<LinkRow | undefined> => sql.get<LinkRow>(Q.linkByUser, [serviceId, serviceUserId]),
    linksOfMyKey: (mykeyId: string): Promise<LinkRow[]> => sql.all<LinkRow>(Q.linksOfMyKey, [mykeyId]),
    /** The links of many MyKey IDs, by MyKey ID, each one's in service order (as linksOfMyKey): a statement per slice of ids. */
    async linksOfMyKeys(mykeyIds: readonly string[]): Promise<Map<string, LinkRow[]>> {
      const out = new Map<string, LinkRow[]>();
      // Each id in one slice only, so a MyKey ID's links come from one ordered statement.
      for (const { text, params } of QL.linksOfMyKeys.slices([...new Set(mykeyIds)], single))
        for (const l of await sql.all<LinkRow>(text, params)) {
          const list = out.get(l.mykey_id);
          if (list) list.push(l);
          else out.set(l.mykey_id, [l]);
        }
      return out;
    },
    upsertLink: (serviceId: string, mykeyId: string, serviceUserId: string, at: number, by: string) => run(Q.upsertLink, [serviceId, mykeyId, serviceUserId, at, by]),
    deleteLink: (serviceId: string, mykeyId: string) => run(Q.deleteLink, [serviceId, mykeyId]),
    setLinkState: (serviceId: string, mykeyId: string, state: LinkRow['state']) => setLinkStates(serviceId, [mykeyId], state),
    setLinkStates,
    renameMyKey: (from: string, to: string) => run(Q.renameMyKey, [to, from]),
    /** The active links of a service (what a snapshot holds). */
    activeLinksOfService: (serviceId: string) => sql.all<{ mykey_id: string; service_user_id: string }>(Q.activeLinksOfService, [serviceId]),
    /** Queued with the transaction's other entries, written as multi-row INSERTs before it commits (sql.insertLater). */
    insertChange: (r: ChangeRow) => sql.insertLater('link_changes', CHANGE_COLUMNS, [r.service_id, r.seq, r.kind, r.mykey_id, r.service_user_id, r.by, r.entry, r.at]),
    changesAfter: async (serviceId: string, seq: number, limit: number): Promise<string[]> => (await sql.all<{ entry: string }>(Q.changesAfter, [serviceId, seq, limit])).map((r) => r.entry),
    /** Queued like insertChange; the rows get their ids (the publishing order) in the order they were queued. */
    insertMqtt: (topic: string, payload: string, at: number) => sql.insertLater('mqtt_outbox', MQTT_COLUMNS, [topic, payload, at]),
    pendingMqtt: (limit = 500) => sql.all<{ id: number; topic: string; payload: string }>(Q.pendingMqtt, [limit]),
    deleteMqtt: (id: number) => deleteMqttIn([id]),
    /** Deletes the rows published (batched) messages carried: a few statements of up to 512 ids, in one transaction. */
    deleteMqttMany: (ids: readonly number[]): Promise<void> => sql.tx(() => deleteMqttIn(ids)),
    /** Queued like insertChange, in the order queued (what a change appends: its id is not needed). */
    queueWebhook: (serviceId: string, event: string, at: number) => sql.insertLater('webhook_outbox', WEBHOOK_COLUMNS, [serviceId, event, at, at]),
    /** Queues a notice; returns its id. */
    insertWebhook: async (serviceId: string, event: string, at: number): Promise<number> => (await sql.get<{ id: number }>(Q.insertWebhook, [serviceId, event, at, at]))!.id,
    dueWebhooks: (now: number, limit = 50): Promise<WebhookRow[]> => sql.all<WebhookRow>(Q.dueWebhooks, [now, limit]),
    webhookDelivered: (id: number, at: number) => run(Q.webhookDelivered, [at, id]),
    webhookFailed: (id: number, next: number, error: string) => run(Q.webhookFailed, [next, error.slice(0, 500), id]),
    /** A service's undelivered notices, oldest first (batched delivery, hub/notify). */
    pendingWebhooks: (serviceId: string, limit: number): Promise<WebhookRow[]> => sql.all<WebhookRow>(Q.pendingWebhooks, [serviceId, limit]),
    /** Marks the notices of one delivered batch, in one transaction. */
    webhooksDelivered: (ids: readonly number[], at: number): Promise<void> =>
      sql.tx(async () => {
        for (const id of ids) await sql.run(Q.webhookDelivered, [at, id]);
      }),
    /** Records a failed attempt of every notice of one batch, in one transaction. */
    webhooksFailed: (ids: readonly number[], next: number, error: string): Promise<void> =>
      sql.tx(async () => {
        for (const id of ids) await sql.run(Q.webhookFailed, [next, error.slice(0, 500), id]);
      }),
    webhookHealth: async (serviceId: string) =>
      (await sql.get<{ pending: number; oldest: number | null; last_error: string | null; delivered: number }>(Q.webhookHealth, [serviceId, serviceId, serviceId]))!,
    /** Links per service and state, kept as links change (O(services), never a count of links). */
    linkCounts: () => sql.all<{ service_id: string; state: string; n: number }>(Q.linkCounts),
    /** Links of one service by state, kept as links change. */
    async linkCountsOf(serviceId: string): Promise<{ active: number; suspended: number }> {
      const out = { active: 0, suspended: 0 };
      for (const r of await sql.all<{ state: string; n: number }>(Q.linkCountsOf, [serviceId])) if (r.state === 'active' || r.state === 'suspended') out[r.state] = r.n;
      return out;
    },
    /**
     * Deletes up to `limit` notices delivered before `before` (retention, webhooks.retentionDays);
     * returns how many. Undelivered notices are never pruned.
     */
    pruneDelivered: async (before: number, limit = 5000): Promise<number> => (await sql.run(Q.pruneDelivered, [before, limit])).changes,
    setKeyScheme: (serviceId: string, scheme: KeyScheme) => run(Q.setKeyScheme, [scheme, serviceId]),
    storedKey: async (serviceId: string, scheme: KeyScheme, identity: string): Promise<string | undefined> => (await sql.get<{ key: string }>(Q.storedKey, [serviceId, scheme, identity]))?.key,
    /** The stored keys of many identities of a service under a scheme, by identity (those not stored are absent). */
    async storedKeys(serviceId: string, scheme: KeyScheme, identities: readonly string[]): Promise<Map<string, string>> {
      const out = new Map<string, string>();
      for (const { text, params } of QL.storedKeys.slices(identities, single)) {
        for (const r of await sql.all<{ identity: string; key: string }>(text, [serviceId, scheme, ...params])) out.set(r.identity, r.key);
      }
      return out;
    },
    insertKey: (serviceId: string, scheme: KeyScheme, identity: string, key: string) => run(Q.insertKey, [serviceId, scheme, identity, key]),
    /** MyKey IDs linked with a service, in any state. */
    linkedMyKeys: async (serviceId: string): Promise<string[]> => (await sql.all<{ mykey_id: string }>(Q.linkedMyKeys, [serviceId])).map((r) => r.mykey_id),
  };
}

export type LinkRepo = ReturnType<typeof createLinkRepo>;
