// The MyKey migrations (mykey.ts) that PostgreSQL needs written by hand: the counts kept by
// PL/pgSQL triggers. Every other one is mykey.ts's, through toPostgres (schema/dialect.ts).
import type { Migration } from '../migrations.ts';

export const MYKEY_POSTGRES_BY_HAND: Migration[] = [
  {
    version: 20,
    name: 'MyKey ID counts kept by triggers; CRL match marks',
    sql: `
      CREATE TABLE mykey_counts (
        status TEXT PRIMARY KEY,
        n      BIGINT NOT NULL
      );
      INSERT INTO mykey_counts (status, n) SELECT status, COUNT(*) FROM mykey_ids GROUP BY status;
      CREATE FUNCTION mykey_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP <> 'INSERT' THEN
          UPDATE mykey_counts SET n = n - 1 WHERE status = OLD.status;
        END IF;
        IF TG_OP <> 'DELETE' THEN
          INSERT INTO mykey_counts AS c (status, n) VALUES (NEW.status, 1) ON CONFLICT (status) DO UPDATE SET n = c.n + 1;
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER mykey_counts_insert_delete AFTER INSERT OR DELETE ON mykey_ids FOR EACH ROW EXECUTE FUNCTION mykey_counts_keep();
      CREATE TRIGGER mykey_counts_update AFTER UPDATE OF status ON mykey_ids FOR EACH ROW
        WHEN (OLD.status <> NEW.status) EXECUTE FUNCTION mykey_counts_keep();
      CREATE TABLE crl_match_marks (
        issuer_key   TEXT PRIMARY KEY,
        this_update  BIGINT NOT NULL,
        crl_number   TEXT,
        binding_mark BIGINT NOT NULL
      );
    `,
  },
];
