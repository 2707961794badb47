// The MyKey migration PostgreSQL needs partly by hand (20): its tables are mykey.ts's through
// toPostgres (schema/dialect.ts), its counts are kept by PL/pgSQL triggers. Every other MyKey
// migration is mykey.ts's, through toPostgres.
import type { Migration } from '../migrations.ts';
import { toPostgres } from './dialect.ts';
import { CRL_MATCH_MARKS_20, MYKEY_COUNTS_20 } from './mykey.ts';

export const MYKEY_POSTGRES_BY_HAND: Migration[] = [
  {
    version: 20,
    name: 'MyKey ID counts kept by triggers; CRL match marks',
    sql: `${toPostgres(MYKEY_COUNTS_20)}      CREATE FUNCTION mykey_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
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
${toPostgres(CRL_MATCH_MARKS_20)}    `,
  },
];
