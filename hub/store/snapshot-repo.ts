// Reads of a service's snapshot (hub/links/snapshot.ts): its active links with their current
// certificate and stored keyed identities, a page at a time in MyKey ID order, in one statement.
//
// A snapshot of a large service is read over many turns of the event loop, and must still be one
// consistent state at one head seq. On SQLite its pages are read inside one read transaction of a
// connection of its own (WAL: a reader sees the database as of its first read, while the hub's
// connection keeps writing). A database in memory has no second connection: there the caller reads
// every page at once inside one transaction of the hub's connection (`readsAcrossTurns` false). On
// PostgreSQL the pages are read inside one REPEATABLE READ transaction (sql.ts `snapshot`) of a pooled
// connection: one snapshot of the database, while other connections write.
import Database from 'better-sqlite3';
import type { Db } from './db.ts';
import type { ServiceRow } from './link-repo.ts';
import { sqlOf, type Sql } from './sql.ts';

/**
 * One active link, as an array (better-sqlite3 raw rows: no object per row at half a million rows):
 * MyKey ID, service ID, the stored key of `mykey:<id>` under the scheme asked for, the current
 * certificate's identity as CERT_IDENTITY makes it (null: no current certificate) and the key stored
 * under `cert:<that identity>` (null: none stored).
 */
export type SnapshotRow = [mykeyId: string, serviceUserId: string, mkey: string | null, cident: string | null, ckey: string | null];

/** The current certificate of a MyKey ID as its identity needs it. */
export interface SnapshotCert {
  issuer_key: string;
  serial_hex: string;
  cert_aki: string | null;
  issuer_key_id: string;
}

// The certificate identity of shared/cert-identity.ts in SQL, for the join with the stored keys:
// `<issuer name hash>:<aki>:<serial>` under a scheme that keys the issuer (withKey = 1) when the
// binding knows an AKI (its own, else the anchor key id it was filed under, as mykey-repo refOf does),
// else `<issuer name hash>:<serial>`. Serials are stored normalised (lower-case, no leading zero
// bytes); the caller still compares this with the identity computed in TypeScript and looks a key
// up by the latter whenever the two differ, so this expression is a fast path, never the rule.
// `?` is withKey (both engines: positional parameters).
const CERT_IDENTITY = `CASE WHEN ? = 1 AND COALESCE(b.cert_aki, b.issuer_key_id) <> ''
    THEN b.issuer_key || ':' || lower(COALESCE(b.cert_aki, b.issuer_key_id)) || ':' || b.serial_hex
    ELSE b.issuer_key || ':' || b.serial_hex END`;

// Links through their primary key (service_id, mykey_id); the current binding through
// cert_bindings_mykey; each key by a subquery on the whole primary key of service_keys. The keys are
// subqueries, not joins, so that every engine looks each one up by its key: PostgreSQL, planning joins
// on tables it has not analyzed yet (a service linked moments ago), chose nested loops that compared
// the identity in a filter over every key of the service (15 s for a page of 2,000 of 5,000 links).
// Parameters: scheme, scheme, withKey, service, after, limit (pageParams).
const PAGE = `SELECT x.mykey_id AS mykey_id, x.service_user_id AS service_user_id, x.mkey AS mkey, x.cident AS cident,
       (SELECT kc.key FROM service_keys kc WHERE kc.service_id = x.service_id AND kc.scheme = ? AND kc.identity = 'cert:' || x.cident) AS ckey
     FROM (SELECT l.service_id AS service_id, l.mykey_id AS mykey_id, l.service_user_id AS service_user_id,
             (SELECT km.key FROM service_keys km WHERE km.service_id = l.service_id AND km.scheme = ? AND km.identity = 'mykey:' || l.mykey_id) AS mkey,
             ${CERT_IDENTITY} AS cident
           FROM links l
           LEFT JOIN cert_bindings b ON b.mykey_id = l.mykey_id AND b.state = 'current'
          WHERE l.service_id = ? AND l.state = 'active' AND l.mykey_id > ?
          ORDER BY l.mykey_id LIMIT ?) x
    ORDER BY x.mykey_id`;
const SERVICE = 'SELECT * FROM services WHERE id = ?';
const CERT = "SELECT issuer_key, serial_hex, cert_aki, issuer_key_id FROM cert_bindings WHERE mykey_id = ? AND state = 'current'";
const LINKED_AFTER = 'SELECT mykey_id FROM links WHERE service_id = ? AND mykey_id > ? ORDER BY mykey_id LIMIT ?';

const pageParams = (serviceId: string, scheme: string, withKey: boolean, after: string, limit: number): unknown[] => {
  return [scheme, scheme, withKey ? 1 : 0, serviceId, after, limit];
};

