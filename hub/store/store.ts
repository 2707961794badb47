// The hub's store: one set of repositories over SQLite (the embedded default) or PostgreSQL (the
// scale-out store, chosen by `store.url`). Everything above hub/store sees only these repositories
// and their async methods; which engine is behind them is this file's business.
import { join } from 'node:path';
import { MyKeyError } from '../../shared/errors.ts';
import { createConsoleRepo } from './console-repo.ts';
import { openDatabase, type Db } from './db.ts';
import { createDeviceRepo } from './device-repo.ts';
import { createLinkRepo } from './link-repo.ts';
import { createMyKeyRepo } from './mykey-repo.ts';
import { createReleaseRepo } from './release-repo.ts';
import { createRevocationRepo } from './revocation-repo.ts';
import { sqlOf, type Sql } from './sql.ts';

export interface StoreConfig {
  /** SQLite file; empty means <dataDir>/hub.sqlite. */
  path: string;
  synchronous: 'NORMAL' | 'FULL';
  /** postgres://user@host:port/database: PostgreSQL instead of SQLite; empty for SQLite. */
  url?: string;
  /** PostgreSQL connections kept open. */
  poolSize?: number;
}

export interface Store {
  readonly sql: Sql;
  /** Where the data is, for a log line (a file, or the PostgreSQL URL without its password). */
  readonly location: string;
  readonly mykeys: ReturnType<typeof createMyKeyRepo>;
  readonly revocations: ReturnType<typeof createRevocationRepo>;
  readonly links: ReturnType<typeof createLinkRepo>;
  readonly devices: ReturnType<typeof createDeviceRepo>;
  readonly console: ReturnType<typeof createConsoleRepo>;
  readonly releases: ReturnType<typeof createReleaseRepo>;
  /** The SQLite connection (SQLite tools: backup, tests); throws on PostgreSQL. */
  readonly db: Db;
  close(): Promise<void>;
}

/** The repositories over an executor. */
export function storeOver(sql: Sql, location: string, db?: Db): Store {
  return {
    sql,
    location,
    mykeys: createMyKeyRepo(sql),
    revocations: createRevocationRepo(sql),
    links: createLinkRepo(sql),
    devices: createDeviceRepo(sql),
    console: createConsoleRepo(sql),
    releases: createReleaseRepo(sql),
    get db(): Db {
      if (!db) throw new MyKeyError('internal', 'this hub stores in PostgreSQL: there is no SQLite database');
      return db;
    },
    close: () => sql.close(),
  };
}

/** The store over an open SQLite database (already migrated by openDatabase), on its one executor (sqlOf). */
export function sqliteStore(db: Db, location = db.name): Store {
  return storeOver(sqlOf(db), location, db);
}

/** Opens the configured store: PostgreSQL when `url` is set, else the SQLite file; migrates it. */
export async function openStore(config: StoreConfig, dataDir: string): Promise<Store> {
  if (config.url) {
    const { openPostgresStore } = await import('./postgres.ts');
    return openPostgresStore(config.url, { poolSize: config.poolSize });
  }
  const path = config.path || join(dataDir, 'hub.sqlite');
  return sqliteStore(openDatabase(path, { synchronous: config.synchronous }), path);
}
