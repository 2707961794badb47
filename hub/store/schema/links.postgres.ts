// The link migrations (links.ts) that PostgreSQL needs written by hand: the counts kept by PL/pgSQL
// triggers. Every other one is links.ts's, through toPostgres (schema/dialect.ts).
import type { Migration } from '../migrations.ts';

export const LINK_POSTGRES_BY_HAND: Migration[] = [
  {
    version: 160,
    name: 'link and webhook counts kept by triggers; delivered notices indexed for pruning',
    sql: `
      CREATE TABLE link_counts (
        service_id TEXT NOT NULL,
        state      TEXT NOT NULL,
        n          BIGINT NOT NULL,
        PRIMARY KEY (service_id, state)
      );
      INSERT INTO link_counts (service_id, state, n) SELECT service_id, state, COUNT(*) FROM links GROUP BY service_id, state;
      CREATE FUNCTION link_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
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
      CREATE TABLE webhook_counts (
        service_id TEXT PRIMARY KEY,
        delivered  BIGINT NOT NULL
      );
      INSERT INTO webhook_counts (service_id, delivered)
        SELECT service_id, COUNT(*) FROM webhook_outbox WHERE delivered_at IS NOT NULL GROUP BY service_id;
      CREATE FUNCTION webhook_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
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
