// The pure part of making a later snapshot from a kept one: folding change-log entries, and dropping
// touched entries from the builder's JSON pieces byte by byte (escaped service IDs included).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addedPiece, filterPiece, firstWithoutComma, foldChanges, NotSnapshotJson } from '../../../hub/links/snapshot-delta.ts';
import type { ChangeEntry } from '../../../shared/sync.ts';

const K = (c: string) => c.repeat(22);
const entry = (k: string, uid: string) => `["${k}",${JSON.stringify(uid)}]`;
const at = '2026-06-01T12:00:00.000Z';

test('folds entries in order: a key removed then set is set, set then removed is gone', () => {
  const entries: ChangeEntry[] = [
    { seq: 1, kind: 'link', at, remove: [K('a')], set: { keys: [K('a'), K('b')], serviceUserId: 'U1' } },
    { seq: 2, kind: 'unlink', at, remove: [K('b')] },
    { seq: 3, kind: 'resume', at, remove: [], set: { keys: [K('c')], serviceUserId: 'U2' } },
  ];
  const f = foldChanges(entries);
  assert.equal([...f.touched].sort(), [K('a'), K('b'), K('c')]);
  assert.equal(
    [...f.added],
    [
      [K('a'), 'U1'],
      [K('c'), 'U2'],
    ],
  );
});

test('drops touched entries from a piece, service IDs with quotes and backslashes included', () => {
  const table: [string, string, string[], string, number][] = [
    ['first piece, nothing touched', `${entry(K('a'), 'U1')},${entry(K('b'), 'U2')}`, [], `,${entry(K('a'), 'U1')},${entry(K('b'), 'U2')}`, 2],
    ['later piece, one touched', `,${entry(K('a'), 'U1')},${entry(K('b'), 'U2')}`, [K('a')], `,${entry(K('b'), 'U2')}`, 1],
    ['escaped service IDs', `,${entry(K('a'), 'a"b')},${entry(K('b'), 'c\\\\"]d')},${entry(K('c'), 'e')}`, [K('b')], `,${entry(K('a'), 'a"b')},${entry(K('c'), 'e')}`, 2],
    ['all touched', `${entry(K('a'), 'U1')}`, [K('a')], '', 0],
  ];
  for (const [name, piece, touched, want, kept] of table) {
    const f = filterPiece(Buffer.from(piece), new Set(touched));
    assert.is(f.piece.toString(), want, name);
    assert.is(f.kept, kept, name);
  }
  const joined = firstWithoutComma([Buffer.from(''), Buffer.from(`,${entry(K('a'), 'U1')}`), addedPiece(new Map([[K('z'), 'Z"1']]))]);
  assert.equal(JSON.parse(`[${Buffer.concat(joined).toString()}]`), [
    [K('a'), 'U1'],
    [K('z'), 'Z"1'],
  ]);
});

test('a piece that is not the builder JSON is refused, so the snapshot is read in full', () => {
  for (const bad of ['{"x":1}', `,${entry('short', 'U')}`, `,["${K('a')}","unterminated`, `${entry(K('a'), 'U')}x`]) {
    assert.throws(
      () => filterPiece(Buffer.from(bad), new Set()),
      (e: unknown) => e instanceof NotSnapshotJson,
      bad,
    );
  }
});

test.run();
