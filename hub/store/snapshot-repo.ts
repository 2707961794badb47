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
//
// On SQLite a page is also read as its JSON (JSON_PAGE): the entries written by SQLite itself into
// one blob per page, so half a million links are not half a million rows of five strings each in
// JavaScript (most of a build's time). The file's reads run on worker threads (sqlite-reader.ts), two
// of them reading ranges of the service at once (split points of its primary key), both in one state
// of the database: their read transactions begin while the hub's connection holds the write lock, so
// no commit of any process falls between them.
import type { Db } from './db.ts';
import type { ServiceRow } from './link-repo.ts';
import { sqlOf, type Sql } from './sql.ts';
import { openSqliteReader, type SqliteReader } from './sqlite-reader.ts';

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
// The same links and keys as PAGE, as the entries' JSON: `,["<key>",<service ID>]` per mapping (each
// with its leading comma; the builder drops the snapshot's first), in one blob, for the active links
// after `after` up to and including `upto` (a range between two split points). A link whose JSON
// SQLite cannot write as the builder would is written as the byte 0x01, which JSON text never holds
// raw, and the builder reads that page again through PAGE and does it in TypeScript: a key not stored
// (its join found none), and a certificate whose serial is not in normal form. That one needs no
// check here (a GLOB per link was a sixth of the read): CERT_IDENTITY then makes an identity that no
// key is stored under, since every stored identity is made by shared/cert-identity.ts, which writes
// serials in normal form, so its key is null too and the rule decides in TypeScript. Service IDs go
// through json_quote (a quote or backslash escaped as JSON.stringify does); keys are base64url as
// stored. The entries come in the order SQLite walks the links (MyKey ID); a snapshot is a set of
// mappings, so nothing depends on it. Unlike PAGE the keys are LEFT JOINs on the whole primary key of
// service_keys (SQLite only: it looks each one up by that key; a join keeps its cursor open where a
// correlated subquery opens one per link) and each mapping is one concat() (one string made, not one
// per `||`): a sixteenth less of the read's time than subqueries and `||` (3.44+: better-sqlite3
// bundles a later SQLite).
// Parameters: scheme, scheme, withKey, service, after, upto (jsonParams).
const JSON_PAGE = `SELECT CAST(group_concat(CASE
         WHEN km.key IS NULL OR (b.serial_hex IS NOT NULL AND kc.key IS NULL) THEN char(1)
         WHEN b.serial_hex IS NULL THEN concat(',["', km.key, '",', json_quote(l.service_user_id), ']')
         ELSE concat(',["', km.key, '",', json_quote(l.service_user_id), '],["', kc.key, '",', json_quote(l.service_user_id), ']')
         END, '') AS BLOB) AS json,
       count(*) AS links, count(*) + count(b.serial_hex) AS mappings
     FROM links l
     LEFT JOIN cert_bindings b ON b.mykey_id = l.mykey_id AND b.state = 'current'
     LEFT JOIN service_keys km ON km.service_id = l.service_id AND km.scheme = ? AND km.identity = 'mykey:' || l.mykey_id
     LEFT JOIN service_keys kc ON kc.service_id = l.service_id AND kc.scheme = ? AND kc.identity = 'cert:' || ${CERT_IDENTITY}
    WHERE l.service_id = ? AND l.state = 'active' AND l.mykey_id > ? AND l.mykey_id <= ?`;
const jsonParams = (serviceId: string, scheme: string, withKey: boolean, after: string, upto: string): unknown[] => {
  return [scheme, scheme, withKey ? 1 : 0, serviceId, after, upto];
};
// MyKey IDs every `size` links of a service after `after` (any state: the primary key alone, no row
// read), at most `limit` of them, to split its read: one statement (the key walked once, one message
// to a reader thread, not one per split point).
// Parameters: service, after, size, service, size, limit.
const LINKS_EVERY = `WITH RECURSIVE at(id) AS (
      SELECT (SELECT mykey_id FROM links WHERE service_id = ? AND mykey_id > ? ORDER BY mykey_id LIMIT 1 OFFSET ? - 1)
      UNION ALL
      SELECT (SELECT mykey_id FROM links WHERE service_id = ? AND mykey_id > at.id ORDER BY mykey_id LIMIT 1 OFFSET ? - 1) FROM at WHERE at.id IS NOT NULL)
    SELECT id FROM at WHERE id IS NOT NULL LIMIT ?`;
const LINK_COUNT = 'SELECT COALESCE(sum(n), 0) AS n FROM link_counts WHERE service_id = ?';
/** Above every MyKey ID (they are ASCII; SQLite compares text as UTF-8 bytes). */
export const AFTER_ALL = '\uffff';
const SERVICE = 'SELECT * FROM services WHERE id = ?';
const CERT = "SELECT issuer_key, serial_hex, cert_aki, issuer_key_id FROM cert_bindings WHERE mykey_id = ? AND state = 'current'";
const LINKED_AFTER = 'SELECT mykey_id FROM links WHERE service_id = ? AND mykey_id > ? ORDER BY mykey_id LIMIT ?';

