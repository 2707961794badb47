// Schema migrations, applied in version order inside one transaction each. Each feature owns its
// migrations in hub/store/schema/ and a range of versions: mykey 1-99, links 100-199, devices 200-299,
// console 300-399, releases 500-599, linkage 600-699; tables only PostgreSQL has (the hub replicas'
// shared challenges, rate buckets and schedules) take 900-999, so no version is ever used twice. The
// PostgreSQL store has the same versions in its own DDL (schema/postgres.ts; a test checks the two
// lists match): a new migration is written for both.
// Times are integer milliseconds since the epoch (UTC).
import { CONSOLE_MIGRATIONS } from './schema/console.ts';
import { DEVICE_MIGRATIONS } from './schema/devices.ts';
import { LINK_MIGRATIONS } from './schema/links.ts';
import { LINKAGE_MIGRATIONS } from './schema/linkage.ts';
import { MYKEY_MIGRATIONS } from './schema/mykey.ts';
import { RELEASE_MIGRATIONS } from './schema/releases.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [...MYKEY_MIGRATIONS, ...LINK_MIGRATIONS, ...DEVICE_MIGRATIONS, ...CONSOLE_MIGRATIONS, ...RELEASE_MIGRATIONS, ...LINKAGE_MIGRATIONS].sort((a, b) => a.version - b.version);
