// Links of a large service for the snapshot tests, written straight to the store with their stored
// keys (as the hub stores them when it links), 500 rows a statement: one statement per row is tens of
// thousands of round trips on PostgreSQL, minutes on a loaded machine.
import { CURRENT_KEY_SCHEME, keyedId } from '../../../../shared/sync.ts';
import type { TestHub } from '../../../helpers/hub.ts';

/** The MyKey ID of the i-th bulk link. */
export const idOf = (i: number) => `N${String(i).padStart(7, '0')}`;

/** Links `from` .. `from + n - 1` of `service` (service IDs `LIB-<i>`), then a new head seq, in one transaction. */
export async function addLinks(h: TestHub, service: string, from: number, n: number): Promise<void> {
  const secret = (await h.hub.linkRepo.service(service))!.sync_secret;
  const sql = h.hub.store.sql;
  await sql.tx(async () => {
    for (let start = from; start < from + n; start += 500) {
      const ids = Array.from({ length: Math.min(500, from + n - start) }, (_, k) => start + k);
      await sql.run(
        `INSERT INTO links (service_id, mykey_id, service_user_id, state, linked_at, linked_by) VALUES ${ids.map(() => "(?, ?, ?, 'active', ?, 'test')").join(', ')}`,
        ids.flatMap((i) => [service, idOf(i), `LIB-${i}`, Date.now()]),
      );
      await sql.run(
        `INSERT INTO service_keys (service_id, scheme, identity, key) VALUES ${ids.map(() => '(?, ?, ?, ?)').join(', ')}`,
        ids.flatMap((i) => [service, CURRENT_KEY_SCHEME, `mykey:${idOf(i)}`, keyedId(secret, 'mykey', idOf(i))]),
      );
    }
    await h.hub.linkRepo.nextSeq(service);
  });
}