const pageParams = (serviceId: string, scheme: string, withKey: boolean, after: string, limit: number): unknown[] => {
  return [scheme, scheme, withKey ? 1 : 0, serviceId, after, limit];
};

/** The JSON of a page of links (JSON_PAGE). */
export interface JsonPage {
  /** The entries' JSON, each mapping with its leading comma; a byte 0x01 where a link is left to the caller. */
  json: Buffer;
  /** Active links in the page, and their mappings (two for a link with a current certificate). */
  links: number;
  mappings: number;
}

/** Pages of one snapshot read: on the hub's executor (inside its transaction) or the SQLite reader connection. */
export interface SnapshotPages {
  /** True when the reads run on another thread (a page may take long without holding the event loop). */
  readonly offThread: boolean;
  service(id: string): Promise<ServiceRow | undefined>;
  /** Up to `limit` active links of a service after `after` (MyKey ID order), with their stored keys under `scheme`. */
  page(serviceId: string, scheme: string, withKey: boolean, after: string, limit: number): Promise<SnapshotRow[]>;
  /** The current certificate of a MyKey ID, in the same read (for an identity CERT_IDENTITY did not make as TypeScript does). */
  cert(mykeyId: string): Promise<SnapshotCert | undefined>;
  /**
   * SQLite: the active links after `after` up to and including `upto`, as their entries' JSON. Absent
   * on PostgreSQL: the caller reads `page`.
   */
  jsonPage?(serviceId: string, scheme: string, withKey: boolean, after: string, upto: string): Promise<JsonPage>;
  /**
   * How to split the service's links (in any state) into ranges of at most about `size` links, at
   * least `parts` of them when it has a few thousand links: the range size, and how many split points
   * that makes. The points are splitAfter from '' (in parts, by several readers, if need be): MyKey
   * IDs, ascending; any split covers the service (ranges after '' up to the first, ..., after the last
   * up to AFTER_ALL), whatever state it was read in.
   */
  splitSize?(serviceId: string, size: number, parts: number): Promise<{ size: number; points: number }>;
  /** Up to `points` split points every `size` links after `after`. */
  splitAfter?(serviceId: string, size: number, after: string, points: number): Promise<string[]>;
}

type PageObject = { mykey_id: string; service_user_id: string; mkey: string | null; cident: string | null; ckey: string | null };

/** What runs a statement for the JSON pages: the hub's executor, or a reader thread. */
interface Runs {
  get<T>(text: string, params: readonly unknown[]): Promise<T | undefined>;
  all<T>(text: string, params: readonly unknown[]): Promise<T[]>;
}

/** JSON pages and split points (SQLite), over either. */
function jsonPagesOver(q: Runs): Pick<SnapshotPages, 'jsonPage' | 'splitSize' | 'splitAfter'> {
  const splitSize = async (serviceId: string, most: number, parts: number) => {
    const n = (await q.get<{ n: number }>(LINK_COUNT, [serviceId]))?.n ?? 0;
    // Not below a thousand links a range: a page is a message each way.
    const size = Math.max(1000, Math.min(most, Math.ceil(n / parts)));
    return { size, points: Math.max(0, Math.ceil(n / size) - 1) };
  };
  const splitAfter = async (serviceId: string, size: number, after: string, points: number): Promise<string[]> =>
    points <= 0 ? [] : (await q.all<{ id: string }>(LINKS_EVERY, [serviceId, after, size, serviceId, size, points])).map((r) => r.id);
  return {
    async jsonPage(serviceId, scheme, withKey, after, upto) {
      const r = await q.get<{ json: Buffer | null; links: number; mappings: number }>(JSON_PAGE, jsonParams(serviceId, scheme, withKey, after, upto));
      return { json: r?.json ?? Buffer.alloc(0), links: r?.links ?? 0, mappings: r?.mappings ?? 0 };
    },
    splitSize,
    splitAfter,
  };
}

/** Pages through the executor (rows as objects, made arrays here). */
function pagesOver(sql: Sql): SnapshotPages {
  return {
    offThread: false,
    service: (id) => sql.get<ServiceRow>(SERVICE, [id]),
    page: async (serviceId, scheme, withKey, after, limit) =>
      (await sql.all<PageObject>(PAGE, pageParams(serviceId, scheme, withKey, after, limit))).map((r): SnapshotRow => [r.mykey_id, r.service_user_id, r.mkey, r.cident, r.ckey]),
    cert: (mykeyId) => sql.get<SnapshotCert>(CERT, [mykeyId]),
    // PostgreSQL reads rows (its server does the work, not this process).
    ...(sql.dialect === 'sqlite' ? jsonPagesOver(sql as Runs) : {}),
  };
}

