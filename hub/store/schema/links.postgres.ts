// The link migration PostgreSQL needs partly by hand (160): its tables are links.ts's through
// toPostgres (schema/dialect.ts), its counts are kept by PL/pgSQL triggers. Every other link
// migration is links.ts's, through toPostgres.
import type { Migration } from '../migrations.ts';
import { toPostgres } from './dialect.ts';
import { LINK_COUNTS_160, WEBHOOK_COUNTS_160 } from './links.ts';

export const LINK_POSTGRES_BY_HAND: Migration[] = [
  {
    version: 160,
    name: 'link and webhook counts kept by triggers; delivered notices indexed for pruning',
    sql: `${toPostgres(LINK_COUNTS_160)}      CREATE FUNCTION link_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP <> 'INSERT' THEN
          UPDATE link_counts SET n = n - 1 WHERE service_id = OLD.service_id AND state = OLD.state;
        END IF;
        IF TG_OP <> 'DELETE' THEN
          INSERT INTO link_counts AS c (service_id, state, n) VALUES (NEW.service_id, NEW.state, 1)
            ON CONFLICT (service_id, state) DO UPDATE SET n = c.n + 1;
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER link_counts_insert_delete AFTER INSERT OR DELETE ON links FOR EACH ROW EXECUTE FUNCTION link_counts_keep();
      CREATE TRIGGER link_counts_update AFTER UPDATE OF state, service_id ON links FOR EACH ROW
        WHEN (OLD.state <> NEW.state OR OLD.service_id <> NEW.service_id) EXECUTE FUNCTION link_counts_keep();
${toPostgres(WEBHOOK_COUNTS_160)}      CREATE FUNCTION webhook_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO webhook_counts AS c (service_id, delivered) VALUES (NEW.service_id, 1)
          ON CONFLICT (service_id) DO UPDATE SET delivered = c.delivered + 1;
        RETURN NULL;
      END $$;
      CREATE TRIGGER webhook_counts_delivered AFTER UPDATE OF delivered_at ON webhook_outbox FOR EACH ROW
        WHEN (OLD.delivered_at IS NULL AND NEW.delivered_at IS NOT NULL) EXECUTE FUNCTION webhook_counts_keep();
      CREATE INDEX webhook_outbox_delivered ON webhook_outbox (delivered_at) WHERE delivered_at IS NOT NULL;
    `,
  },
];
