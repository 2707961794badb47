import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { decodeKey, encodeKey } from '../../../edge/cache/key-codec.ts';
import { KeyIndex } from '../../../edge/cache/key-index.ts';

const key = (i: number) => {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(i >>> 0, 12);
  b.writeUInt32BE(0x5eed, 0);
  return b.toString('base64url');
};
const randomKey = () => randomBytes(16).toString('base64url');

test('decodes and encodes keys both ways, refusing non-canonical and malformed ones', () => {
  const w = new Int32Array(4);
  for (let i = 0; i < 200; i++) {
    const k = randomKey();
    assert.ok(decodeKey(k, w));
    assert.is(encodeKey(w), k);
  }
  const cases: [string, boolean][] = [
    ['AAAAAAAAAAAAAAAAAAAAAA', true],
    ['_____________________w', true],
    ['_____________________x', false], // low bits of the last character set: not canonical
    ['AAAAAAAAAAAAAAAAAAAAA', false],
    ['AAAAAAAAAAAAAAAAAAAAAAA', false],
    ['AAAAAAAAAAAAAAAAAAAA+A', false],
    ['AAAAAAAAAAAAAAAAAAAA=A', false],
    ['AAAAAAAAAAAAAAAAAAAAéA', false],
  ];
  for (const [k, good] of cases) assert.is(decodeKey(k, w), good, k);
});

test('maps, replaces, removes and reinserts keys like a Map, table-driven', () => {
  type Op = ['set', string, string] | ['del', string];
  const a = key(1),
    b = key(2),
    c = key(3);
  const table: { name: string; ops: Op[]; expect: Record<string, string | undefined> }[] = [
    { name: 'set then get', ops: [['set', a, 'L-1']], expect: { [a]: 'L-1', [b]: undefined } },
    {
      name: 'replace',
      ops: [
        ['set', a, 'L-1'],
        ['set', a, 'L-2'],
      ],
      expect: { [a]: 'L-2' },
    },
    {
      name: 'remove',
      ops: [
        ['set', a, 'L-1'],
        ['del', a],
      ],
      expect: { [a]: undefined },
    },
    { name: 'remove absent', ops: [['del', a]], expect: { [a]: undefined } },
    {
      name: 'reinsert after remove',
      ops: [
        ['set', a, 'L-1'],
        ['del', a],
        ['set', a, 'L-3'],
      ],
      expect: { [a]: 'L-3' },
    },
    {
      name: 'two keys one id',
      ops: [
        ['set', a, 'S'],
        ['set', b, 'S'],
        ['del', a],
      ],
      expect: { [a]: undefined, [b]: 'S' },
    },
    {
      name: 'three keys, middle removed',
      ops: [
        ['set', a, 'x'],
        ['set', b, 'y'],
        ['set', c, 'z'],
        ['del', b],
      ],
      expect: { [a]: 'x', [b]: undefined, [c]: 'z' },
    },
  ];
  for (const row of table) {
    const idx = new KeyIndex();
    for (const op of row.ops) op[0] === 'set' ? idx.set(op[1], op[2]) : idx.delete(op[1]);
    for (const [k, v] of Object.entries(row.expect)) assert.is(idx.get(k), v, `${row.name}: ${k}`);
    assert.is(idx.size, Object.values(row.expect).filter((v) => v !== undefined).length + 0, row.name);
  }
});

test('refuses malformed keys and ids on set, and misses on get', () => {
  const idx = new KeyIndex();
  assert.throws(() => idx.set('short', 'x'), TypeError);
  assert.throws(() => idx.set(key(1), ''), TypeError);
  assert.throws(() => idx.set(key(1), 'has space'), TypeError);
  assert.throws(() => idx.set(key(1), 'x'.repeat(65)), TypeError);
  assert.is(idx.get('not a key'), undefined);
  assert.is(idx.delete('not a key'), false);
  assert.is(idx.size, 0);
});

