// Schema migrations, applied in version order inside one transaction each. Each feature owns its
// migrations in hub/store/schema/ and a range of versions: mykey 1-99, links 100-199, devices 200-299,
// console 300-399, releases 500-599, linkage 600-699; tables only PostgreSQL has (the hub replicas'
// shared challenges, rate buckets and schedules, the count shards) take 900-999, so no version is
// ever used twice. Times are integer milliseconds since the epoch (UTC).
//
// Each feature's PostgreSQL DDL stands beside its SQLite DDL (schema/<feature>.postgres.ts next to
// schema/<feature>.ts), with the same versions and names (test/hub/store/postgres-schema.test.ts
// checks the two lists match and that both stores end with the same tables): a new migration is
// written for both. What differs on PostgreSQL: every integer column is BIGINT (millisecond times,
// ids; pg hands them back as numbers: hub/store/postgres.ts), BLOB is BYTEA, AUTOINCREMENT is an
// identity column, the derived devices.state is a STORED generated column (PostgreSQL has no VIRTUAL
// ones), and the counts kept by triggers (migrations 20, 160) and the append-only audit log (300)
// are PL/pgSQL trigger functions. WITHOUT ROWID has no equivalent (every table is a heap with its
// indexes).
import { CONSOLE_MIGRATIONS } from './schema/console.ts';
import { CONSOLE_POSTGRES_MIGRATIONS } from './schema/console.postgres.ts';
import { DEVICE_MIGRATIONS } from './schema/devices.ts';
import { DEVICE_POSTGRES_MIGRATIONS } from './schema/devices.postgres.ts';
import { LINK_MIGRATIONS } from './schema/links.ts';
import { LINK_POSTGRES_MIGRATIONS } from './schema/links.postgres.ts';
import { LINKAGE_MIGRATIONS } from './schema/linkage.ts';
import { LINKAGE_POSTGRES_MIGRATIONS } from './schema/linkage.postgres.ts';
import { MYKEY_MIGRATIONS } from './schema/mykey.ts';
import { MYKEY_POSTGRES_MIGRATIONS } from './schema/mykey.postgres.ts';
import { RELEASE_MIGRATIONS } from './schema/releases.ts';
import { RELEASE_POSTGRES_MIGRATIONS } from './schema/releases.postgres.ts';
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
  ...MYKEY_POSTGRES_MIGRATIONS,
  ...LINK_POSTGRES_MIGRATIONS,
  ...DEVICE_POSTGRES_MIGRATIONS,
  ...CONSOLE_POSTGRES_MIGRATIONS,
  ...RELEASE_POSTGRES_MIGRATIONS,
  ...LINKAGE_POSTGRES_MIGRATIONS,
  ...REPLICA_POSTGRES_MIGRATIONS,
].sort(byVersion);
