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
  /**
   * Queues one row of `INSERT INTO table (columns)`: inside a transaction, the rows queued for a
   * table are written together as multi-row INSERTs just before it commits (a row queued in a
   * savepoint that rolls back goes with it); outside one, at once. A burst of change-log entries then
   * costs a few statements (PostgreSQL: a few round trips) instead of one per row. Only for rows
   * nothing reads back in the same transaction and that cannot violate a constraint: an error would
   * come at the commit, for the whole transaction.
   */
  insertLater(table: string, columns: readonly string[], row: readonly unknown[]): Promise<void>;
  close(): Promise<void>;
}

/** True for a unique or primary-key violation, on either engine. */
export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

interface SqliteFrame {
  open: boolean;
  deferred: DeferredInserts;
}

/** Rows per multi-row INSERT, largest first: a few statement texts per table, each prepared once. */
const INSERT_SIZES = [256, 64, 16, 4, 1] as const;
/** Bound parameters per statement, under SQLite's (32,766) and PostgreSQL's (65,535) limits. */
const MAX_PARAMS = 30_000;

/** The rows queued by insertLater in one transaction, in order. */
export class DeferredInserts {
  private rows: { table: string; columns: readonly string[]; row: readonly unknown[] }[] = [];
  private texts = new Map<string, string>();

  push(table: string, columns: readonly string[], row: readonly unknown[]): void {
    if (row.length !== columns.length) throw new Error(`insertLater into ${table}: ${row.length} values for ${columns.length} columns`);
    this.rows.push({ table, columns, row });
  }

  /** Where a savepoint starts; rollbackTo drops what was queued after it. */
  mark(): number {
    return this.rows.length;
  }

  rollbackTo(mark: number): void {
    this.rows.length = mark;
  }

  /** Writes what is queued, each table's rows in the order they were queued, and empties the queue. */
  async flush(run: (text: string, params: unknown[]) => Promise<unknown>): Promise<void> {
    while (this.rows.length > 0) {
      const rows = this.rows;
      this.rows = [];
      const byTable = new Map<string, typeof rows>();
      for (const r of rows) {
        const key = `${r.table}(${r.columns.join(',')})`;
        let list = byTable.get(key);
        if (!list) {
          list = [];
          byTable.set(key, list);
        }
        list.push(r);
      }
      for (const list of byTable.values()) {
        const { table, columns } = list[0];
        for (let at = 0; at < list.length; ) {
          const left = list.length - at;
          const size = INSERT_SIZES.find((n) => n <= left && n * columns.length <= MAX_PARAMS) ?? 1;
          const params: unknown[] = [];
          for (let i = at; i < at + size; i++) for (const v of list[i].row) params.push(v);
          await run(this.text(table, columns, size), params);
          at += size;
        }
      }
    }
  }

  private text(table: string, columns: readonly string[], size: number): string {
    const key = `${table}(${columns.join(',')})${size}`;
    let t = this.texts.get(key);
    if (!t) {
      const one = `(${columns.map(() => '?').join(', ')})`;
      t = `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${Array.from({ length: size }, () => one).join(', ')}`;
      this.texts.set(key, t);
    }
    return t;
  }
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
  // Transaction control as prepared statements: db.exec compiles its text on every call, which at a
  // group commit per turn and a savepoint per write was a measurable part of a registration. One
  // savepoint name serves every depth, as in better-sqlite3's own transaction(): RELEASE and ROLLBACK
  // TO name the innermost savepoint of that name (https://sqlite.org/lang_savepoint.html).
  // Prepared at the first transaction, not here: an executor may be made for a connection that is
  // never used for one.
  let prepared: ReturnType<typeof prepareControl> | undefined;
  const prepareControl = () => ({
    begin: db.prepare('BEGIN'),
    beginImmediate: db.prepare('BEGIN IMMEDIATE'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
    savepoint: db.prepare('SAVEPOINT mykey_sp'),
    release: db.prepare('RELEASE mykey_sp'),
    rollbackTo: db.prepare('ROLLBACK TO mykey_sp'),
  });
  /** Set while an async transaction holds the connection; resolves when it ends. */
  let held: Promise<void> | undefined;
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
    insertLater(table, columns, row) {
      const f = als.getStore();
      if (f?.open) {
        f.deferred.push(table, columns, row);
        return Promise.resolve();
      }
      const d = new DeferredInserts();
      d.push(table, columns, row);
      return d.flush((text, params) => call(() => stmt(text).run(...params)));
    },
    async tx<T>(fn: () => Promise<T>, opts: TxOptions = {}): Promise<T> {
      // biome-ignore lint/suspicious/noAssignInExpressions: prepared once, on first use
      const control = (prepared ??= prepareControl());
      const outer = als.getStore();
      if (outer?.open) {
        const queued = outer.deferred.mark();
        control.savepoint.run();
        try {
          const r = await fn();
          control.release.run();
          return r;
        } catch (e) {
          control.rollbackTo.run();
          control.release.run();
          outer.deferred.rollbackTo(queued);
          throw e;
        }
      }
      while (held) await held;
      let release!: () => void;
      held = new Promise<void>((r) => (release = r));
      const frame: SqliteFrame = { open: true, deferred: new DeferredInserts() };
      try {
        (opts.immediate ? control.beginImmediate : control.begin).run();
        try {
          const r = await als.run(frame, async () => {
            const v = await fn();
            if (frame.deferred.mark() > 0) await frame.deferred.flush(async (text, params) => stmt(text).run(...params));
            return v;
          });
          control.commit.run();
          return r;
        } catch (e) {
          if (db.inTransaction) control.rollback.run();
          throw e;
        }
      } finally {
        frame.open = false;
        held = undefined;
        release();
        // No transaction is open, so no context needs a frame until the next als.run (which enables
        // it again). On Node 20 an enabled AsyncLocalStorage runs async_hooks for every promise the
        // process makes (HTTP, routing, crypto, all of it), a measurable share of a registration;
        // disabled, it costs nothing between transactions. Contexts that kept a frame see it closed
        // (open false), and getStore() answers undefined meanwhile: both mean "not in a transaction".
        als.disable();
      }
    },
    async close() {
      while (held) await held;
      db.close();
    },
  };
}
