// Repository of certificate linkage records (hub/linkage): the bindings a linkage file carried over
// and the imports. The carry-over itself is the MyKey repository's (one lifecycle event, one
// change-log entry per service); this file only adds what marks it as done by linkage.
import type { BindingRow } from './mykey-repo.ts';
import type { Db } from './db.ts';

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

export function createLinkageRepo(db: Db) {
  const q = {
    // Through cert_bindings_live_serial (issuer name, issuing key, serial).
    liveBindingOfSerial: db.prepare<[string, string, string], BindingRow>(
      "SELECT * FROM cert_bindings WHERE issuer_key = ? AND issuer_key_id = ? AND serial_hex = ? AND state <> 'ended' LIMIT 1",
    ),
    byOld: db.prepare<[number], LinkageRow>('SELECT * FROM cert_linkages WHERE old_binding_id = ?'),
    insert: db.prepare('INSERT INTO cert_linkages (old_binding_id, new_binding_id, new_fingerprint, file_sha256, line, imported_at) VALUES (?, ?, ?, ?, ?, ?)'),
    recordImport: db.prepare(
      `INSERT INTO linkage_imports (source, file_sha256, issuer, created, records, carried, already, refused, code, started_at, finished_at)
       VALUES (@source, @file_sha256, @issuer, @created, @records, @carried, @already, @refused, @code, @started_at, @finished_at)`,
    ),
    recent: db.prepare<[number], LinkageImportRow>('SELECT * FROM linkage_imports ORDER BY id DESC LIMIT ?'),
  };
  return {
    /** The live binding of a serial under one issuing key (issuer name hash, anchor key id). */
    liveBindingOfSerial: (issuerKey: string, issuerKeyId: string, serialHex: string): BindingRow | undefined => q.liveBindingOfSerial.get(issuerKey, issuerKeyId, serialHex),
    /** The linkage that carried this binding over, if one did. */
    linkageOf: (oldBindingId: number): LinkageRow | undefined => q.byOld.get(oldBindingId),
    /** Marks a carried-over binding as superseded by a linkage record; run inside the carry-over's transaction. */
    insert(r: LinkageRow): void {
      q.insert.run(r.old_binding_id, r.new_binding_id, r.new_fingerprint, r.file_sha256, r.line, r.imported_at);
    },
    recordImport: (r: Omit<LinkageImportRow, 'id'>): void => void q.recordImport.run(r),
    recentImports: (limit = 20): LinkageImportRow[] => q.recent.all(limit),
  };
}

export type LinkageRepo = ReturnType<typeof createLinkageRepo>;
