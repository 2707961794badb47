// The PostgreSQL schema follows the SQLite one migration by migration: the same versions, and after
// migrating, the same tables with the same columns (and the same indexes by name).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MIGRATIONS, POSTGRES_MIGRATIONS } from '../../../hub/store/migrations.ts';
import { openStore } from '../../../hub/store/store.ts';
import { freshPgDatabase, havePostgres } from '../../helpers/pg.ts';
import { testIf } from '../../helpers/requires.ts';

test('every SQLite migration has its PostgreSQL counterpart, with the same version and name', () => {
  assert.equal(
    POSTGRES_MIGRATIONS.filter((m) => m.version < 900).map((m) => [m.version, m.name]),
    MIGRATIONS.map((m) => [m.version, m.name]),
  );
});

test('no version is used twice on either store (a PostgreSQL-only table takes 900-999, never a feature range)', () => {
  for (const list of [MIGRATIONS, POSTGRES_MIGRATIONS]) {
    const versions = list.map((m) => m.version);
    assert.equal([...new Set(versions)], versions);
  }
  for (const m of POSTGRES_MIGRATIONS) if (!MIGRATIONS.some((x) => x.version === m.version)) assert.ok(m.version >= 900 && m.version <= 999, `PostgreSQL-only migration ${m.version} outside 900-999`);
});

testIf(havePostgres, 'PostgreSQL 15')('both stores end with the same tables, columns and indexes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-schema-'));
  const lite = await openStore({ path: join(dir, 'hub.sqlite'), synchronous: 'NORMAL' }, dir);
  const pg = await openStore({ path: '', synchronous: 'NORMAL', url: await freshPgDatabase() }, '');
  try {
    const liteTables = await lite.sql.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name");
    const liteColumns: Record<string, string[]> = {};
    for (const { name } of liteTables) {
      // table_xinfo lists generated columns too (devices.state).
      liteColumns[name] = (await lite.sql.all<{ name: string }>(`SELECT name FROM pragma_table_xinfo('${name}') ORDER BY name`)).map((c) => c.name);
    }
    const pgRows = await pg.sql.all<{ table_name: string; column_name: string }>(
      "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, column_name",
    );
    // Tables only PostgreSQL has (its 900-999 migrations: replica state, count shards) are left out.
    const pgOnly = new Set(POSTGRES_MIGRATIONS.filter((m) => m.version >= 900).flatMap((m) => [...m.sql.matchAll(/CREATE (?:UNLOGGED )?TABLE (\w+)/g)].map((x) => x[1]!)));
    const pgColumns: Record<string, string[]> = {};
    for (const r of pgRows.filter((x) => !pgOnly.has(x.table_name))) {
      pgColumns[r.table_name] ??= [];
      pgColumns[r.table_name]!.push(r.column_name);
    }
    assert.equal(pgColumns, liteColumns);

    const liteIndexes = (await lite.sql.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name")).map((r) => r.name);
    const pgIndexes = (
      await pg.sql.all<{ indexname: string; tablename: string }>("SELECT indexname, tablename FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' ORDER BY indexname")
    )
      .filter((r) => !pgOnly.has(r.tablename))
      .map((r) => r.indexname);
    assert.equal(pgIndexes, liteIndexes);
  } finally {
    await lite.close();
    await pg.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
