// Schema of the operator console: operators, their sessions, sign-in failure counters, enrollment
// tokens for new edges, and the append-only audit log (migration versions 300-399).
import type { Migration } from '../migrations.ts';

// Migration 300 but its triggers: its PostgreSQL text (console.postgres.ts) is this through toPostgres,
// and the append-only triggers in PL/pgSQL.
export const CONSOLE_TABLES_300 = `
      -- role 'operator' sees and manages everything; 'service_admin' only the service in service_id.
      CREATE TABLE console_operators (
        name          TEXT PRIMARY KEY,
        role          TEXT NOT NULL CHECK (role IN ('operator', 'service_admin')),
        service_id    TEXT,
        -- scrypt$<log2 N>$<r>$<p>$<salt b64url>$<key b64url> (hub/console/password.ts)
        password_hash TEXT NOT NULL,
        disabled      INTEGER NOT NULL DEFAULT 0,
        created_at    INTEGER NOT NULL,
        last_sign_in_at INTEGER,
        CHECK ((role = 'service_admin') = (service_id IS NOT NULL))
      );
      -- Server-side sessions. Only a hash of the cookie value is kept; the CSRF token is bound to the
      -- session (synchronizer token pattern).
      CREATE TABLE console_sessions (
        id_hash       TEXT PRIMARY KEY,
        operator      TEXT NOT NULL REFERENCES console_operators (name),
        csrf_token    TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL
      );
      CREATE INDEX console_sessions_operator ON console_sessions (operator);
      -- Failed sign-ins per account name and per client address, for lockout.
      CREATE TABLE console_sign_in_failures (
        kind          TEXT NOT NULL CHECK (kind IN ('account', 'address')),
        key           TEXT NOT NULL,
        failures      INTEGER NOT NULL,
        window_start  INTEGER NOT NULL,
        locked_until  INTEGER,
        PRIMARY KEY (kind, key)
      );
      -- One-time enrollment tokens: bound to a service and an edge id, expiring, stored hashed.
      CREATE TABLE enrollment_tokens (
        id            TEXT PRIMARY KEY,
        secret_hash   TEXT NOT NULL,
        service_id    TEXT NOT NULL REFERENCES services (id),
        edge_id       TEXT NOT NULL,
        created_by    TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL,
        used_at       INTEGER,
        revoked_at    INTEGER,
        revoked_by    TEXT
      );
      CREATE INDEX enrollment_tokens_service ON enrollment_tokens (service_id, created_at);
      -- Every operator action: who, what, when, on what. Append-only (the triggers refuse changes).
      CREATE TABLE audit_log (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        at            INTEGER NOT NULL,
        actor         TEXT NOT NULL,
        role          TEXT,
        action        TEXT NOT NULL,
        target        TEXT,
        service_id    TEXT,
        outcome       TEXT NOT NULL DEFAULT 'ok',
        detail        TEXT
      );
      CREATE INDEX audit_log_service ON audit_log (service_id, id);
`;

export const CONSOLE_MIGRATIONS: Migration[] = [
  {
    version: 300,
    name: 'console operators, sessions, sign-in failures, enrollment tokens, audit log',
    sql: `${CONSOLE_TABLES_300}      CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
      CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    `,
  },
  {
    version: 301,
    name: 'console trust hardening: operator-allowed re-enrollment, audit entries for the owning service, sign-in limits before the hash',
    sql: `
      -- Set only by a platform operator: the token may enroll an edge id whose device was revoked
      -- (in its own service, or, so moved, in another). Without it such a redemption is refused.
      ALTER TABLE enrollment_tokens ADD COLUMN allow_revoked INTEGER NOT NULL DEFAULT 0;
      -- A refused attempt on something of another service (an edge id it owns) is filed under the
      -- actor's service (service_id) and shown as well to the owner (owner_service_id).
      ALTER TABLE audit_log ADD COLUMN owner_service_id TEXT;
      CREATE INDEX audit_log_owner ON audit_log (owner_service_id, id);
      -- Sign-in attempts are counted before the password hash runs, per account name and address
      -- (account_address), per client address (IPv4 address or IPv6 /64) and per account name over all
      -- addresses. strikes: locks so far, for the back-off. The old counters are only transient state.
      DROP TABLE console_sign_in_failures;
      CREATE TABLE console_sign_in_failures (
        kind          TEXT NOT NULL CHECK (kind IN ('account', 'address', 'account_address')),
        key           TEXT NOT NULL,
        failures      INTEGER NOT NULL,
        window_start  INTEGER NOT NULL,
        locked_until  INTEGER,
        strikes       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (kind, key)
      );
    `,
  },
  {
    version: 302,
    name: 'console at fleet scale: enrollment tokens by edge id',
    sql: `
      -- Issuing a token warns when the edge id already has an unused one.
      CREATE INDEX enrollment_tokens_edge ON enrollment_tokens (edge_id, used_at, revoked_at);
      CREATE INDEX audit_log_actor ON audit_log (actor, id);
    `,
  },
];
