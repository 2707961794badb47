// Tables only PostgreSQL has (versions 900-999): what several hub replicas on one database share
// (hub/replicas), and the count shards that replace the hot rows of mykey_counts and link_counts.
// SQLite has one hub and one writer, so it has no counterpart (test/hub/store/postgres-schema.test.ts
// leaves these tables out of its comparison).
import type { Migration } from '../migrations.ts';

export const REPLICA_POSTGRES_MIGRATIONS: Migration[] = [
  {
    // Hub replicas (hub/replicas): what one process kept in memory, shared by every hub on the database.
    // Challenges and rate-limit buckets are UNLOGGED: written on every request, they need no WAL
    // flush per commit (a row lock held through an fsync would queue every request of a client
    // behind it), and losing them in a database crash costs what a hub restart costs today: clients
    // ask for a new challenge, buckets start full. (Unlogged tables are not copied to a standby.)
    version: 900,
    name: 'hub replicas: challenges, rate-limit buckets, once-per-period schedules',
    sql: `
      CREATE UNLOGGED TABLE replica_challenges (
        challenge  TEXT PRIMARY KEY,
        operation  TEXT NOT NULL,
        params     TEXT NOT NULL,
        device     TEXT,
        client     TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at    BIGINT
      );
      CREATE INDEX replica_challenges_outstanding ON replica_challenges (client, expires_at) WHERE used_at IS NULL;
      CREATE INDEX replica_challenges_expiry ON replica_challenges (expires_at);
      CREATE UNLOGGED TABLE replica_rate_buckets (
        scope  TEXT NOT NULL,
        client TEXT NOT NULL,
        tokens DOUBLE PRECISION NOT NULL,
        at     BIGINT NOT NULL,
        ok     BOOLEAN NOT NULL,
        PRIMARY KEY (scope, client)
      );
      CREATE INDEX replica_rate_buckets_at ON replica_rate_buckets (at);
      CREATE TABLE replica_schedules (
        name    TEXT PRIMARY KEY,
        next_at BIGINT NOT NULL,
        ran_at  BIGINT NOT NULL
      );
    `,
  },
  {
    // Counts without a hot row: every registration (and every link) added 1 to the same row of
    // mykey_counts (link_counts), and PostgreSQL holds that row's lock until the commit's WAL flush,
    // so concurrent registrations queued one flush at a time (about 100/s). Each connection now adds
    // to its own shard (its backend pid modulo 16); mykey_counts and link_counts become views that sum
    // the shards, with the same columns as SQLite's tables (SQLite has one writer: no contention).
    version: 901,
    name: 'counts kept in shards per connection (no hot row)',
    sql: `
      CREATE TABLE mykey_count_shards (
        status TEXT NOT NULL,
        shard  SMALLINT NOT NULL,
        n      BIGINT NOT NULL,
        PRIMARY KEY (status, shard)
      );
      INSERT INTO mykey_count_shards (status, shard, n) SELECT status, 0, n FROM mykey_counts;
      DROP TABLE mykey_counts;
      CREATE VIEW mykey_counts AS SELECT status, SUM(n)::BIGINT AS n FROM mykey_count_shards GROUP BY status;
      CREATE OR REPLACE FUNCTION mykey_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE s SMALLINT := pg_backend_pid() % 16;
      BEGIN
        IF TG_OP <> 'INSERT' THEN
          INSERT INTO mykey_count_shards AS c (status, shard, n) VALUES (OLD.status, s, -1) ON CONFLICT (status, shard) DO UPDATE SET n = c.n - 1;
        END IF;
        IF TG_OP <> 'DELETE' THEN
          INSERT INTO mykey_count_shards AS c (status, shard, n) VALUES (NEW.status, s, 1) ON CONFLICT (status, shard) DO UPDATE SET n = c.n + 1;
        END IF;
        RETURN NULL;
      END $$;
      CREATE TABLE link_count_shards (
        service_id TEXT NOT NULL,
        state      TEXT NOT NULL,
        shard      SMALLINT NOT NULL,
        n          BIGINT NOT NULL,
        PRIMARY KEY (service_id, state, shard)
      );
      INSERT INTO link_count_shards (service_id, state, shard, n) SELECT service_id, state, 0, n FROM link_counts;
      DROP TABLE link_counts;
      CREATE VIEW link_counts AS SELECT service_id, state, SUM(n)::BIGINT AS n FROM link_count_shards GROUP BY service_id, state;
      CREATE OR REPLACE FUNCTION link_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE s SMALLINT := pg_backend_pid() % 16;
      BEGIN
        IF TG_OP <> 'INSERT' THEN
          INSERT INTO link_count_shards AS c (service_id, state, shard, n) VALUES (OLD.service_id, OLD.state, s, -1)
            ON CONFLICT (service_id, state, shard) DO UPDATE SET n = c.n - 1;
        END IF;
        IF TG_OP <> 'DELETE' THEN
          INSERT INTO link_count_shards AS c (service_id, state, shard, n) VALUES (NEW.service_id, NEW.state, s, 1)
            ON CONFLICT (service_id, state, shard) DO UPDATE SET n = c.n + 1;
        END IF;
        RETURN NULL;
      END $$;
    `,
  },
];
