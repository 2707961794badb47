// Schema of services, their API credentials, links, the per-service change log and the outboxes
// (migration versions 100-199).
import type { Migration } from '../migrations.ts';

export const LINK_MIGRATIONS: Migration[] = [
  {
    version: 100,
    name: 'services, links, change log, outboxes',
    sql: `
      CREATE TABLE services (
        id                TEXT PRIMARY KEY,
        name              TEXT NOT NULL,
        status            TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
        -- HMAC key of the keyed identities sent to this service's edges (shared/sync.ts keyedId)
        sync_secret       BLOB NOT NULL,
        webhook_url       TEXT,
        webhook_secret    BLOB,
        require_holder_proof INTEGER NOT NULL DEFAULT 0,
        head_seq          INTEGER NOT NULL DEFAULT 0,
        created_at        INTEGER NOT NULL
      );
      -- API credentials of a service's business system: only a hash of the secret is kept.
      CREATE TABLE service_credentials (
        id          TEXT PRIMARY KEY,
        service_id  TEXT NOT NULL REFERENCES services (id),
        label       TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        revoked_at  INTEGER
      );
      -- The current service id per (service, MyKey ID). state suspended: the MyKey ID is suspended,
      -- edges have purged it, and it comes back if the MyKey ID resumes.
      CREATE TABLE links (
        service_id      TEXT NOT NULL REFERENCES services (id),
        mykey_id        TEXT NOT NULL,
        service_user_id TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('active', 'suspended')),
        linked_at       INTEGER NOT NULL,
        linked_by       TEXT NOT NULL,
        PRIMARY KEY (service_id, mykey_id)
      );
      CREATE UNIQUE INDEX links_service_user ON links (service_id, service_user_id);
      CREATE INDEX links_mykey ON links (mykey_id);
      -- Each service's ordered change log (seq from 1, no gaps): what edges apply. Links and their
      -- changes are recorded here; lookups never are.
      CREATE TABLE link_changes (
        service_id      TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        kind            TEXT NOT NULL,
        mykey_id        TEXT NOT NULL,
        service_user_id TEXT,
        by              TEXT NOT NULL,
        entry           TEXT NOT NULL,
        at              INTEGER NOT NULL,
        PRIMARY KEY (service_id, seq)
      );
      -- MQTT publications not yet handed to the broker (stored before published).
      CREATE TABLE mqtt_outbox (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        topic      TEXT NOT NULL,
        payload    TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      -- Signed webhook notices (失効連絡) to services, retried with backoff until delivered.
      CREATE TABLE webhook_outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        service_id      TEXT NOT NULL,
        event           TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        delivered_at    INTEGER,
        last_error      TEXT
      );
      CREATE INDEX webhook_outbox_pending ON webhook_outbox (service_id, id) WHERE delivered_at IS NULL;
    `,
  },
  {
    // Trust hardening: the holder's proof at the counter is on by default. Services made before this
    // had it off only because that was the old default (no one chose it), so they are turned on; an
    // operator who wants possession only turns it off on the service page (audited).
    version: 101,
    name: 'holder proof at the counter on by default',
    sql: `UPDATE services SET require_holder_proof = 1;`,
  },
  {
    // Keyed identities (shared/sync.ts): which derivation each service's edges use, and the
    // memory-hard keys derived once per (service, identity), so neither a snapshot nor a change ever
    // derives a whole service again. A service moves to the current derivation with a `rekey` entry.
    version: 150,
    name: 'keyed identity derivation per service, stored derived keys',
    sql: `
      ALTER TABLE services ADD COLUMN key_scheme TEXT NOT NULL DEFAULT 'hmac-sha256';
      CREATE TABLE service_keys (
        service_id TEXT NOT NULL,
        scheme     TEXT NOT NULL,
        identity   TEXT NOT NULL,  -- mykey:<MyKey ID> or cert:<issuerKey>:<serial>
        key        TEXT NOT NULL,
        PRIMARY KEY (service_id, scheme, identity)
      ) WITHOUT ROWID;
    `,
  },
];