/** Pages read on a reader thread (raw rows: no object per row). */
function readerPages(r: SqliteReader): SnapshotPages {
  return {
    offThread: true,
    service: (id) => r.get<ServiceRow>(SERVICE, [id]),
    page: (serviceId, scheme, withKey, after, limit) => r.raw<SnapshotRow>(PAGE, pageParams(serviceId, scheme, withKey, after, limit)),
    cert: (mykeyId) => r.get<SnapshotCert>(CERT, [mykeyId]),
    ...jsonPagesOver({ get: (text, params) => r.get(text, params), all: (text, params) => r.all(text, params) }),
  };
}

/** Reader threads a snapshot of a file database is read on, each a part of it. */
const READERS = 2;

/** The repository over an executor (or a SQLite connection, through its executor). */
export function createSnapshotRepo(target: Sql | Db, opts: { readers?: number } = {}) {
  const sql = sqlOf(target);
  // The SQLite connection behind the executor (none on PostgreSQL).
  const db: Db | undefined = sql.dialect === 'sqlite' ? ('dialect' in target ? (target as Sql & { db?: Db }).db : target) : undefined;
  const memory = sql.dialect === 'sqlite' && (db === undefined || db.memory);
  const readerCount = Math.max(1, opts.readers ?? READERS);
  let readers: SqliteReader[] | undefined;
  let open = false;

  /** The reader threads, started (their first read answered) if they were not. */
  async function started(): Promise<SqliteReader[]> {
    readers ??= Array.from({ length: readerCount }, () => openSqliteReader(db!.name));
    const rs = readers;
    try {
      // Threads started and connections open (a first read: tens of milliseconds, seconds on a loaded machine).
      await Promise.all(rs.map((r) => r.get('SELECT 1 AS one', [])));
    } catch (e) {
      // A thread that failed to start (or is gone) is replaced at the next read.
      if (readers === rs) readers = undefined;
      for (const r of rs) void r.close().catch(() => undefined);
      throw e;
    }
    return rs;
  }

  /** Begins a read transaction on a reader: BEGIN is deferred, the first read takes its state. */
  const begin = async (r: SqliteReader) => {
    await r.run('BEGIN');
    await r.get(SERVICE, ['']);
  };

  /**
   * One read on the SQLite reader threads (started on first use): what fn reads, on any of them, is
   * one state of the database.
   */
  async function onReaders<T>(fn: (pages: SnapshotPages, more: SnapshotPages[]) => Promise<T>): Promise<T> {
    if (open) throw new Error('a snapshot read is already open');
    open = true;
    // Read-only connections, each with its own page cache and memory map (the hub's keeps its own).
    let rs: SqliteReader[] = [];
    try {
      // Before the write lock is taken.
      rs = await started();
      // With more than one reader: under the write lock (BEGIN IMMEDIATE on the hub's connection: no
      // commit by any connection of any process until it ends), so every reader sees the same commits.
      if (rs.length === 1) await begin(rs[0]);
      else await sql.tx(() => Promise.all(rs.map(begin)), { immediate: true });
      const [first, ...more] = rs.map(readerPages);
      return await fn(first, more);
    } finally {
      open = false;
      const ended = await Promise.all(
        rs.map((r) =>
          r.run('ROLLBACK').then(
            () => true,
            (e: { code?: string }) => e?.code !== undefined,
          ),
        ),
      );
      // A reader whose thread is gone (or did not answer ROLLBACK) is replaced at the next read.
      if (ended.includes(false) && readers === rs) {
        readers = undefined;
        for (const r of rs) void r.close().catch(() => undefined);
      }
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
     * the event loop (SQLite: the reader threads, `more` the second one's pages; PostgreSQL: one
     * REPEATABLE READ transaction, `more` empty). One read at a time.
     */
    read<T>(fn: (pages: SnapshotPages, more: SnapshotPages[]) => Promise<T>): Promise<T> {
      if (memory || sql.dialect === 'postgres') return sql.tx(() => fn(pagesOver(sql), []), { snapshot: true });
      return onReaders(fn);
    },
    /**
     * Starts the reader threads ahead of a first snapshot when a service has at least `minLinks` active
     * links (a file database only): a hub serving a national service opens them at start, as a pool
     * its connections; a small one when it first needs them. Returns whether they were started.
     */
    async warm(minLinks: number): Promise<boolean> {
      if (memory || sql.dialect === 'postgres') return false;
      const n = (await sql.get<{ n: number | null }>("SELECT max(n) AS n FROM link_counts WHERE state = 'active'"))?.n ?? 0;
      if (n < minLinks) return false;
      await started();
      return true;
    },
    /** Ends the reader threads, if they were started. */
    close(): void {
      const rs = readers;
      readers = undefined;
      open = false;
      for (const r of rs ?? []) void r.close().catch(() => undefined);
    },
  };
}

export type SnapshotRepo = ReturnType<typeof createSnapshotRepo>;
