// What an edge accepts on its service log topic (edge/sync/log-message.ts): one entry (v1), a batch
// (v2) and a compact batch (v3) carrying the same entries decode to the same entries; each bad form
// is refused whole with its code.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkLogPayload } from '../../../edge/sync/log-message.ts';
import { MAX_BATCH_ENTRIES, packLogMessages, type ChangeEntry } from '../../../shared/sync.ts';

const K = (c: string) => c.repeat(22);
const at = '2026-11-30T05:00:00.000Z';
const entries: ChangeEntry[] = [
  { seq: 7, kind: 'link', at, remove: [], set: { keys: [K('a'), K('b')], serviceUserId: 'LIB-1' }, keyScheme: 'scrypt-v3' },
  { seq: 8, kind: 'suspend', at, remove: [K('a'), K('b')], reason: 'keyCompromise', keyScheme: 'scrypt-v3' },
  { seq: 9, kind: 'suspend', at: '2026-11-30T05:00:00.001Z', remove: [K('c'), K('d')], reason: 'keyCompromise', keyScheme: 'scrypt-v3' },
  { seq: 10, kind: 'suspend', at: '2026-11-30T05:00:00.001Z', remove: [K('e')], reason: 'keyCompromise', keyScheme: 'scrypt-v3' },
];
const packed = (version: 2 | 3) =>
  packLogMessages(
    entries.map((entry) => ({ entry, json: JSON.stringify(entry) })),
    undefined,
    version,
  );
const decode = (p: string | object) => checkLogPayload(Buffer.from(typeof p === 'string' ? p : JSON.stringify(p)));

test('one entry (v1), a batch (v2) and a compact batch (v3) give the same entries', () => {
  const v1 = entries.flatMap((e) => {
    const r = decode(JSON.stringify(e));
    return r.ok ? r.value : [];
  });
  assert.equal(v1, entries);
  for (const version of [2, 3] as const) {
    const msgs = packed(version);
    assert.is(msgs.length, 1);
    assert.ok(msgs[0].payload.startsWith(`{"v":${version},`));
    const r = decode(msgs[0].payload);
    assert.ok(r.ok, r.ok ? '' : r.message);
    if (r.ok) assert.equal(r.value, entries, `v${version}`);
  }
});

const head = { v: 3, seq: 1, kind: 'suspend', at };
const refusals: [string, string | object, string][] = [
  ['a count below the entries', { ...head, n: 1, entries: [K('a'), K('b')] }, 'log_batch_miscounted'],
  ['a count above the entries', { ...head, n: 3, entries: [K('a'), K('b')] }, 'log_batch_miscounted'],
  ['no count', { ...head, entries: [K('a'), K('b')] }, 'validation_failed'],
  ['a string entry that is not whole keys', { ...head, n: 1, entries: [K('a').slice(1)] }, 'validation_failed'],
  ['a string entry outside base64url', { ...head, n: 1, entries: [`+${K('a').slice(1)}`] }, 'validation_failed'],
  ['a string entry of 65 keys', { ...head, n: 1, entries: [K('a').repeat(65)] }, 'validation_failed'],
  ['an entry with a seq of its own', { ...head, n: 1, entries: [{ seq: 1, remove: [] }] }, 'validation_failed'],
  ['no entries', { ...head, n: 1, entries: [] }, 'validation_failed'],
  ['more entries than a batch may hold', { ...head, n: MAX_BATCH_ENTRIES + 1, entries: Array.from({ length: MAX_BATCH_ENTRIES + 1 }, () => '') }, 'validation_failed'],
  ['a version no edge knows', { ...head, v: 4, n: 1, entries: [K('a')] }, 'validation_failed'],
  ['a payload over 64 KiB', { ...head, n: 1500, entries: Array.from({ length: 1500 }, () => K('a') + K('b')) }, 'payload_too_large'],
  ['not JSON', '{"v":3,', 'validation_failed'],
];
for (const [name, payload, code] of refusals) {
  test(`refuses ${name} (${code})`, () => {
    const r = decode(payload);
    assert.is(r.ok, false);
    if (!r.ok) assert.is(r.code, code);
  });
}

test.run();
