import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { keyedId } from '../../../shared/sync.ts';
import { certIdentity, issuerKeyOf } from '../../../shared/cert-identity.ts';
import { createTestCa, issueUserAuthCert } from '../../../provisioning/test-ca/ca.ts';
import { decide, freshness, type HealthView, type LookupDecision, type StalenessPolicy, type TouchIdentity } from '../../../edge/lookup/index.ts';

const secret = new Uint8Array(32).fill(7);
const NOW = Date.parse('2026-11-25T12:00:00Z');
const HOUR = 3_600_000;
const ca = await createTestCa({ label: 'lookup' });
const linkedCert = await issueUserAuthCert(ca);
const otherCert = await issueUserAuthCert(ca);

const map = new Map<string, string>([
  [keyedId(secret, 'mykey', 'B7NQ4KXW'), 'LIB-0001'],
  [keyedId(secret, 'cert', certIdentity(issuerKeyOf(ca.nameDer), linkedCert.serialHex)), 'LIB-0002'],
]);
const cache = { get: (k: string) => map.get(k), synced: true };
const unsynced = { get: (k: string) => map.get(k), synced: false };

const linkedMyKey: TouchIdentity = { kind: 'mykey', mykeyId: 'B7NQ4KXW' };
const unknownMyKey: TouchIdentity = { kind: 'mykey', mykeyId: 'ZZZZ2222' };
const linkedByCert: TouchIdentity = { kind: 'cert', certDer: linkedCert.certDer };
const unknownCert: TouchIdentity = { kind: 'cert', certDer: otherCert.certDer };
const garbageCert: TouchIdentity = { kind: 'cert', certDer: new Uint8Array([0x30, 0x03, 0x02, 0x01]) };

const ok: HealthView = { state: 'ok', lastContactMs: NOW - 60_000 };
const offlineRecent: HealthView = { state: 'degraded', lastContactMs: NOW - HOUR };
const offlineLong: HealthView = { state: 'degraded', lastContactMs: NOW - 30 * HOUR };
const markedStale: HealthView = { state: 'stale', lastContactMs: NOW - HOUR };
const clockUnsure: HealthView = { state: 'clock_unsure', lastContactMs: NOW - 60_000 };
const clockBehind: HealthView = { state: 'ok', lastContactMs: NOW + 10 * HOUR };
const neverContacted: HealthView = { state: 'degraded', lastContactMs: undefined };

const refuse: StalenessPolicy = { maxStalenessMs: 24 * HOUR, whenStale: 'refuse' };
const warn: StalenessPolicy = { maxStalenessMs: 24 * HOUR, whenStale: 'answer-with-warning' };

type Row = [name: string, identity: TouchIdentity, health: HealthView, policy: StalenessPolicy, expected: LookupDecision, cache?: typeof cache, secret?: Uint8Array | null];
const rows: Row[] = [
  ['a linked MyKey ID while in touch', linkedMyKey, ok, refuse, { outcome: 'linked', serviceUserId: 'LIB-0001' }],
  ['a linked certificate while in touch', linkedByCert, ok, refuse, { outcome: 'linked', serviceUserId: 'LIB-0002' }],
  ['an unknown MyKey ID (offer registration)', unknownMyKey, ok, refuse, { outcome: 'not_linked' }],
  ['an unknown certificate', unknownCert, ok, refuse, { outcome: 'not_linked' }],
  ['offline but within the bound', linkedMyKey, offlineRecent, refuse, { outcome: 'linked', serviceUserId: 'LIB-0001' }],
  ['offline beyond the bound, policy refuse', linkedMyKey, offlineLong, refuse, { outcome: 'refused', reason: 'stale' }],
  ['sync says stale, policy refuse', linkedMyKey, markedStale, refuse, { outcome: 'refused', reason: 'stale' }],
  ['never in contact, policy refuse', linkedMyKey, neverContacted, refuse, { outcome: 'refused', reason: 'stale' }],
  ['the clock is unsure, policy refuse', linkedMyKey, clockUnsure, refuse, { outcome: 'refused', reason: 'clock_unsure' }],
  ['the clock is behind the last contact, policy refuse', linkedMyKey, clockBehind, refuse, { outcome: 'refused', reason: 'clock_unsure' }],
  [
    'offline beyond the bound, policy answer-with-warning, linked',
    linkedMyKey,
    offlineLong,
    warn,
    { outcome: 'degraded', reason: 'stale', answer: { outcome: 'linked', serviceUserId: 'LIB-0001' }, lastContactMs: NOW - 30 * HOUR },
  ],
  [
    'offline beyond the bound, policy answer-with-warning, unknown',
    unknownCert,
    offlineLong,
    warn,
    { outcome: 'degraded', reason: 'stale', answer: { outcome: 'not_linked' }, lastContactMs: NOW - 30 * HOUR },
  ],
  [
    'the clock is unsure, policy answer-with-warning',
    linkedByCert,
    clockUnsure,
    warn,
    { outcome: 'degraded', reason: 'clock_unsure', answer: { outcome: 'linked', serviceUserId: 'LIB-0002' }, lastContactMs: NOW - 60_000 },
  ],
  ['an unreadable certificate', garbageCert, ok, refuse, { outcome: 'refused', reason: 'unreadable_identity' }],
  ['a cache that never held a snapshot', linkedMyKey, ok, warn, { outcome: 'refused', reason: 'not_synced' }, unsynced],
  ['no sync secret yet', linkedMyKey, ok, warn, { outcome: 'refused', reason: 'not_synced' }, cache, null],
];

for (const [name, identity, health, policy, expected, c, s] of rows) {
  test(`decides ${name}`, () => {
    const got = decide({ identity, cache: c ?? cache, secret: s === null ? undefined : secret, health, now: NOW, policy });
    assert.equal(got, expected);
  });
}

test('never hands over a MyKey ID once its suspension purged the key', () => {
  const m = new Map(map);
  const c = { get: (k: string) => m.get(k), synced: true };
  const before = decide({ identity: linkedMyKey, cache: c, secret, health: ok, now: NOW, policy: warn });
  assert.is(before.outcome, 'linked');
  m.delete(keyedId(secret, 'mykey', 'B7NQ4KXW')); // what applying a `suspend` entry does
  for (const health of [ok, offlineLong, clockUnsure]) {
    const after = decide({ identity: linkedMyKey, cache: c, secret, health, now: NOW, policy: warn });
    assert.not.ok(after.outcome === 'linked' || (after.outcome === 'degraded' && after.answer.outcome === 'linked'));
  }
});

test('freshness counts the bound inclusively and tolerates a small clock step back', () => {
  assert.is(freshness({ state: 'ok', lastContactMs: NOW - 1000 }, NOW, 1000), 'fresh');
  assert.is(freshness({ state: 'ok', lastContactMs: NOW - 1001 }, NOW, 1000), 'stale');
  assert.is(freshness({ state: 'ok', lastContactMs: NOW + 30_000 }, NOW, 1000), 'fresh');
  assert.is(freshness({ state: 'ok', lastContactMs: NOW + 61_000 }, NOW, 1000), 'clock_unsure');
});

test.run();
