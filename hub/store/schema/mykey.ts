// Schema of MyKey IDs, certificate bindings and revocation (migration versions 1-99).
import type { Migration } from '../migrations.ts';

// Migration 20 but its triggers, in two parts: its PostgreSQL text (mykey.postgres.ts) is these
// through toPostgres, and the triggers in PL/pgSQL.
export const MYKEY_COUNTS_20 = `
      CREATE TABLE mykey_counts (
        status TEXT PRIMARY KEY,
        n      INTEGER NOT NULL
      );
      INSERT INTO mykey_counts (status, n) SELECT status, COUNT(*) FROM mykey_ids GROUP BY status;
`;
export const CRL_MATCH_MARKS_20 = `      -- Per issuer key, the CRL every binding up to binding_mark (a cert_bindings.id) has been matched
      -- against: the next CRL of that key is matched, for those bindings, only on its entries that
      -- were not on this one; bindings after the mark are matched against the whole CRL.
      CREATE TABLE crl_match_marks (
        issuer_key   TEXT PRIMARY KEY,
        this_update  INTEGER NOT NULL,
        crl_number   TEXT,
        binding_mark INTEGER NOT NULL
      );
`;

export const MYKEY_MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'mykey ids, certificate bindings, revocation',
    sql: `
      CREATE TABLE mykey_ids (
        id                TEXT PRIMARY KEY,
        status            TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'invalidated')),
        status_reason     TEXT,
        created_at        INTEGER NOT NULL,
        status_changed_at INTEGER NOT NULL
      );
      -- MyKey IDs given up by a change of id: never assigned again, so a stale cache or a card's
      -- MyKey area can never point at someone else.
      CREATE TABLE retired_mykey_ids (
        id         TEXT PRIMARY KEY,
        retired_at INTEGER NOT NULL
      );
      -- The history of certificates bound to each MyKey ID. state: current (the one in use),
      -- carried_over (replaced by a renewed certificate or new card), ended (the MyKey ID was invalidated).
      CREATE TABLE cert_bindings (
        id                INTEGER PRIMARY KEY,
        mykey_id          TEXT NOT NULL REFERENCES mykey_ids (id),
        state             TEXT NOT NULL CHECK (state IN ('current', 'carried_over', 'ended')),
        fingerprint       TEXT NOT NULL,
        issuer_key        TEXT NOT NULL,
        serial_hex        TEXT NOT NULL,
        subject_cn        TEXT,
        not_after         INTEGER NOT NULL,
        bound_at          INTEGER NOT NULL,
        unbound_at        INTEGER,
        revoked_at        INTEGER,
        revocation_reason TEXT
      );
      CREATE UNIQUE INDEX cert_bindings_one_current ON cert_bindings (mykey_id) WHERE state = 'current';
      CREATE UNIQUE INDEX cert_bindings_live_serial ON cert_bindings (issuer_key, serial_hex) WHERE state <> 'ended';
      CREATE INDEX cert_bindings_fingerprint ON cert_bindings (fingerprint);
      CREATE INDEX cert_bindings_mykey ON cert_bindings (mykey_id);
      -- Lifecycle changes of MyKey IDs (never lookups): the feed that the per-service change logs and
      -- the console read.
      CREATE TABLE mykey_events (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        mykey_id TEXT NOT NULL,
        kind     TEXT NOT NULL,
        reason   TEXT,
        detail   TEXT,
        at       INTEGER NOT NULL
      );
      -- The CRL last applied per issuer (issuer_key = hash of the issuer Name).
      CREATE TABLE crl_state (
        issuer_key  TEXT PRIMARY KEY,
        crl_number  TEXT,
        this_update INTEGER NOT NULL,
        next_update INTEGER,
        entries     INTEGER NOT NULL,
        source      TEXT NOT NULL,
        file        TEXT NOT NULL,
        applied_at  INTEGER NOT NULL
      );
      CREATE TABLE revocation_runs (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        source          TEXT NOT NULL,
        started_at      INTEGER NOT NULL,
        finished_at     INTEGER NOT NULL,
        ok              INTEGER NOT NULL,
        crl_number      TEXT,
        entries         INTEGER,
        matched         INTEGER,
        newly_suspended INTEGER,
        duration_ms     INTEGER NOT NULL,
        error           TEXT
      );
    `,
  },
  {
    version: 2,
    name: 'certificate bindings and CRL state keyed by the issuer key; why a revocation run refused',
    sql: `
      -- The key identifier of the trust anchor whose key signed the certificate (hex: its
      -- subjectKeyIdentifier, else SHA-1 of its public key). Two live CA keys may share one name
      -- (a rollover), and a serial is unique only per key: CRLs are matched per key, and a serial
      -- reused under a new key never finds another holder's binding. '' = not yet known: rows bound
      -- before this migration; the CRL manager fills them in at start from the configured anchors
      -- (where exactly one anchor has the row's issuer name).
      ALTER TABLE cert_bindings ADD COLUMN issuer_key_id TEXT NOT NULL DEFAULT '';
      DROP INDEX cert_bindings_live_serial;
      CREATE UNIQUE INDEX cert_bindings_live_serial ON cert_bindings (issuer_key, issuer_key_id, serial_hex) WHERE state <> 'ended';
      CREATE INDEX cert_bindings_issuer_key_id ON cert_bindings (issuer_key_id);
      -- crl_state.issuer_key from now on holds the issuer key id (rows of earlier versions keep the
      -- name hash until their issuer's next CRL is applied). The error code of a refused run, and a
      -- warning of an applied one (a CRL already past nextUpdate).
      ALTER TABLE revocation_runs ADD COLUMN code TEXT;
      ALTER TABLE revocation_runs ADD COLUMN warning TEXT;
    `,
  },
  {
    // National size (one hub, a million MyKey IDs): counts kept as rows change, so /healthz and the
    // console never count whole tables; and what a CRL run needs to match only what is new.
    version: 20,
    name: 'MyKey ID counts kept by triggers; CRL match marks',
    sql: `${MYKEY_COUNTS_20}      CREATE TRIGGER mykey_counts_insert AFTER INSERT ON mykey_ids BEGIN
        INSERT INTO mykey_counts (status, n) VALUES (NEW.status, 1) ON CONFLICT (status) DO UPDATE SET n = n + 1;
      END;
      CREATE TRIGGER mykey_counts_delete AFTER DELETE ON mykey_ids BEGIN
        UPDATE mykey_counts SET n = n - 1 WHERE status = OLD.status;
      END;
      CREATE TRIGGER mykey_counts_update AFTER UPDATE OF status ON mykey_ids WHEN OLD.status <> NEW.status BEGIN
        UPDATE mykey_counts SET n = n - 1 WHERE status = OLD.status;
        INSERT INTO mykey_counts (status, n) VALUES (NEW.status, 1) ON CONFLICT (status) DO UPDATE SET n = n + 1;
      END;
${CRL_MATCH_MARKS_20}    `,
  },
  {
    version: 3,
    name: 'the authorityKeyIdentifier of each bound certificate (the issuing key in the identity edges see)',
    sql: `
      -- The certificate's own authorityKeyIdentifier keyIdentifier (RFC 5280 4.2.1.1), lower-case hex;
      -- '' when the certificate has none. It is part of the certificate identity edges key touches
      -- with from key scheme scrypt-v3 on (shared/cert-identity.ts), so a serial reused under a rolled
      -- over CA key never gives another holder's key. The certificate DER is not stored: rows bound
      -- before this take the key id of the anchor they were filed under (its subjectKeyIdentifier,
      -- which the AKI of a certificate it signed names); rows whose key id is still unknown stay NULL
      -- until fillIssuerKeyIds fills both.
      ALTER TABLE cert_bindings ADD COLUMN cert_aki TEXT;
      UPDATE cert_bindings SET cert_aki = issuer_key_id WHERE issuer_key_id <> '';
    `,
  },
];
