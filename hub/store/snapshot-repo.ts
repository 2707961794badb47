// Reads of a service's snapshot (hub/links/snapshot.ts): its active links with their current
// certificate and stored keyed identities, a page at a time in MyKey ID order, in one statement.
//
// A snapshot of a large service is read over many turns of the event loop, and must still be one
// consistent state at one head seq: its pages are read inside one read transaction of a connection of
// its own (WAL: a reader sees the database as of its first read, while the hub's connection keeps
// writing). A database in memory has no second connection: there the caller reads every page at once
// inside one transaction of the hub's connection (`readsAcrossTurns` false, `direct`). A PostgreSQL
// store would read the pages inside one REPEATABLE READ transaction for the same guarantee.
import Database from 'better-sqlite3';
import type { Db } from './db.ts';
import type { ServiceRow } from './link-repo.ts';

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
// `<issuer name hash>:<aki>:<serial>` under a scheme that keys the issuer (@withKey = 1) when the
// binding knows an AKI (its own, else the anchor key id it was filed under, as mykey-repo refOf does),
// else `<issuer name hash>:<serial>`. Serials are stored normalised (lower-case, no leading zero
// bytes); the caller still compares this with the identity computed in TypeScript and looks a key
// up by the latter whenever the two differ, so this expression is a fast path, never the rule.
const CERT_IDENTITY = `CASE WHEN @withKey = 1 AND COALESCE(b.cert_aki, b.issuer_key_id) <> ''
    THEN b.issuer_key || ':' || lower(COALESCE(b.cert_aki, b.issuer_key_id)) || ':' || b.serial_hex
    ELSE b.issuer_key || ':' || b.serial_hex END`;

function statementsOf(conn: Db) {
  return {
    begin: conn.prepare('BEGIN'),
    rollback: conn.prepare('ROLLBACK'),
    service: conn.prepare<[string], ServiceRow>('SELECT * FROM services WHERE id = ?'),
    // Links through their primary key (service_id, mykey_id); the current binding through
    // cert_bindings_mykey; each key through the primary key of service_keys.
    page: conn
      .prepare<[{ service: string; scheme: string; withKey: number; after: string; limit: number }], SnapshotRow>(
        `SELECT l.mykey_id, l.service_user_id, km.key, ${CERT_IDENTITY}, kc.key
           FROM links l
           LEFT JOIN cert_bindings b ON b.mykey_id = l.mykey_id AND b.state = 'current'
           LEFT JOIN service_keys km ON km.service_id = l.service_id AND km.scheme = @scheme AND km.identity = 'mykey:' || l.mykey_id
           LEFT JOIN service_keys kc ON kc.service_id = l.service_id AND kc.scheme = @scheme AND kc.identity = 'cert:' || ${CERT_IDENTITY}
          WHERE l.service_id = @service AND l.state = 'active' AND l.mykey_id > @after
          ORDER BY l.mykey_id LIMIT @limit`,
      )
      .raw(true),
    cert: conn.prepare<[string], SnapshotCert>("SELECT issuer_key, serial_hex, cert_aki, issuer_key_id FROM cert_bindings WHERE mykey_id = ? AND state = 'current'"),
  };
}

/** Pages of one snapshot read: on the hub's connection (inside its transaction) or the reader's. */
export interface SnapshotPages {
  service(id: string): ServiceRow | undefined;
  /** Up to `limit` active links of a service after `after` (MyKey ID order), with their stored keys under `scheme`. */
  page(serviceId: string, scheme: string, withKey: boolean, after: string, limit: number): SnapshotRow[];
  /** The current certificate of a MyKey ID, in the same read (for an identity CERT_IDENTITY did not make as TypeScript does). */
  cert(mykeyId: string): SnapshotCert | undefined;
}

function pagesOf(q: ReturnType<typeof statementsOf>): SnapshotPages {
  return {
    service: (id) => q.service.get(id),
    page: (serviceId, scheme, withKey, after, limit) => q.page.all({ service: serviceId, scheme, withKey: withKey ? 1 : 0, after, limit }),
    cert: (mykeyId) => q.cert.get(mykeyId),
  };
}

export function createSnapshotRepo(db: Db) {
  const main = statementsOf(db);
  const linkedAfter = db.prepare<[string, string, number], string>('SELECT mykey_id FROM links WHERE service_id = ? AND mykey_id > ? ORDER BY mykey_id LIMIT ?').pluck();
  let reader: { conn: Db; q: ReturnType<typeof statementsOf> } | undefined;
  let open = false;
  return {
    /** MyKey IDs linked with a service in any state, after `after` in order, a page at a time (re-keying a whole service). */
    linkedMyKeysAfter: (serviceId: string, after: string, limit: number): string[] => linkedAfter.all(serviceId, after, limit),
    /** Pages read through the hub's own connection: call inside one of its transactions, all at once. */
    direct: pagesOf(main),
    /** Whether a read may span turns of the event loop (a file database: a connection of its own). */
    readsAcrossTurns: !db.memory,
    /**
     * Begins the one read of a snapshot on the reader connection (opened on first use): what its
     * pages read until the returned end() is one state of the database. One read at a time.
     */
    begin(): SnapshotPages & { end(): void } {
      if (db.memory) throw new Error('a database in memory has no reader connection');
      if (open) throw new Error('a snapshot read is already open');
      if (!reader) {
        // Read-only, with its own page cache and memory map (the hub's connection keeps its own).
        const conn: Db = new Database(db.name, { readonly: true, fileMustExist: true });
        conn.pragma('busy_timeout = 5000');
        conn.pragma('cache_size = -32768');
        conn.pragma('mmap_size = 1073741824');
        reader = { conn, q: statementsOf(conn) };
      }
      const r = reader;
      r.q.begin.run();
      open = true;
      return {
        ...pagesOf(r.q),
        end() {
          if (!open) return;
          open = false;
          r.q.rollback.run();
        },
      };
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