/** Pages of one snapshot read: on the hub's executor (inside its transaction) or the SQLite reader connection. */
export interface SnapshotPages {
  service(id: string): Promise<ServiceRow | undefined>;
  /** Up to `limit` active links of a service after `after` (MyKey ID order), with their stored keys under `scheme`. */
  page(serviceId: string, scheme: string, withKey: boolean, after: string, limit: number): Promise<SnapshotRow[]>;
  /** The current certificate of a MyKey ID, in the same read (for an identity CERT_IDENTITY did not make as TypeScript does). */
  cert(mykeyId: string): Promise<SnapshotCert | undefined>;
}

type PageObject = { mykey_id: string; service_user_id: string; mkey: string | null; cident: string | null; ckey: string | null };

/** Pages through the executor (rows as objects, made arrays here). */
function pagesOver(sql: Sql): SnapshotPages {
  return {
    service: (id) => sql.get<ServiceRow>(SERVICE, [id]),
    page: async (serviceId, scheme, withKey, after, limit) =>
      (await sql.all<PageObject>(PAGE, pageParams(serviceId, scheme, withKey, after, limit))).map((r): SnapshotRow => [r.mykey_id, r.service_user_id, r.mkey, r.cident, r.ckey]),
    cert: (mykeyId) => sql.get<SnapshotCert>(CERT, [mykeyId]),
  };
}

/** The SQLite reader connection's statements (raw rows: no object per row at half a million rows). */
function readerStatements(conn: Db) {
  return {
    begin: conn.prepare('BEGIN'),
    rollback: conn.prepare('ROLLBACK'),
    service: conn.prepare<[string], ServiceRow>(SERVICE),
    page: conn.prepare<unknown[], SnapshotRow>(PAGE).raw(true),
    cert: conn.prepare<[string], SnapshotCert>(CERT),
  };
}

function readerPages(q: ReturnType<typeof readerStatements>): SnapshotPages {
  return {
    service: async (id) => q.service.get(id),
    page: async (serviceId, scheme, withKey, after, limit) => q.page.all(...pageParams(serviceId, scheme, withKey, after, limit)),
    cert: async (mykeyId) => q.cert.get(mykeyId),
  };
}

/** The repository over an executor (or a SQLite connection, through its executor). */
export function createSnapshotRepo(target: Sql | Db) {
  const sql = sqlOf(target);
  // The SQLite connection behind the executor (none on PostgreSQL).
  const db: Db | undefined = sql.dialect === 'sqlite' ? ('dialect' in target ? (target as Sql & { db?: Db }).db : target) : undefined;
  const memory = sql.dialect === 'sqlite' && (db === undefined || db.memory);
  let reader: { conn: Db; q: ReturnType<typeof readerStatements> } | undefined;
  let open = false;

  /** One read on the SQLite reader connection (opened on first use): what fn reads is one state of the database. */
  async function onReader<T>(fn: (pages: SnapshotPages) => Promise<T>): Promise<T> {
    if (open) throw new Error('a snapshot read is already open');
    if (!reader) {
      // Read-only, with its own page cache and memory map (the hub's connection keeps its own).
      const conn: Db = new Database(db!.name, { readonly: true, fileMustExist: true });
      conn.pragma('busy_timeout = 5000');
      conn.pragma('cache_size = -32768');
      conn.pragma('mmap_size = 1073741824');
      reader = { conn, q: readerStatements(conn) };
    }
    const r = reader;
    r.q.begin.run();
    open = true;
    try {
      return await fn(readerPages(r.q));
    } finally {
      open = false;
      r.q.rollback.run();
    }
  }

  return {
    /** MyKey IDs linked with a service in any state, after `after` in order, a page at a time (re-keying a whole service). */
    linkedMyKeysAfter: async (serviceId: string, after: string, limit: number): Promise<string[]> =>
      (await sql.all<{ mykey_id: string }>(LINKED_AFTER, [serviceId, after, limit])).map((r) => r.mykey_id),
    /** Whether a read may span turns of the event loop (a file database or PostgreSQL: a connection of its own). */
    readsAcrossTurns: !memory,
    /**
     * Pages read through the hub's own executor, inside one transaction of it (one snapshot on
     * PostgreSQL): read them all at once there.
     */
    direct: <T>(fn: (pages: SnapshotPages) => Promise<T>): Promise<T> => sql.tx(() => fn(pagesOver(sql)), { snapshot: true }),
    /**
     * The one read of a snapshot: what fn's pages read is one state of the database, across turns of
     * the event loop (SQLite: the reader connection; PostgreSQL: one REPEATABLE READ transaction). One
     * read at a time.
     */
    read<T>(fn: (pages: SnapshotPages) => Promise<T>): Promise<T> {
      if (memory || sql.dialect === 'postgres') return sql.tx(() => fn(pagesOver(sql)), { snapshot: true });
      return onReader(fn);
    },
    /** Closes the reader connection, if one was opened. */
    close(): void {
      reader?.conn.close();
      reader = undefined;
      open = false;
    },
  };
}

export type SnapshotRepo = ReturnType<typeof createSnapshotRepo>;
