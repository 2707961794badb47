// The one way the repositories talk to a database: a few async calls over plain SQL with `?`
// placeholders, and transactions. Two engines are behind it: SQLite (better-sqlite3, the embedded
// default: synchronous inside, answers with resolved promises) and PostgreSQL (pg's Pool, the
// scale-out store; `?` become `$1`, `$2`...). The repositories' SQL is written once for both; where
// the two differ, a repository asks `sql.dialect`.
//
// Transactions are ambient: every call made inside `tx(fn)` (in fn's async context, tracked with
// AsyncLocalStorage) joins that transaction, so a feature that adds rows to a transaction it did not
// open (the links' lifecycle listener, the write batcher's group commit) needs no handle passed down.
// A `tx` inside a `tx` is a savepoint. Calls made outside run on their own (PostgreSQL: any pooled
// connection; SQLite: they wait while another async context holds the one connection in a
// transaction, so nobody reads or writes into a transaction that is not theirs).
import { AsyncLocalStorage } from 'node:async_hooks';
import type Database from 'better-sqlite3';
import type { Db } from './db.ts';

export type Dialect = 'sqlite' | 'postgres';

export interface TxOptions {
  /**
   * SQLite: take the write lock at BEGIN (BEGIN IMMEDIATE), so a transaction that reads then writes
   * waits its turn instead of failing on a snapshot another process changed. PostgreSQL: no effect.
   */
  immediate?: boolean;
  /** PostgreSQL: one snapshot for the whole transaction (REPEATABLE READ), e.g. a paged read. SQLite: always. */
  snapshot?: boolean;
}

export interface Sql {
  readonly dialect: Dialect;
  all<T>(text: string, params?: readonly unknown[]): Promise<T[]>;
  get<T>(text: string, params?: readonly unknown[]): Promise<T | undefined>;
  /** A statement without rows; `changes` is the number of rows it changed. */
  run(text: string, params?: readonly unknown[]): Promise<{ changes: number }>;
  /** Runs several statements (DDL) as one script, without parameters. */
  exec(text: string): Promise<void>;
  /** Runs `fn` in one transaction (a savepoint when already inside one); commits when it resolves, rolls back when it throws. */
  tx<T>(fn: () => Promise<T>, opts?: TxOptions): Promise<T>;
  /** True inside a transaction of this executor. */
  inTx(): boolean;
  close(): Promise<void>;
}

/** True for a unique or primary-key violation, on either engine. */
export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

interface SqliteFrame {
  open: boolean;
}

const executors = new WeakMap<Db, Sql & { db: Db }>();

/**
 * The executor of a target: itself, or the one SQLite executor of a better-sqlite3 connection (one
 * per connection: it is what keeps async transactions on that connection apart).
 */
export function sqlOf(target: Sql | Db): Sql {
  if ('dialect' in target) return target;
  let e = executors.get(target);
  if (!e) {
    e = sqliteSql(target);
    executors.set(target, e);
  }
  return e;
}

/** The SQLite executor over one better-sqlite3 connection (statements prepared once, cached by text). Use sqlOf to share it. */
export function sqliteSql(db: Db): Sql & { db: Db } {
  const als = new AsyncLocalStorage<SqliteFrame>();
  const statements = new Map<string, Database.Statement<unknown[]>>();
  const stmt = (text: string) => {
    let s = statements.get(text);
    if (!s) {
      s = db.prepare<unknown[]>(text);
      statements.set(text, s);
    }
    return s;
  };
  /** Set while an async transaction holds the connection; resolves when it ends. */
  let held: Promise<void> | undefined;
  let savepoints = 0;
  const mine = () => als.getStore()?.open === true;
  function call<T>(f: () => T): Promise<T> {
    if (held && !mine()) return held.then(() => call(f));
    try {
      return Promise.resolve(f());
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return {
    dialect: 'sqlite',
    db,
    all: <T>(text: string, params: readonly unknown[] = []) => call(() => stmt(text).all(...(params as unknown[])) as T[]),
    get: <T>(text: string, params: readonly unknown[] = []) => call(() => stmt(text).get(...(params as unknown[])) as T | undefined),
    run: (text: string, params: readonly unknown[] = []) => call(() => ({ changes: stmt(text).run(...(params as unknown[])).changes })),
    exec: (text: string) => call(() => void db.exec(text)),
    inTx: mine,
    async tx<T>(fn: () => Promise<T>, opts: TxOptions = {}): Promise<T> {
      if (mine()) {
        const sp = `sp${++savepoints}`;
        db.exec(`SAVEPOINT ${sp}`);
        try {
          const r = await fn();
          db.exec(`RELEASE ${sp}`);
          return r;
        } catch (e) {
          db.exec(`ROLLBACK TO ${sp}`);
          db.exec(`RELEASE ${sp}`);
          throw e;
        }
      }
      while (held) await held;
      let release!: () => void;
      held = new Promise<void>((r) => (release = r));
      const frame: SqliteFrame = { open: true };
      try {
        db.exec(opts.immediate ? 'BEGIN IMMEDIATE' : 'BEGIN');
        try {
          const r = await als.run(frame, fn);
          db.exec('COMMIT');
          return r;
        } catch (e) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw e;
        }
      } finally {
        frame.open = false;
        held = undefined;
        release();
      }
    },
    async close() {
      while (held) await held;
      db.close();
    },
  };
}
