// Schema of signed edge releases, their rollouts and each edge's update state (versions 500-599).
// Bundles live as files under <dataDir>/releases (served with Range); the table keeps the signed
// manifest exactly as it was uploaded. Nothing here records touches or usage.
import type { Migration } from '../migrations.ts';

export const RELEASE_MIGRATIONS: Migration[] = [
  {
    version: 500,
    name: 'releases, rollouts and edge update state',
    sql: `
      -- signed: the SignedRelease envelope (shared/release.ts) as uploaded; the other columns are read
      -- from its verified manifest. bundle_ready: the bundle was uploaded and matched digest and size.
      CREATE TABLE releases (
        version      TEXT PRIMARY KEY,
        signed       TEXT NOT NULL,
        key_id       TEXT NOT NULL,
        digest       TEXT NOT NULL,
        size         INTEGER NOT NULL,
        services     TEXT NOT NULL,
        bundle_ready INTEGER NOT NULL DEFAULT 0,
        uploaded_at  INTEGER NOT NULL
      );
      -- A rollout offers one release to a service (or all), a share of its edges, or named edges.
      -- It halts by itself when failures reach max_failures (abort criteria).
      CREATE TABLE rollouts (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        version       TEXT NOT NULL REFERENCES releases (version),
        service_id    TEXT,
        percent       INTEGER NOT NULL CHECK (percent BETWEEN 1 AND 100),
        edges         TEXT,
        max_failures  INTEGER NOT NULL CHECK (max_failures >= 1),
        state         TEXT NOT NULL CHECK (state IN ('active', 'halted', 'completed')),
        halted_reason TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
      );
      -- What each edge last said about its update: the version it runs and the state of the last one.
      CREATE TABLE edge_updates (
        edge_id    TEXT PRIMARY KEY,
        running    TEXT NOT NULL,
        version    TEXT,
        rollout_id INTEGER,
        state      TEXT NOT NULL,
        code       TEXT,
        reason     TEXT,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX edge_updates_rollout ON edge_updates (rollout_id, state);
    `,
  },
];
