// The snapshot repository's reads (hub/store/snapshot-repo.ts): on a SQLite file, two reader threads
// that each read a part of a service must see one state of the database, even while the hub's
// connection commits as fast as it can; a read that fails leaves them ready for the next one.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AFTER_ALL, createSnapshotRepo, type SnapshotPages } from '../../../hub/store/snapshot-repo.ts';
import { CURRENT_KEY_SCHEME, keyedId } from '../../../shared/sync.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';

const test = suite<{ h: TestHub }>('snapshot repository', {} as { h: TestHub });
const SERVICE = 'library';
const LINKS = 6000;

test.before(async (ctx) => {
  ctx.h = await startTestHub();
  await ctx.h.hub.links.createService({ id: SERVICE, name: 'Town library', requireHolderProof: false });
  await ctx.h.hub.linkRepo.setKeyScheme(SERVICE, CURRENT_KEY_SCHEME);
  const secret = (await ctx.h.hub.linkRepo.service(SERVICE))!.sync_secret;
  const sql = ctx.h.hub.store.sql;
  await sql.tx(async () => {
    for (let start = 0; start < LINKS; start += 500) {
      const ids = Array.from({ length: 500 }, (_, k) => `M${String(start + k).padStart(7, '0')}`);
      await sql.run(
        `INSERT INTO links (service_id, mykey_id, service_user_id, state, linked_at, linked_by) VALUES ${ids.map(() => "(?, ?, ?, 'active', ?, 'test')").join(', ')}`,
        ids.flatMap((id) => [SERVICE, id, `U-${id}`, Date.now()]),
      );
      await sql.run(
        `INSERT INTO service_keys (service_id, scheme, identity, key) VALUES ${ids.map(() => '(?, ?, ?, ?)').join(', ')}`,
        ids.flatMap((id) => [SERVICE, CURRENT_KEY_SCHEME, `mykey:${id}`, keyedId(secret, 'mykey', id)]),
      );
    }
  });
});
test.after(async (ctx) => ctx.h.close());

test('two reader threads begin in one state while the hub commits without pause', async (ctx) => {
  const h = ctx.h;
  const repo = createSnapshotRepo(h.hub.store.sql);
  let stop = false;
  let commits = 0;
  // Each commit moves the head seq: two readers in two states would see two head seqs.
  const writer = (async () => {
    while (!stop) {
      await h.hub.linkRepo.nextSeq(SERVICE);
      commits++;
      // SQLite answers with resolved promises: a turn of the event loop lets the readers' answers in.
      await new Promise((r) => setImmediate(r));
    }
  })();
  try {
    for (let round = 0; round < 30; round++) {
      await repo.read(async (pages, more) => {
        const heads = await Promise.all([pages, ...more].map(async (p) => (await p.service(SERVICE))!.head_seq));
        // Later commits are not seen by either.
        const later = commits;
        while (commits < later + 3) await new Promise((r) => setImmediate(r));
        const again = await Promise.all([pages, ...more].map(async (p) => (await p.service(SERVICE))!.head_seq));
        assert.equal(again, heads);
        assert.ok(
          heads.every((x) => x === heads[0]),
          `head seqs ${heads.join(', ')}`,
        );
        if (h.hub.store.sql.dialect === 'sqlite') {
          assert.is(more.length, 1, 'a file database is read on two threads');
          // The split points from the start, as the snapshot builder lists them (in parts).
          const split = async (p: SnapshotPages, most: number, parts: number) => {
            const { size, points } = await p.splitSize!(SERVICE, most, parts);
            return p.splitAfter!(SERVICE, size, '', points);
          };
          // Both halves, read at once, are the whole service.
          const bounds = await split(pages, LINKS / 2, 2);
          assert.is(bounds.length, 1);
          const [a, b] = await Promise.all([pages.jsonPage!(SERVICE, CURRENT_KEY_SCHEME, true, '', bounds[0]), more[0].jsonPage!(SERVICE, CURRENT_KEY_SCHEME, true, bounds[0], AFTER_ALL)]);
          assert.is(a.links + b.links, LINKS);
          assert.is(a.json.indexOf(1), -1);
          assert.is((JSON.parse(`[${a.json.subarray(1).toString()}${b.json.toString()}]`) as unknown[]).length, LINKS);
          // Ranges of 1,000 links: six, whatever the state they were split in; never smaller.
          assert.is((await split(pages, 1000, 2)).length, 5);
          assert.is((await split(pages, 16_384, 100)).length, 5);
        }
      });
    }
  } finally {
    stop = true;
    await writer;
    repo.close();
  }
  assert.ok(commits > 30);
});

test('a read that fails (a service gone) rolls back, and the next read begins afresh', async (ctx) => {
  const h = ctx.h;
  const repo = createSnapshotRepo(h.hub.store.sql);
  try {
    const err = await repo.read(async () => Promise.reject(new Error('no such service'))).catch((e: Error) => e);
    assert.is((err as Error).message, 'no such service');
    const before = (await h.hub.linkRepo.service(SERVICE))!.head_seq;
    await h.hub.linkRepo.nextSeq(SERVICE);
    const seen = await repo.read(async (pages, more) => Promise.all([pages, ...more].map(async (p) => (await p.service(SERVICE))!.head_seq)));
    assert.ok(
      seen.every((x) => x === before + 1),
      `head seqs ${seen.join(', ')}`,
    );
  } finally {
    repo.close();
  }
});

test('the reader threads are started ahead only for a service of the size given, and only on a SQLite file', async (ctx) => {
  const repo = createSnapshotRepo(ctx.h.hub.store.sql);
  try {
    assert.is(await repo.warm(LINKS + 1), false);
    assert.is(await repo.warm(LINKS), ctx.h.hub.store.sql.dialect === 'sqlite');
    // Started: a read finds them up.
    const seen = await repo.read(async (_pages, more) => 1 + more.length);
    assert.is(seen, ctx.h.hub.store.sql.dialect === 'sqlite' ? 2 : 1);
  } finally {
    repo.close();
  }
});

test.run();
