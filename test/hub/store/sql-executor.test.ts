// The SQLite executor's ambient transactions (hub/store/sql.ts): what runs in a transaction's async
// context joins it, everything else waits for its end, across many transactions in a row (the
// executor's AsyncLocalStorage is switched off between them) and at any savepoint depth (one
// prepared savepoint name serves them all).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDatabase } from '../../../hub/store/db.ts';
import { sqlOf } from '../../../hub/store/sql.ts';

const fresh = async () => {
  const sql = sqlOf(openDatabase(':memory:'));
  await sql.exec('CREATE TABLE t (v INTEGER NOT NULL)');
  return sql;
};
const values = async (sql: Awaited<ReturnType<typeof fresh>>) => (await sql.all<{ v: number }>('SELECT v FROM t ORDER BY v')).map((r) => r.v);

test('in transaction after transaction, a call from outside never runs inside one, and one from inside always does', async () => {
  const sql = await fresh();
  for (let round = 0; round < 5; round++) {
    let outsideSaw: number[] | undefined;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const tx = sql.tx(async () => {
      await sql.run('INSERT INTO t (v) VALUES (?)', [round * 10 + 1]);
      assert.ok(sql.inTx(), 'inside the transaction');
      // The outside reader was started while this transaction is open: it must not see the row yet.
      await gate;
      assert.equal(await values(sql), [...Array.from({ length: round }, (_, i) => [i * 10 + 1, i * 10 + 2]).flat(), round * 10 + 1], 'a read from inside sees its own row');
      await sql.run('INSERT INTO t (v) VALUES (?)', [round * 10 + 2]);
    });
    // Not in the transaction's async context: waits for it, then sees both rows committed together.
    const outside = (async () => {
      await Promise.resolve();
      assert.not.ok(sql.inTx(), 'outside the transaction');
      outsideSaw = await values(sql);
    })();
    await new Promise((r) => setImmediate(r));
    assert.is(outsideSaw, undefined, 'the outside read waits while the transaction is open');
    release();
    await Promise.all([tx, outside]);
    assert.equal(outsideSaw!.slice(-2), [round * 10 + 1, round * 10 + 2], 'the outside read ran after the commit');
    assert.not.ok(sql.inTx());
  }
  await sql.close();
});

test('a chain started inside a transaction that goes on after its commit is not inside the next one', async () => {
  const sql = await fresh();
  let leftover!: Promise<void>;
  let letGo!: () => void;
  const later = new Promise<void>((r) => (letGo = r));
  await sql.tx(async () => {
    await sql.run('INSERT INTO t (v) VALUES (1)');
    // Not awaited by the transaction: it continues in the first transaction's context after its end.
    leftover = (async () => {
      await later;
      await sql.run('INSERT INTO t (v) VALUES (3)');
    })();
  });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const second = sql.tx(async () => {
    await sql.run('INSERT INTO t (v) VALUES (2)');
    letGo();
    await new Promise((r) => setImmediate(r));
    await gate;
    // The leftover write has not joined this transaction: it waits for its end.
    assert.equal(await values(sql), [1, 2]);
    throw new Error('roll back');
  });
  await new Promise((r) => setImmediate(r));
  release();
  await second.then(
    () => assert.unreachable('the second transaction rolls back'),
    (e) => assert.match(String(e), /roll back/),
  );
  await leftover;
  assert.equal(await values(sql), [1, 3], 'the leftover write ran on its own, after the rolled-back transaction');
  await sql.close();
});

test('savepoints nest to any depth: each rolls back alone and releases into its parent', async () => {
  const sql = await fresh();
  const ins = (v: number) => sql.run('INSERT INTO t (v) VALUES (?)', [v]);
  await sql.tx(async () => {
    await ins(1);
    await sql.tx(async () => {
      await ins(2);
      await sql.tx(async () => {
        await ins(3);
        await sql
          .tx(async () => {
            await ins(4);
            throw new Error('deepest');
          })
          .catch(() => undefined);
        await ins(5);
      });
      await sql
        .tx(async () => {
          await ins(6);
          await sql.tx(() => ins(7));
          throw new Error('sibling');
        })
        .catch(() => undefined);
    });
    await ins(8);
  });
  assert.equal(await values(sql), [1, 2, 3, 5, 8]);
  await sql.tx(async () => {
    await ins(9);
    await sql.tx(() => ins(10));
  });
  await sql.tx(() => ins(11)).then(() => undefined);
  assert.equal(await values(sql), [1, 2, 3, 5, 8, 9, 10, 11]);
  await sql.close();
});

test.run();
