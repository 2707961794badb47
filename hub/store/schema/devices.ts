// Schema of enrolled edge devices and their sync lag history (migration versions 200-299).
// Only what an edge's status message carries is kept: no touches, no usage history.
import type { Migration } from '../migrations.ts';

/** How many lag samples are kept per edge (a day of 5-minute samples). */
export const LAG_SAMPLES_PER_EDGE = 288;

export const DEVICE_MIGRATIONS: Migration[] = [
  {
    version: 200,
    name: 'edge devices and lag samples',
    sql: `
      -- One row per edge: its current device certificate and what its last status said.
      -- status: active (may connect) or revoked (refused at CONNECT and disconnected at once).
      CREATE TABLE devices (
        edge_id          TEXT PRIMARY KEY,
        service_id       TEXT NOT NULL,
        cert_serial      TEXT NOT NULL,
        cert_fingerprint TEXT NOT NULL,
        not_after        INTEGER NOT NULL,
        status           TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
        revoked_at       INTEGER,
        revoked_reason   TEXT,
        enrolled_at      INTEGER NOT NULL,
        last_seen_at     INTEGER,
        version          TEXT,
        applied_seq      INTEGER NOT NULL DEFAULT 0,
        health           TEXT,
        online           INTEGER NOT NULL DEFAULT 0,
        lag              INTEGER
      );
      CREATE INDEX devices_service ON devices (service_id);
      CREATE UNIQUE INDEX devices_fingerprint ON devices (cert_fingerprint);
      -- Device certificates revoked by the hub (including ones replaced by a re-enrollment), so a
      -- certificate that was once valid is never accepted again.
      CREATE TABLE device_cert_revocations (
        cert_fingerprint TEXT PRIMARY KEY,
        cert_serial      TEXT NOT NULL,
        edge_id          TEXT NOT NULL,
        revoked_at       INTEGER NOT NULL,
        reason           TEXT NOT NULL
      );
      -- Sync lag over time for the console chart; capped per edge.
      CREATE TABLE edge_lag_samples (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        edge_id     TEXT NOT NULL,
        at          INTEGER NOT NULL,
        applied_seq INTEGER NOT NULL,
        lag         INTEGER NOT NULL
      );
      CREATE INDEX edge_lag_samples_edge ON edge_lag_samples (edge_id, id);
    `,
  },
  {
    version: 201,
    name: 'edge fleet state: who revoked a device, a derived state column and indexes for paged lists',
    sql: `
      -- Who revoked the device (an operator's name, or the API), beside when and why.
      ALTER TABLE devices ADD COLUMN revoked_by TEXT;
      -- One state per edge for the console's filters and counts: revoked, offline, or what the
      -- edge's own retained status says about its health (ok, degraded, stale, clock_unsure,
      -- reader_missing). Virtual: computed on read, indexed below.
      ALTER TABLE devices ADD COLUMN state TEXT GENERATED ALWAYS AS (
        CASE WHEN status = 'revoked' THEN 'revoked'
             WHEN online = 0 THEN 'offline'
             WHEN health IS NULL OR health = 'ok' THEN 'ok'
             ELSE health END) VIRTUAL;
      CREATE INDEX devices_state ON devices (state, edge_id);
      CREATE INDEX devices_service_state ON devices (service_id, state, edge_id);
      -- Versions of active edges (the filter's choices, the newest for 'outdated'): covering indexes.
      CREATE INDEX devices_version ON devices (status, version);
      CREATE INDEX devices_service_version ON devices (service_id, status, version);
      CREATE INDEX devices_last_seen ON devices (last_seen_at);
    `,
  },
];
