// The PostgreSQL store (store.url): the repositories' SQL on pg's connection pool, the schema of
// hub/store/migrations.ts (POSTGRES_MIGRATIONS), and transactions on one pooled connection each.
//
// Durability: a write is acknowledged after its COMMIT returns, and PostgreSQL (synchronous_commit on,
// its default) has flushed the commit to its WAL by then, so an acknowledged write survives a kill -9
// of the hub (and of the database server). Replicas of the hub share one database: the migrations take
// an advisory lock, so hubs starting together migrate once.
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import { MyKeyError } from '../../shared/errors.ts';
import { POSTGRES_MIGRATIONS } from './migrations.ts';
import { DeferredInserts, type Sql, type TxOptions } from './sql.ts';
import { storeOver, type Store } from './store.ts';

/** Advisory lock key of the migrations (any constant shared by every hub on the database). */
const MIGRATION_LOCK = '7885681097389061938';

/**
 * BIGINT (int8) and NUMERIC come back as numbers: every such column holds milliseconds, ids, counts
 * or sequence numbers, far below 2^53. (pg's default is a string, to be safe with larger values.)
 */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
} as pg.CustomTypesConfig;

interface Frame {
  client: pg.PoolClient;
  open: boolean;
  savepoints: number;
  deferred: DeferredInserts;
}

/** The executor over a pool: `?` placeholders become $1, $2...; statements are prepared by name per connection. */
export function postgresSql(pool: pg.Pool): Sql & { pool: pg.Pool } {
  const als = new AsyncLocalStorage<Frame>();
  const prepared = new Map<string, { name: string; text: string }>();
  const statement = (text: string) => {
    let p = prepared.get(text);
    if (!p) {
      let i = 0;
      // The repositories' SQL has no `?` inside string literals, so every `?` is a parameter.
      p = { name: `mk${prepared.size}`, text: text.replace(/\?/g, () => `$${++i}`) };
      prepared.set(text, p);
    }
    return p;
  };
  const frame = () => {
    const f = als.getStore();
    return f?.open ? f : undefined;
  };
  const query = <T extends pg.QueryResultRow>(text: string, params: readonly unknown[]) => {
    const p = statement(text);
    const config = { name: p.name, text: p.text, values: params as unknown[] };
    return (frame()?.client ?? pool).query<T>(config);
  };
  return {
    dialect: 'postgres',
    pool,
    all: async <T>(text: string, params: readonly unknown[] = []) => (await query<pg.QueryResultRow>(text, params)).rows as T[],
    get: async <T>(text: string, params: readonly unknown[] = []) => (await query<pg.QueryResultRow>(text, params)).rows[0] as T | undefined,
    run: async (text: string, params: readonly unknown[] = []) => ({ changes: (await query(text, params)).rowCount ?? 0 }),
    exec: async (text: string) => void (await (frame()?.client ?? pool).query(text)),
    inTx: () => frame() !== undefined,
    async insertLater(table, columns, row) {
      const f = frame();
      if (f) return f.deferred.push(table, columns, row);
      const d = new DeferredInserts();
      d.push(table, columns, row);
      await d.flush((text, params) => query(text, params));
    },
    async tx<T>(fn: () => Promise<T>, opts: TxOptions = {}): Promise<T> {
      const cur = frame();
      if (cur) {
        const sp = `sp${++cur.savepoints}`;
        const queued = cur.deferred.mark();
        await cur.client.query(`SAVEPOINT ${sp}`);
        try {
          const r = await fn();
          await cur.client.query(`RELEASE SAVEPOINT ${sp}`);
          return r;
        } catch (e) {
          await cur.client.query(`ROLLBACK TO SAVEPOINT ${sp}`);
          await cur.client.query(`RELEASE SAVEPOINT ${sp}`);
          cur.deferred.rollbackTo(queued);
          throw e;
        }
      }
      const client = await pool.connect();
      const f: Frame = { client, open: true, savepoints: 0, deferred: new DeferredInserts() };
      // A connection whose ROLLBACK failed is in an unknown state: it is closed, not reused.
      let broken: Error | undefined;
      try {
        await client.query(opts.snapshot ? 'BEGIN ISOLATION LEVEL REPEATABLE READ' : 'BEGIN');
        try {
          const r = await als.run(f, async () => {
            const v = await fn();
            await f.deferred.flush((text, params) => query(text, params));
            return v;
          });
          await client.query('COMMIT');
          return r;
        } catch (e) {
          await client.query('ROLLBACK').catch((re: Error) => (broken = re));
          throw e;
        }
      } finally {
        f.open = false;
        client.release(broken);
      }
    },
    close: async () => {
      if (!pool.ended) await pool.end();
    },
  };
}

/** Applies the PostgreSQL migrations not yet applied, in one transaction, one hub at a time. */
export async function migratePostgres(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    for (const m of POSTGRES_MIGRATIONS) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable)';
  }
}

/** Connects to PostgreSQL at `url`, migrates it, and returns the store over it. */
export async function openPostgresStore(url: string, opts: { poolSize?: number } = {}): Promise<Store> {
  const pool = new pg.Pool({ connectionString: url, max: opts.poolSize ?? 10, types, application_name: 'mykey-hub' });
  // An idle pooled connection that the server drops (a restart, a failover) must not end the hub:
  // the pool discards it and the next query opens a new one.
  pool.on('error', () => undefined);
  try {
    await migratePostgres(pool);
  } catch (e) {
    await pool.end().catch(() => undefined);
    const code = (e as { code?: string }).code;
    throw new MyKeyError('config_invalid', `store.url: PostgreSQL at ${redactUrl(url)} could not be opened and migrated (${code ?? (e as Error).message})`, { cause: e });
  }
  return storeOver(postgresSql(pool), redactUrl(url));
}