test('agrees with a Map under a long random mix of sets and deletes in a crowded table', () => {
  // A small key space (200 keys) and many operations: long probe chains, wrap-around at the table's
  // end, and backward-shift deletion are all exercised; ids repeat so interning is too.
  const idx = new KeyIndex();
  const model = new Map<string, string>();
  const keys = Array.from({ length: 200 }, (_, i) => key(i * 16)); // same low bits: similar words
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  for (let step = 0; step < 50_000; step++) {
    const k = keys[rnd(keys.length)];
    if (rnd(3) === 0) {
      assert.is(idx.delete(k), model.delete(k));
    } else {
      const v = `U${rnd(40)}`;
      idx.set(k, v);
      model.set(k, v);
    }
    if (step % 997 === 0) for (const kk of keys) assert.is(idx.get(kk), model.get(kk));
  }
  assert.is(idx.size, model.size);
  for (const kk of keys) assert.is(idx.get(kk), model.get(kk));
  assert.equal(new Map(idx.entries()), model);
});

test('keeps every key findable when all keys collide into one home slot region', () => {
  // 12 keys in a 16-slot table cannot avoid sharing homes; remove from the middle of the chains.
  const idx = new KeyIndex();
  const ks = Array.from({ length: 12 }, (_, i) => key(i));
  ks.forEach((k, i) => void idx.set(k, `v${i}`));
  for (let i = 0; i < ks.length; i += 2) assert.ok(idx.delete(ks[i]));
  ks.forEach((k, i) => void assert.is(idx.get(k), i % 2 ? `v${i}` : undefined));
  for (let i = 0; i < ks.length; i += 2) idx.set(ks[i], `w${i}`);
  ks.forEach((k, i) => void assert.is(idx.get(k), i % 2 ? `v${i}` : `w${i}`));
});

test('packs and unpacks to the same mappings, sharing interned ids', () => {
  const idx = new KeyIndex();
  const model = new Map<string, string>();
  for (let i = 0; i < 3000; i++) {
    const k = randomKey();
    const v = `LIB-${i >> 1}`;
    idx.set(k, v);
    model.set(k, v);
  }
  const p = idx.pack();
  assert.is(p.refs.length, 3000);
  assert.is(p.userIds.length, 1500);
  const back = KeyIndex.unpack(p);
  assert.equal(new Map(back.entries()), model);
  assert.is(back.distinctUserIds, 1500);
  assert.throws(() => KeyIndex.unpack({ keys: new Uint8Array(16), userIds: [], refs: new Uint32Array(1) }), TypeError);
});

test('reclaims id storage: ids released by removal are compacted away', () => {
  const idx = new KeyIndex();
  const ks: string[] = [];
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 5000; i++) {
      const k = key(i);
      ks[i] = k;
      idx.set(k, `round${round}-user-${i}-padding-padding`);
    }
  }
  assert.is(idx.size, 5000);
  assert.is(idx.distinctUserIds, 5000);
  for (let i = 0; i < 5000; i++) assert.is(idx.get(ks[i]), `round4-user-${i}-padding-padding`);
  const before = idx.byteLength;
  for (const k of ks) idx.delete(k);
  assert.is(idx.size, 0);
  assert.is(idx.distinctUserIds, 0);
  assert.ok(idx.byteLength <= before);
});

test('holds a million mappings and finds them', () => {
  const n = 1_000_000;
  const idx = new KeyIndex();
  const b = Buffer.alloc(16);
  const k = (i: number) => {
    b.writeUInt32BE(i, 0);
    b.writeUInt32BE(~i >>> 0, 8);
    return b.toString('base64url');
  };
  for (let i = 0; i < n; i++) idx.set(k(i), `U${i >> 1}`);
  assert.is(idx.size, n);
  assert.is(idx.distinctUserIds, n / 2);
  for (let i = 0; i < n; i += 9973) assert.is(idx.get(k(i)), `U${i >> 1}`);
  for (let i = 0; i < n; i += 2) idx.delete(k(i));
  assert.is(idx.size, n / 2);
  for (let i = 1; i < n; i += 9973 * 2) assert.is(idx.get(k(i)), `U${i >> 1}`);
  assert.is(idx.get(k(0)), undefined);
});

test.run();
