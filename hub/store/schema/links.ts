// Schema of services, their API credentials, links, the per-service change log and the outboxes
// (migration versions 100-199).
import type { Migration } from '../migrations.ts';

// Migration 160 but its triggers, in two parts: its PostgreSQL text (links.postgres.ts) is these
// through toPostgres, and the triggers in PL/pgSQL.
export const LINK_COUNTS_160 = `
      CREATE TABLE link_counts (
        service_id TEXT NOT NULL,
        state      TEXT NOT NULL,
        n          INTEGER NOT NULL,
        PRIMARY KEY (service_id, state)
      ) WITHOUT ROWID;
      INSERT INTO link_counts (service_id, state, n) SELECT service_id, state, COUNT(*) FROM links GROUP BY service_id, state;
`;
export const WEBHOOK_COUNTS_160 = `      -- Notices delivered so far per service (the pruned ones included).
      CREATE TABLE webhook_counts (
        service_id TEXT PRIMARY KEY,
        delivered  INTEGER NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO webhook_counts (service_id, delivered)
        SELECT service_id, COUNT(*) FROM webhook_outbox WHERE delivered_at IS NOT NULL GROUP BY service_id;
`;

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
  {
    // National size: link counts per service and state, and delivered webhook notices per service,
    // kept by triggers (the services page and the console never count whole tables); delivered
    // notices are pruned after a retention (webhooks.retentionDays), through their own index.
    version: 160,
    name: 'link and webhook counts kept by triggers; delivered notices indexed for pruning',
    sql: `${LINK_COUNTS_160}      CREATE TRIGGER link_counts_insert AFTER INSERT ON links BEGIN
        INSERT INTO link_counts (service_id, state, n) VALUES (NEW.service_id, NEW.state, 1)
          ON CONFLICT (service_id, state) DO UPDATE SET n = n + 1;
      END;
      CREATE TRIGGER link_counts_delete AFTER DELETE ON links BEGIN
        UPDATE link_counts SET n = n - 1 WHERE service_id = OLD.service_id AND state = OLD.state;
      END;
      CREATE TRIGGER link_counts_update AFTER UPDATE OF state, service_id ON links
        WHEN OLD.state <> NEW.state OR OLD.service_id <> NEW.service_id BEGIN
        UPDATE link_counts SET n = n - 1 WHERE service_id = OLD.service_id AND state = OLD.state;
        INSERT INTO link_counts (service_id, state, n) VALUES (NEW.service_id, NEW.state, 1)
          ON CONFLICT (service_id, state) DO UPDATE SET n = n + 1;
      END;
${WEBHOOK_COUNTS_160}      CREATE TRIGGER webhook_counts_delivered AFTER UPDATE OF delivered_at ON webhook_outbox
        WHEN OLD.delivered_at IS NULL AND NEW.delivered_at IS NOT NULL BEGIN
        INSERT INTO webhook_counts (service_id, delivered) VALUES (NEW.service_id, 1)
          ON CONFLICT (service_id) DO UPDATE SET delivered = delivered + 1;
      END;
      CREATE INDEX webhook_outbox_delivered ON webhook_outbox (delivered_at) WHERE delivered_at IS NOT NULL;
    `,
  },
  {
    // PIN-checked touch (#14): what a touch at the service's readers proves, sent to its edges in the
    // device config. 'possession' (no PIN) is what every service had before.
    version: 175,
    name: 'touch assurance per service',
    sql: `ALTER TABLE services ADD COLUMN touch_assurance TEXT NOT NULL DEFAULT 'possession' CHECK (touch_assurance IN ('possession', 'pin'));`,
  },
];
