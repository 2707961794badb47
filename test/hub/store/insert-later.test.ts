// Rows queued with insertLater (the change log and the MQTT outbox, hub/store/link-repo.ts) are
// written as multi-row INSERTs just before the transaction commits, on both stores: in the order they
// were queued (the outbox's ids are its publishing order), never when the transaction rolls back,
// without the rows of a savepoint that rolled back, and at once outside a transaction.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../../hub/store/store.ts';
import { freshPgDatabase, havePostgres } from '../../helpers/pg.ts';

type Ctx = { store: Store; dir: string };

function insertLater(name: string, open: (dir: string) => Promise<Store>) {
  const test = suite<Ctx>(`insertLater (${name})`);
  test.before.each(async (ctx) => {
    ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-insert-later-'));
    ctx.store = await open(ctx.dir);
  });
  test.after.each(async (ctx) => {
    await ctx.store.close();
    rmSync(ctx.dir, { recursive: true, force: true });
  });

  const rows = async (store: Store) => (await store.links.pendingMqtt(100_000)).map((r) => r.payload);

  test('a transaction’s queued rows are written at its commit, in the order queued, whatever their number', async ({ store }) => {
    // 1,000 + 300 + 7: every statement size of the multi-row INSERTs, and a second table between.
    const n = 1307;
    await store.sql.tx(async () => {
      for (let i = 0; i < n; i++) {
        await store.links.insertMqtt(`t/${i % 3}`, `p${i}`, i);
        if (i % 100 === 0) await store.links.insertChange({ service_id: 'svc', seq: i + 1, kind: 'unlink', mykey_id: 'M', service_user_id: null, by: 'test', entry: `{"seq":${i + 1}}`, at: i });
      }
      // Not yet written: nothing reads them back inside the transaction.
      assert.is((await store.links.pendingMqtt(10)).length, 0);
    });
    assert.equal(
      await rows(store),
      Array.from({ length: n }, (_, i) => `p${i}`),
    );
    assert.equal(
      await store.links.changesAfter('svc', 0, 100),
      Array.from({ length: 14 }, (_, k) => `{"seq":${k * 100 + 1}}`),
    );
  });

  test('a transaction that rolls back writes none of its queued rows', async ({ store }) => {
    await assertRefused(() =>
      store.sql.tx(async () => {
        await store.links.insertMqtt('t', 'gone', 1);
        throw new Error('rolled back');
      }),
    );
    assert.equal(await rows(store), []);
  });

  test('a savepoint that rolls back takes its queued rows with it; the rest commit', async ({ store }) => {
    await store.sql.tx(async () => {
      await store.links.insertMqtt('t', 'before', 1);
      await assertRefused(() =>
        store.sql.tx(async () => {
          await store.links.insertMqtt('t', 'inner-gone', 2);
          throw new Error('savepoint rolled back');
        }),
      );
      await store.sql.tx(async () => store.links.insertMqtt('t', 'inner-kept', 3));
      await store.links.insertMqtt('t', 'after', 4);
    });
    assert.equal(await rows(store), ['before', 'inner-kept', 'after']);
  });

  test('outside a transaction a row is written at once', async ({ store }) => {
    await store.links.insertMqtt('t', 'now', 1);
    assert.equal(await rows(store), ['now']);
  });

  return test;
}

async function assertRefused(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch {
    return;
  }
  assert.unreachable('should have thrown');
}

insertLater('SQLite', (dir) => openStore({ path: join(dir, 'hub.sqlite'), synchronous: 'NORMAL' }, dir)).run();
if (havePostgres) insertLater('PostgreSQL', async () => openStore({ path: '', synchronous: 'NORMAL', url: await freshPgDatabase() }, '')).run();
else console.log('skipped (PostgreSQL 15 not installed): insertLater (PostgreSQL)');
