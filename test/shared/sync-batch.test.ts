// Batched change-log messages (v2): packing and expanding give back exactly the log's entries, for
// every mix of kinds, times, reasons and key schemes; a lone entry stays v1; the size bound holds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { entriesOf, packLogMessages, type ChangeEntry, type LogMessage } from '../../shared/sync.ts';

const K = (c: string) => c.repeat(22);
const at = (ms: number) => new Date(Date.UTC(2026, 10, 30, 5, 0, 0, ms)).toISOString();
const entry = (seq: number, over: Partial<ChangeEntry> = {}): ChangeEntry => ({ seq, kind: 'suspend', at: at(0), remove: [K('a'), K('b')], keyScheme: 'scrypt-v2', ...over });
const roundTrip = (entries: ChangeEntry[], maxBytes?: number) => {
  const msgs = packLogMessages(
    entries.map((e) => ({ entry: e, json: JSON.stringify(e) })),
    maxBytes,
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

for (const [name, entries] of cases) {
  test(`packs and expands back to the same entries: ${name}`, () => {
    const clean = entries.map((e) => JSON.parse(JSON.stringify(e)) as ChangeEntry);
    const { back } = roundTrip(clean);
    assert.equal(back, clean);
  });
}

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
