// The console migration PostgreSQL needs partly by hand (300): its tables are console.ts's through
// toPostgres (schema/dialect.ts), the audit log's append-only triggers are PL/pgSQL. Every other
// console migration is console.ts's, through toPostgres.
import type { Migration } from '../migrations.ts';
import { CONSOLE_TABLES_300 } from './console.ts';
import { toPostgres } from './dialect.ts';

export const CONSOLE_POSTGRES_BY_HAND: Migration[] = [
  {
    version: 300,
    name: 'console operators, sessions, sign-in failures, enrollment tokens, audit log',
    sql: `${toPostgres(CONSOLE_TABLES_300)}      -- Append-only: a row is never changed or removed (as SQLite's RAISE(ABORT) triggers).
      CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_log is append-only';
      END $$;
      CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
      CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
      CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
    `,
  },
];
