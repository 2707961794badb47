import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { keyedId } from '../../../shared/sync.ts';
import type { TouchResult } from '../../../edge/handoff/types.ts';
import { TouchDesk, TouchLookup, type TouchIdentity, type TouchSource } from '../../../edge/lookup/index.ts';

const secret = new Uint8Array(32).fill(1);
const map = new Map([[keyedId(secret, 'mykey', 'B7NQ4KXW'), 'LIB-1']]);

/** A touch source the test fires by hand. */
function source() {
  const listeners: Record<string, ((e: any) => unknown)[]> = { identity: [], 'touch-failed': [] };
  const src: TouchSource & { fire(ev: string, e: unknown): void } = {
    on(ev: string, l: (e: any) => unknown) {
      listeners[ev].push(l);
      return () => (listeners[ev] = listeners[ev].filter((x) => x !== l));
    },
    fire: (ev: string, e: unknown) => listeners[ev].forEach((l) => void l(e)),
  } as never;
  return src;
}

function setup() {
  const sent: TouchResult[] = [];
  const counted: string[] = [];
  const lookup = new TouchLookup({
    cache: { get: (k) => map.get(k), synced: true },
    secret: () => secret,
    health: () => ({ state: 'ok', lastContactMs: Date.now() }),
    policy: { maxStalenessMs: 60_000, whenStale: 'refuse' },
    handoff: { dispatch: (r) => void sent.push(r) },
    context: { serviceId: 'library', edgeId: 'e1', storeId: 'main-branch' },
    onCount: (n) => void counted.push(n),
    randomId: () => 'tx',
  });
  const reg = {
    active: false,
    wantsCard: false,
    calls: [] as string[],
    cardTouched: (_r: string, i: TouchIdentity) => void reg.calls.push(`card:${i.kind}`),
    cardFailed: () => void reg.calls.push('failed'),
    offer: (_r: string, i: TouchIdentity) => void reg.calls.push(`offer:${i.kind}`),
    forgetOffer: () => void reg.calls.push('forget'),
  };
  const src = source();
  const desk = new TouchDesk({ source: src, lookup, registration: reg });
  desk.start();
  return { sent, counted, lookup, reg, src, desk };
}

test('hands a linked touch over with the service ID and the store, keeping the MyKey ID internal', async () => {
  const { sent, counted, src, lookup } = setup();
  src.fire('identity', { reader: 'r1', identity: { kind: 'mykey', mykeyId: 'B7NQ4KXW' } });
  await lookup.idle(); // the keyed identity is derived on the libuv pool
  assert.is(sent.length, 1);
  assert.equal(
    { ...sent[0], at: undefined },
    { transaction: 'tx', serviceId: 'library', edgeId: 'e1', storeId: 'main-branch', reader: 'r1', at: undefined, outcome: 'linked', serviceUserId: 'LIB-1', mykeyId: 'B7NQ4KXW' },
  );
  assert.equal(counted, ['touches', 'handoffs']);
});

test('offers a not-linked card to registration, and forgets it at the next touch', async () => {
  const { sent, reg, src, lookup } = setup();
  src.fire('identity', { reader: 'r1', identity: { kind: 'mykey', mykeyId: 'ZZZZ2222' } });
  await lookup.idle();
  assert.is(sent[0].outcome, 'not_linked');
  assert.equal(reg.calls, ['forget', 'offer:mykey']);
  src.fire('touch-failed', { reader: 'r1', code: 'card_removed' });
  assert.equal(reg.calls, ['forget', 'offer:mykey', 'forget']);
  assert.equal([sent[1].outcome, sent[1].reason], ['refused', 'card_removed']);
  assert.equal(lookup.counters(), { touches: 2, handoffs: 0, notLinked: 1, refused: 0, errors: 1, degraded: 0 });
});

test('gives the touch to registration while it waits for a card, and hands nothing over', () => {
  const { sent, reg, src, desk } = setup();
  reg.active = true;
  reg.wantsCard = true;
  src.fire('identity', { reader: 'r1', identity: { kind: 'mykey', mykeyId: 'B7NQ4KXW' } });
  src.fire('touch-failed', { reader: 'r1', code: 'card_error' });
  reg.wantsCard = false;
  src.fire('identity', { reader: 'r1', identity: { kind: 'mykey', mykeyId: 'B7NQ4KXW' } });
  assert.equal(reg.calls, ['card:mykey', 'failed']);
  assert.is(sent.length, 0);
  assert.is(desk.ignored, 1);
});

test('stops listening on stop()', () => {
  const { sent, src, desk } = setup();
  desk.stop();
  src.fire('identity', { reader: 'r1', identity: { kind: 'mykey', mykeyId: 'B7NQ4KXW' } });
  assert.is(sent.length, 0);
});

test.run();
