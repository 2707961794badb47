// The PIN-checked touch flow's decisions that need no card signature (#14), over a real cache and
// lookup with a stand-in reader: what is answered without asking the PIN, the PIN pad's time limit,
// cancel, the card taken away, a malformed PIN, and the aggregate counters. The card exchange itself
// runs through pcscd in pin-touch.serial.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { createTestCa, issueUserAuthCert } from '../../../provisioning/test-ca/ca.ts';
import { keyedId } from '../../../shared/sync.ts';
import { EdgeCache, KeyIndex } from '../../../edge/cache/index.ts';
import { Handoff, type HandoffTarget, type TouchResult } from '../../../edge/handoff/index.ts';
import { certIdentityOf, TouchLookup, type HealthView, type TouchIdentity } from '../../../edge/lookup/index.ts';
import { attachPinTouchRead, PinTouchFlow, type PinTouchView } from '../../../edge/pintouch/index.ts';
import type { PinStatus } from '../../../edge/reader/index.ts';

const SECRET = new Uint8Array(32).fill(5);
const ca = await createTestCa({ label: 'pin-flow' });
const linked = await issueUserAuthCert(ca);
const stranger = await issueUserAuthCert(ca);
const idOf = (der: Uint8Array) => {
  const r = certIdentityOf(der, 'hmac-sha256');
  if (!r.ok) throw new Error(r.message);
  return r.value;
};
const index = new KeyIndex();
index.set(keyedId(SECRET, 'cert', idOf(linked.certDer)), 'PT-0009');
const cache = new EdgeCache({ secret: SECRET });
cache.replace(index, 1, 'hmac-sha256');
let health: HealthView = { state: 'ok', lastContactMs: Date.now() };
const received: TouchResult[] = [];
const recorder: HandoffTarget = { name: 'rec', deliver: (r) => void received.push(r), stats: () => ({}) };
const lookup = new TouchLookup({
  cache,
  secret: () => SECRET,
  health: () => health,
  policy: { maxStalenessMs: 60_000, whenStale: 'refuse' },
  handoff: new Handoff([{ target: recorder, outcomes: ['linked', 'not_linked', 'refused', 'degraded'] }]),
  context: { serviceId: 'points', edgeId: 'e1' },
});
const removedListeners = new Set<(e: { reader: string }) => unknown>();
const cards = {
  connect: async () => {
    throw new Error('no card exchange in this test');
  },
  on: (_e: 'card-removed', l: (e: { reader: string }) => unknown) => (removedListeners.add(l), () => void removedListeners.delete(l)),
};
let anchors = [new X509Certificate(ca.certDer)];
const views: PinTouchView[] = [];
const flow = new PinTouchFlow({ lookup, cards, anchors: () => anchors, timeoutMs: 150 });
flow.on((v) => views.push(v));

function touchOf(der: Uint8Array, pin: PinStatus = { state: 'open', triesLeft: 3 }): TouchIdentity {
  const identity: TouchIdentity = { kind: 'cert', certDer: der };
  attachPinTouchRead(identity, { certDer: der, pin });
  return identity;
}
const last = () => received.at(-1)!;
const waitFor = async (cond: () => boolean, what: string) => {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('a card that is not linked is answered at once, without the PIN', async () => {
  const d = await flow.begin('r', touchOf(stranger.certDer));
  assert.is(d?.outcome, 'not_linked');
  assert.is(last().outcome, 'not_linked');
  assert.is(flow.view().step, 'off');
});

test('a stale edge refuses before the PIN, as every touch', async () => {
  health = { state: 'ok', lastContactMs: Date.now() - 3_600_000 };
  await flow.begin('r', touchOf(linked.certDer));
  assert.equal([last().outcome, last().reason], ['refused', 'stale']);
  health = { state: 'ok', lastContactMs: Date.now() };
});

test('without JPKI anchors from the hub nothing is handed over (pin_touch_unavailable)', async () => {
  const saved = anchors;
  anchors = [];
  await flow.begin('r', touchOf(linked.certDer));
  assert.equal([last().outcome, last().reason], ['refused', 'pin_touch_unavailable']);
  anchors = saved;
});

test('an identity read without the certificate (the level changed between read and decision) is refused', async () => {
  await flow.begin('r', { kind: 'cert', certDer: linked.certDer });
  assert.equal([last().outcome, last().reason], ['refused', 'unreadable_identity']);
});

test('a linked card opens the PIN pad with the tries left; a malformed PIN never reaches the card', async () => {
  await flow.begin('r', touchOf(linked.certDer, { state: 'open', triesLeft: 2 }));
  assert.equal(flow.view(), { step: 'pin', triesLeft: 2 });
  assert.is(flow.pin('12a4').ok, false);
  assert.is(flow.pin('12345').ok, false);
  assert.equal(flow.view(), { step: 'pin', triesLeft: 2 });
});

test('the PIN pad times out (pin_touch_timeout)', async () => {
  const n = received.length;
  await waitFor(() => received.length > n, 'the timeout');
  assert.equal([last().outcome, last().reason], ['refused', 'pin_touch_timeout']);
  assert.is(flow.view().step, 'off');
});

test('cancel ends the touch (pin_touch_cancelled); the card taken away too (card_removed)', async () => {
  await flow.begin('r', touchOf(linked.certDer));
  assert.ok(flow.cancel().ok);
  assert.equal([last().outcome, last().reason], ['refused', 'pin_touch_cancelled']);
  await flow.begin('r', touchOf(linked.certDer));
  for (const l of [...removedListeners]) l({ reader: 'other' });
  assert.is(flow.view().step, 'pin', 'another reader losing its card changes nothing');
  for (const l of [...removedListeners]) l({ reader: 'r' });
  assert.equal([last().outcome, last().reason], ['refused', 'card_removed']);
  assert.is(removedListeners.size, 0, 'the listener is removed with the touch');
});

test('a blocked PIN is refused at the touch without the pad', async () => {
  const before = views.length;
  await flow.begin('r', touchOf(linked.certDer, { state: 'blocked' }));
  assert.equal([last().outcome, last().reason], ['refused', 'pin_blocked']);
  assert.not.ok(views.slice(before).some((v) => v.step === 'pin'));
});

test('only aggregate counters are kept', () => {
  const s = flow.stats();
  assert.equal(Object.keys(s).sort(), ['pinFailures', 'pinTouches', 'pinVerified']);
  assert.is(s.pinTouches, 3);
  assert.is(s.pinVerified, 0);
  assert.ok(s.pinFailures >= 1);
});

test.run();
