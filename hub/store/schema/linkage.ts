// Schema of certificate linkage records (新旧シリアル番号紐付け, versions 600-699): which binding a
// linkage file carried over to which, and the imports themselves. The old binding keeps its state
// `carried_over` (hub/store/schema/mykey.ts); its row here is what marks it superseded by linkage
// rather than by the holder's own carry-over. No touches, no usage: certificates only.
import type { Migration } from '../migrations.ts';

export const LINKAGE_MIGRATIONS: Migration[] = [
  {
    version: 600,
    name: 'certificate linkage records and their imports',
    sql: `
      -- One row per old binding a linkage record carried over (at most one: a certificate is renewed
      -- into one). file_sha256 and line name the record it came from.
      CREATE TABLE cert_linkages (
        old_binding_id  INTEGER PRIMARY KEY REFERENCES cert_bindings (id),
        new_binding_id  INTEGER NOT NULL REFERENCES cert_bindings (id),
        new_fingerprint TEXT NOT NULL,
        file_sha256     TEXT NOT NULL,
        line            INTEGER NOT NULL,
        imported_at     INTEGER NOT NULL
      );
      CREATE INDEX cert_linkages_new ON cert_linkages (new_binding_id);
      -- Every import, accepted or refused whole (then code says why).
      CREATE TABLE linkage_imports (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        source      TEXT NOT NULL,
        file_sha256 TEXT,
        issuer      TEXT,
        created     TEXT,
        records     INTEGER,
        carried     INTEGER,
        already     INTEGER,
        refused     INTEGER,
        code        TEXT,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER NOT NULL
      );
    `,
  },
];
