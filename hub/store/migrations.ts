// Schema migrations, applied in version order inside one transaction each. Each feature owns its
// migrations in hub/store/schema/ and a range of versions: mykey 1-99, links 100-199, devices 200-299,
// console 300-399, releases 500-599, linkage 600-699; tables only PostgreSQL has (the hub replicas'
// shared challenges, rate buckets and schedules, the count shards) take 900-999, so no version is
// ever used twice. Times are integer milliseconds since the epoch (UTC).
//
// The PostgreSQL migrations have the same versions and names as the SQLite ones
// (test/hub/store/postgres-schema.test.ts checks the two lists match and that both stores end with
// the same tables, columns and indexes). Most are derived from the SQLite text by toPostgres
// (schema/dialect.ts), which rewrites what differs mechanically: every integer column is BIGINT
// (millisecond times, ids; pg hands them back as numbers: hub/store/postgres.ts), BLOB is BYTEA, the
// rowid key (INTEGER PRIMARY KEY, AUTOINCREMENT or not) is an identity column, the derived
// devices.state is a STORED generated column (PostgreSQL has no VIRTUAL ones), and WITHOUT ROWID has
// no equivalent (every table is a heap with its indexes). Written by hand (schema/<feature>.postgres.ts):
// the triggers of migrations 20 and 160 (counts) and 300 (the append-only audit log), which are
// PL/pgSQL functions there (those migrations' tables still come from the SQLite text, through
// toPostgres), and the 900-999 tables only PostgreSQL has. A new migration is written once, in
// SQLite's dialect; one with a trigger needs its PostgreSQL trigger by hand (toPostgres refuses it).
import { CONSOLE_MIGRATIONS } from './schema/console.ts';
import { CONSOLE_POSTGRES_BY_HAND } from './schema/console.postgres.ts';
import { DEVICE_MIGRATIONS } from './schema/devices.ts';
import { postgresMigrations } from './schema/dialect.ts';
import { LINK_MIGRATIONS } from './schema/links.ts';
import { LINK_POSTGRES_BY_HAND } from './schema/links.postgres.ts';
import { LINKAGE_MIGRATIONS } from './schema/linkage.ts';
import { MYKEY_MIGRATIONS } from './schema/mykey.ts';
import { MYKEY_POSTGRES_BY_HAND } from './schema/mykey.postgres.ts';
import { RELEASE_MIGRATIONS } from './schema/releases.ts';
import { REPLICA_POSTGRES_MIGRATIONS } from './schema/replicas.postgres.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const byVersion = (a: Migration, b: Migration) => a.version - b.version;

/** The SQLite store's migrations (hub/store/db.ts). */
export const MIGRATIONS: Migration[] = [...MYKEY_MIGRATIONS, ...LINK_MIGRATIONS, ...DEVICE_MIGRATIONS, ...CONSOLE_MIGRATIONS, ...RELEASE_MIGRATIONS, ...LINKAGE_MIGRATIONS].sort(byVersion);

/** The PostgreSQL store's migrations (hub/store/postgres.ts): the same versions, plus 900-999. */
export const POSTGRES_MIGRATIONS: Migration[] = [
  ...postgresMigrations(MYKEY_MIGRATIONS, MYKEY_POSTGRES_BY_HAND),
  ...postgresMigrations(LINK_MIGRATIONS, LINK_POSTGRES_BY_HAND),
  ...postgresMigrations(DEVICE_MIGRATIONS),
  ...postgresMigrations(CONSOLE_MIGRATIONS, CONSOLE_POSTGRES_BY_HAND),
  ...postgresMigrations(RELEASE_MIGRATIONS),
  ...postgresMigrations(LINKAGE_MIGRATIONS),
  ...REPLICA_POSTGRES_MIGRATIONS,
].sort(byVersion);
