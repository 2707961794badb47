// Batched change-log messages (v2 and the compact v3): packing and expanding give back exactly the
// log's entries, for every mix of kinds, times, reasons and key schemes, in both forms; a lone entry
// stays v1; the size bound holds; a v3 batch counts its entries and writes remove-only ones as strings.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { entriesOf, packLogMessages, type BatchVersion, type ChangeEntry, type CompactBatch, type LogMessage } from '../../shared/sync.ts';

const K = (c: string) => c.repeat(22);
const at = (ms: number) => new Date(Date.UTC(2026, 10, 30, 5, 0, 0, ms)).toISOString();
const entry = (seq: number, over: Partial<ChangeEntry> = {}): ChangeEntry => ({ seq, kind: 'suspend', at: at(0), remove: [K('a'), K('b')], keyScheme: 'scrypt-v2', ...over });
const roundTrip = (entries: ChangeEntry[], maxBytes?: number, version?: BatchVersion) => {
  const msgs = packLogMessages(
    entries.map((e) => ({ entry: e, json: JSON.stringify(e) })),
    maxBytes,
    version,
  );
  return { msgs, back: msgs.flatMap((m) => entriesOf(JSON.parse(m.payload) as LogMessage)) };
};

const cases: [string, ChangeEntry[]][] = [
  ['a CRL run of suspensions', Array.from({ length: 50 }, (_, i) => entry(i + 1, { at: at(Math.floor(i / 7)), reason: 'keyCompromise' }))],
  [
    'mixed kinds, sets and times',
    [entry(5, { kind: 'link', remove: [], set: { keys: [K('c')], serviceUserId: 'L-1' } }), entry(6), entry(7, { kind: 'resume', at: at(9), set: { keys: [K('d')], serviceUserId: 'L-2' } }), entry(8)],
  ],
  ['reasons on some entries only', [entry(1), entry(2, { reason: 'cancelled' }), entry(3), entry(4, { reason: 'x' }), entry(5, { reason: 'x' })]],
  ['the legacy scheme (no keyScheme), then a rekey', [entry(1, { keyScheme: undefined }), entry(2, { keyScheme: undefined }), entry(3, { kind: 'rekey', remove: [] }), entry(4)]],
  ['a hole in the seqs', [entry(1), entry(2), entry(4), entry(5)]],
];

for (const version of [2, 3] as const) {
  for (const [name, entries] of cases) {
    test(`packs and expands back to the same entries (v${version}): ${name}`, () => {
      const clean = entries.map((e) => JSON.parse(JSON.stringify(e)) as ChangeEntry);
      const { msgs, back } = roundTrip(clean, undefined, version);
      assert.equal(back, clean);
      for (const m of msgs) if (m.count > 1) assert.is((JSON.parse(m.payload) as { v: number }).v, version);
    });
  }
}

test('a compact batch (v3) says its count right after its seq and writes remove-only entries as strings', () => {
  const entries = Array.from({ length: 5 }, (_, i) => entry(i + 1, { reason: 'keyCompromise' }));
  entries[2] = entry(3, { reason: 'keyCompromise', set: { keys: [K('c')], serviceUserId: 'L-1' }, remove: [] });
  const { msgs } = roundTrip(entries);
  assert.is(msgs.length, 1);
  assert.ok(msgs[0].payload.startsWith('{"v":3,"seq":1,"n":5,'), msgs[0].payload.slice(0, 40));
  const b = JSON.parse(msgs[0].payload) as CompactBatch;
  assert.equal(b.entries, [K('a') + K('b'), K('a') + K('b'), { remove: [], set: { keys: [K('c')], serviceUserId: 'L-1' } }, K('a') + K('b'), K('a') + K('b')]);
});

test('v2 is still written when asked, for edges older than v3', () => {
  const { msgs } = roundTrip([entry(1), entry(2)], undefined, 2);
  assert.ok(msgs[0].payload.startsWith('{"v":2,"seq":1,"kind"'));
  assert.equal((JSON.parse(msgs[0].payload) as { entries: unknown[] }).entries, [{ remove: [K('a'), K('b')] }, { remove: [K('a'), K('b')] }]);
});

test('a compact batch holds a CRL run in about 3/4 of the bytes of v2, and both stay under the bound', () => {
  const entries = Array.from({ length: 3000 }, (_, i) => entry(i + 1, { at: at(Math.floor(i / 10)), reason: 'keyCompromise', remove: [K(String.fromCharCode(65 + (i % 26))), K('z')] }));
  const size = (v: BatchVersion) => {
    const { msgs, back } = roundTrip(entries, undefined, v);
    assert.is(back.length, 3000);
    for (const m of msgs) assert.ok(Buffer.byteLength(m.payload) <= 64 * 1024);
    return msgs.reduce((s, m) => s + Buffer.byteLength(m.payload), 0);
  };
  const v2 = size(2);
  const v3 = size(3);
  assert.ok(v3 / 3000 < 52, `${Math.round(v3 / 3000)} bytes per suspension`);
  assert.ok(v3 < 0.8 * v2, `v3 ${v3} bytes, v2 ${v2}`);
});

test('a size bound that holds exactly n entries gives batches of n, counted digit by digit', () => {
  const entries = Array.from({ length: 25 }, (_, i) => entry(i + 1));
  for (const n of [2, 9, 10, 11]) {
    const bound = Buffer.byteLength(roundTrip(entries.slice(0, n)).msgs[0].payload);
    const { msgs } = roundTrip(entries, bound);
    assert.ok(msgs.every((m) => Buffer.byteLength(m.payload) <= bound));
    assert.is(msgs[0].count, n);
  }
});

test('a lone entry is sent as the v1 entry itself', () => {
  const e = entry(9);
  const { msgs } = roundTrip([e]);
  assert.equal(msgs, [{ payload: JSON.stringify(e), count: 1 }]);
});

test('batches stay under the size bound and a suspension costs well under 100 bytes', () => {
  const entries = Array.from({ length: 3000 }, (_, i) => entry(i + 1, { at: at(i % 1000), reason: 'keyCompromise' }));
  const { msgs, back } = roundTrip(entries);
  assert.is(back.length, 3000);
  for (const m of msgs) assert.ok(Buffer.byteLength(m.payload) <= 64 * 1024);
  const bytes = msgs.reduce((s, m) => s + Buffer.byteLength(m.payload), 0);
  assert.ok(bytes / 3000 < 100, `${Math.round(bytes / 3000)} bytes per suspension`);
});

test.run();
