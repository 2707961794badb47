// Repository of certificate linkage records (hub/linkage): the bindings a linkage file carried over
// and the imports. The carry-over itself is the MyKey repository's (one lifecycle event, one
// change-log entry per service); this file only adds what marks it as done by linkage.
import type { BindingRow } from './mykey-repo.ts';
import type { Db } from './db.ts';
import { sqlOf, type Sql } from './sql.ts';

export interface LinkageRow {
  old_binding_id: number;
  new_binding_id: number;
  new_fingerprint: string;
  file_sha256: string;
  line: number;
  imported_at: number;
}

export interface LinkageImportRow {
  id: number;
  source: string;
  file_sha256: string | null;
  issuer: string | null;
  created: string | null;
  records: number | null;
  carried: number | null;
  already: number | null;
  refused: number | null;
  code: string | null;
  started_at: number;
  finished_at: number;
}

const Q = {
  // Through cert_bindings_live_serial (issuer name, issuing key, serial).
  liveBindingOfSerial: "SELECT * FROM cert_bindings WHERE issuer_key = ? AND issuer_key_id = ? AND serial_hex = ? AND state <> 'ended' LIMIT 1",
  byOld: 'SELECT * FROM cert_linkages WHERE old_binding_id = ?',
  insert: 'INSERT INTO cert_linkages (old_binding_id, new_binding_id, new_fingerprint, file_sha256, line, imported_at) VALUES (?, ?, ?, ?, ?, ?)',
  recordImport: `INSERT INTO linkage_imports (source, file_sha256, issuer, created, records, carried, already, refused, code, started_at, finished_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  recent: 'SELECT * FROM linkage_imports ORDER BY id DESC LIMIT ?',
};

/** The repository over an executor (or a SQLite connection, through its executor). */
export function createLinkageRepo(target: Sql | Db) {
  const sql = sqlOf(target);
  return {
    /** The live binding of a serial under one issuing key (issuer name hash, anchor key id). */
    liveBindingOfSerial: (issuerKey: string, issuerKeyId: string, serialHex: string): Promise<BindingRow | undefined> =>
      sql.get<BindingRow>(Q.liveBindingOfSerial, [issuerKey, issuerKeyId, serialHex]),
    /** The linkage that carried this binding over, if one did. */
    linkageOf: (oldBindingId: number): Promise<LinkageRow | undefined> => sql.get<LinkageRow>(Q.byOld, [oldBindingId]),
    /** Marks a carried-over binding as superseded by a linkage record; run inside the carry-over's transaction. */
    async insert(r: LinkageRow): Promise<void> {
      await sql.run(Q.insert, [r.old_binding_id, r.new_binding_id, r.new_fingerprint, r.file_sha256, r.line, r.imported_at]);
    },
    async recordImport(r: Omit<LinkageImportRow, 'id'>): Promise<void> {
      await sql.run(Q.recordImport, [r.source, r.file_sha256, r.issuer, r.created, r.records, r.carried, r.already, r.refused, r.code, r.started_at, r.finished_at]);
    },
    recentImports: (limit = 20): Promise<LinkageImportRow[]> => sql.all<LinkageImportRow>(Q.recent, [limit]),
  };
}

export type LinkageRepo = ReturnType<typeof createLinkageRepo>;
