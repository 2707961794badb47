// PIN-checked touch (#14) through the real stack: virtual cards in vpcd slot 0, pcscd, the reader
// layer and its guard, the touch desk, the PIN-touch flow over a cache as a sync leaves it, and the
// kiosk page in a real headless Chromium where the holder types the PIN on the pad. Each attack is a
// card made for it, and each is refused with its own code.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createTestCa, exportPkcs8, issueUserAuthCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile, type CardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../../../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../../../provisioning/virtual-card/vpcd-slot.ts';
import { keyedId } from '../../../shared/sync.ts';
import { EdgeCache, KeyIndex } from '../../../edge/cache/index.ts';
import { Handoff, type HandoffTarget, type TouchResult } from '../../../edge/handoff/index.ts';
import { KioskServer } from '../../../edge/kiosk/index.ts';
import { MESSAGES } from '../../../edge/kiosk/messages.ts';
import { certIdentityOf, TouchDesk, type TouchLookup, type HealthView } from '../../../edge/lookup/index.ts';
import { PinTouchFlow, readPinTouchIdentity, type PinTouchView, type PinVerdict } from '../../../edge/pintouch/index.ts';
import { ReaderManager, TouchPipeline, silentReaderLog } from '../../../edge/reader/index.ts';
import { removeCard, requirePcscd, vpcdReaderName } from '../../helpers/pcsc.ts';
import { touchLookup } from '../../helpers/edge-stack.ts';
import { until } from '../../helpers/polling.ts';

const READER = vpcdReaderName(0);
const SECRET = new Uint8Array(32).fill(7);
const ALICE_ID = 'B7NQ4KXW';

/** A card that signs once, then answers every later SIGN with that first signature (a replaying card). */
class ReplayCard extends VirtualCard {
  recorded: Uint8Array | undefined;
  override exchange(apdu: Uint8Array): ReturnType<VirtualCard['exchange']> {
    const r = super.exchange(apdu);
    if (apdu[0] === 0x80 && apdu[1] === 0x2a && r.response.length > 2) {
      if (!this.recorded) this.recorded = r.response;
      else return { response: this.recorded };
    }
    return r;
  }
}

interface Ctx {
  ca: TestCa;
  cards: Record<'alice' | 'bob' | 'mallory' | 'otherKey' | 'forged' | 'blocked', CardFile>;
  received: TouchResult[];
  cache: EdgeCache;
  health: HealthView;
  manager: ReaderManager;
  pipeline: TouchPipeline;
  slot: VpcdSlot;
  lookup: TouchLookup;
  handoff: Handoff;
  kiosk: KioskServer;
  flow: PinTouchFlow;
  desk: TouchDesk;
  views: PinTouchView[];
  verdicts: PinVerdict[];
  browser: Browser;
  page: Page;
}
const test = suite<Ctx>('PIN-checked touch', {} as Ctx);

const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');
const certOf = (f: CardFile) => new Uint8Array(Buffer.from(f.jpki.authCert, 'base64'));
const certKey = (f: CardFile) => {
  const id = certIdentityOf(certOf(f), 'hmac-sha256');
  if (!id.ok) throw new Error(id.message);
  return keyedId(SECRET, 'cert', id.value);
};

test.before(async (ctx) => {
  await requirePcscd();
  ctx.ca = await createTestCa({ label: 'pin-touch' });
  const alice = await makeCardFile({ ca: ctx.ca, mykeyId: ALICE_ID });
  const bob = await makeCardFile({ ca: ctx.ca, withMyKeyApp: false });
  // Mallory's own genuine card, with Alice's MyKey ID written into its MyKey area.
  const mallory = await makeCardFile({ ca: ctx.ca, mykeyId: ALICE_ID });
  // Alice's certificate and MyKey ID on a card whose key is another one (no one has Alice's key).
  const otherKey = structuredClone(alice);
  otherKey.jpki.authKey = bob.jpki.authKey;
  // A certificate made up with Alice's issuer Name and serial (all readable off her card) and the
  // forger's own key, signed by a CA of the same Name that no anchor names.
  const forger = await createTestCa({ label: 'forger', nameDer: ctx.ca.nameDer });
  const fake = await issueUserAuthCert(forger, { serial: BigInt(`0x${new X509Certificate(certOf(alice)).serialNumber}`) });
  const forged = structuredClone(alice);
  forged.jpki.authCert = b64(fake.certDer);
  forged.jpki.authKey = b64(await exportPkcs8(fake.keyPair.privateKey));
  const blocked = structuredClone(alice);
  blocked.jpki.authPin.triesLeft = 0;
  ctx.cards = { alice, bob, mallory, otherKey, forged, blocked };

  // The cache as the hub's change log leaves it: one entry per link sets the MyKey ID's key and its
  // current certificate's key to the service ID (hub/links keysOf). Mallory is linked too, to her own.
  const index = new KeyIndex();
  index.set(keyedId(SECRET, 'mykey', ALICE_ID), 'PT-0001');
  index.set(certKey(alice), 'PT-0001');
  index.set(certKey(bob), 'PT-0002');
  index.set(certKey(mallory), 'PT-0003');
  ctx.cache = new EdgeCache({ secret: SECRET });
  ctx.cache.replace(index, 10, 'hmac-sha256');
  ctx.health = { state: 'ok', lastContactMs: Date.now() };

  ctx.received = [];
  const recorder: HandoffTarget = { name: 'recorder', deliver: (r) => void ctx.received.push(r), stats: () => ({}) };
  ctx.handoff = new Handoff([{ target: recorder, outcomes: ['linked', 'not_linked', 'refused', 'degraded'] }]);
  ctx.lookup = touchLookup({ cache: ctx.cache, secret: () => SECRET, health: () => ctx.health, handoff: ctx.handoff, context: { serviceId: 'points', edgeId: 'pts-counter-1' } });
  ctx.manager = new ReaderManager({ log: silentReaderLog, readerFilter: (n) => n === READER });
  ctx.pipeline = new TouchPipeline(ctx.manager, { log: silentReaderLog, readIdentity: readPinTouchIdentity });
  const anchors = [new X509Certificate(ctx.ca.certDer)];
  ctx.flow = new PinTouchFlow({ lookup: ctx.lookup, cards: ctx.manager, pause: ctx.pipeline, anchors: () => anchors, timeoutMs: 60_000 });
  ctx.kiosk = new KioskServer({ language: 'ja', resultMs: 60_000, pinTouch: { pin: (p) => ctx.flow.pin(p), cancel: () => ctx.flow.cancel() } });
  ctx.handoff.add(ctx.kiosk);
  ctx.views = [];
  ctx.verdicts = [];
  ctx.flow.on((v) => {
    ctx.views.push(v);
    ctx.kiosk.showPinTouch(v);
  });
  ctx.flow.onVerdict((v) => ctx.verdicts.push(v));
  ctx.desk = new TouchDesk({ source: ctx.pipeline, lookup: ctx.lookup, pinTouch: { required: () => true, begin: (r, i) => ctx.flow.begin(r, i) } });
  ctx.slot = new VpcdSlot({ slot: 0, log: () => {} });
  await ctx.handoff.start();

  const added = new Promise<void>((r) => ctx.manager.on('reader-added', (e) => e.reader === READER && r()));
  ctx.desk.start();
  ctx.pipeline.start();
  ctx.manager.start();
  await added;
  if (ctx.manager.isCardPresent(READER)) throw new Error(`${READER} already holds a card`);

  ctx.browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  ctx.page = await ctx.browser.newPage();
  ctx.page.setDefaultTimeout(15_000);
  await ctx.page.goto(ctx.kiosk.url);
  await ctx.page.waitForSelector('main[data-outcome="idle"]');
});

test.after(async (ctx) => {
  await ctx.browser?.close();
  await ctx.slot?.remove().catch(() => {});
  await ctx.flow?.stop();
  ctx.desk?.stop();
  await ctx.pipeline?.stop();
  await ctx.manager?.stop();
  await ctx.handoff?.stop();
});

/** Takes the card away and waits until the reader layer has seen it go. */
async function takeAway(ctx: Ctx): Promise<void> {
  if (!ctx.manager.isCardPresent(READER)) return void (await ctx.slot.remove());
  await removeCard(ctx.manager, ctx.slot, READER);
}

/** Puts a card on the reader; resolves when the flow shows the PIN pad or the touch was handed over. */
async function put(ctx: Ctx, card: CardFile | VirtualCard): Promise<'pin' | TouchResult> {
  const before = ctx.received.length;
  await ctx.slot.insert(card instanceof VirtualCard ? card : new VirtualCard(card));
  await until(() => ctx.flow.view().step === 'pin' || ctx.received.length > before, { what: 'the PIN pad or a hand-off', intervalMs: 5 });
  return ctx.received.length > before ? ctx.received[before] : 'pin';
}

/** Enters a PIN through the flow's own action (what the page posts) and waits for the next hand-off. */
async function enter(ctx: Ctx, pin: string): Promise<TouchResult> {
  const before = ctx.received.length;
  assert.ok(ctx.flow.pin(pin).ok);
  await until(() => ctx.received.length > before, { what: 'the verdict', intervalMs: 5 });
  return ctx.received[before];
}

const text = (ctx: Ctx, id: string) => ctx.page.locator(`#${id}`).textContent();
async function typeOnPad(ctx: Ctx, pin: string): Promise<void> {
  for (const d of pin) await ctx.page.click(`[data-digit="${d}"]`);
}

test('the holder types the PIN on the kiosk pad; the card signs, the edge verifies offline and hands the service ID over', async (ctx) => {
  const before = ctx.received.length;
  assert.is(await put(ctx, ctx.cards.alice), 'pin');
  await ctx.page.waitForSelector('#pinpad:not([hidden])');
  assert.is(await text(ctx, 'title'), MESSAGES.ja.pin_title);
  assert.is(await text(ctx, 'sub'), MESSAGES.ja.pin_sub);
  assert.is(ctx.received.length, before, 'nothing is handed over before the PIN');
  await typeOnPad(ctx, '1234');
  await ctx.page.waitForSelector('main[data-outcome="linked"]');
  assert.is(await text(ctx, 'value'), 'PT-0001');
  const r = ctx.received[before];
  assert.equal([r.outcome, r.serviceUserId], ['linked', 'PT-0001']);
  assert.not.ok((await ctx.page.content()).includes('1234'), 'the PIN is nowhere on the page');
  const v = ctx.verdicts.at(-1)!;
  assert.is(v.outcome, 'linked');
  assert.ok(v.ms > 0 && v.ms < 5000, `verdict in ${v.ms} ms`);
  await takeAway(ctx);
});

test('a wrong PIN on the pad shows the tries left, and the right one then passes', async (ctx) => {
  const failures = ctx.flow.stats().pinFailures;
  await ctx.page.click('[data-set-lang="en"]');
  assert.is(await put(ctx, ctx.cards.alice), 'pin');
  await ctx.page.waitForSelector('#pinpad:not([hidden])');
  await typeOnPad(ctx, '9999');
  await until(
    () => {
      const v = ctx.flow.view();
      return v.step === 'pin' && v.retry === 'pin_wrong';
    },
    { what: 'the wrong PIN', intervalMs: 5 },
  );
  const wrong = ctx.flow.view();
  assert.equal(wrong, { step: 'pin', retry: 'pin_wrong', triesLeft: 2 });
  await ctx.page.waitForFunction(
    (s) => (globalThis as unknown as { document: { getElementById(i: string): { textContent: string | null } | null } }).document.getElementById('sub')?.textContent === s,
    MESSAGES.en.pin_wrong.replace('{n}', '2'),
  );
  assert.is(ctx.flow.stats().pinFailures, failures + 1);
  const before = ctx.received.length;
  await typeOnPad(ctx, '1234');
  await ctx.page.waitForSelector('main[data-outcome="linked"]');
  assert.is(ctx.received[before].serviceUserId, 'PT-0001');
  await ctx.page.click('[data-set-lang="ja"]');
  await takeAway(ctx);
});

test('a card carrying a copied MyKey ID with its own certificate is refused before any PIN (pin_touch_cert_unbound)', async (ctx) => {
  const views = ctx.views.length;
  const r = await put(ctx, ctx.cards.mallory);
  assert.ok(r !== 'pin');
  assert.equal([r.outcome, r.reason, r.serviceUserId], ['refused', 'pin_touch_cert_unbound', undefined]);
  assert.not.ok(
    ctx.views.slice(views).some((v) => v.step === 'pin'),
    'no PIN asked',
  );
  await takeAway(ctx);
});

test("a card whose key is not its certificate's is refused after the PIN (pin_touch_signature_invalid)", async (ctx) => {
  assert.is(await put(ctx, ctx.cards.otherKey), 'pin');
  const r = await enter(ctx, '1234');
  assert.equal([r.outcome, r.reason, r.serviceUserId], ['refused', 'pin_touch_signature_invalid', undefined]);
  await takeAway(ctx);
});

test("a certificate made up with the holder's issuer and serial and another key is refused: no JPKI anchor issued it (pin_touch_cert_untrusted)", async (ctx) => {
  const r = await put(ctx, ctx.cards.forged);
  assert.ok(r !== 'pin');
  assert.equal([r.outcome, r.reason], ['refused', 'pin_touch_cert_untrusted']);
  await takeAway(ctx);
});

test('a card that replays its signature of an earlier challenge is refused (pin_touch_replayed)', async (ctx) => {
  const card = new ReplayCard(ctx.cards.alice);
  assert.is(await put(ctx, card), 'pin');
  assert.is((await enter(ctx, '1234')).outcome, 'linked');
  assert.ok(card.recorded, 'the first signature was recorded');
  await takeAway(ctx);
  assert.is(await put(ctx, card), 'pin');
  const r = await enter(ctx, '1234');
  assert.equal([r.outcome, r.reason], ['refused', 'pin_touch_replayed']);
  await takeAway(ctx);
});

test('a blocked PIN is refused at the touch without a try, and the page says where to unblock it (pin_blocked)', async (ctx) => {
  const r = await put(ctx, ctx.cards.blocked);
  assert.ok(r !== 'pin');
  assert.equal([r.outcome, r.reason], ['refused', 'pin_blocked']);
  await ctx.page.waitForSelector('main[data-outcome="refused"]');
  assert.is(await text(ctx, 'sub'), MESSAGES.ja.refused_pin_blocked);
  await takeAway(ctx);
});

test('three wrong PINs block it on the card: the third is refused as blocked, with tries shown before', async (ctx) => {
  assert.is(await put(ctx, ctx.cards.alice), 'pin');
  const tries: (number | undefined)[] = [];
  for (let i = 0; i < 2; i++) {
    const n = ctx.views.length;
    assert.ok(ctx.flow.pin('0000').ok);
    await until(() => ctx.views.slice(n).some((v) => v.step === 'pin' && v.retry === 'pin_wrong'), { what: 'a wrong PIN', intervalMs: 5 });
    const v = ctx.flow.view();
    tries.push(v.step === 'pin' ? v.triesLeft : undefined);
  }
  assert.equal(tries, [2, 1]);
  const r = await enter(ctx, '0000');
  assert.equal([r.outcome, r.reason], ['refused', 'pin_blocked']);
  await takeAway(ctx);
});

test('the card taken away while the PIN pad waits ends the touch (card_removed)', async (ctx) => {
  assert.is(await put(ctx, ctx.cards.alice), 'pin');
  const before = ctx.received.length;
  await takeAway(ctx);
  await until(() => ctx.received.length > before, { what: 'the refusal', intervalMs: 5 });
  assert.equal([ctx.received[before].outcome, ctx.received[before].reason], ['refused', 'card_removed']);
  assert.is(ctx.flow.view().step, 'off');
});

test('a suspension applied while the PIN pad waits applies: the verified touch hands nothing over', async (ctx) => {
  assert.is(await put(ctx, ctx.cards.bob), 'pin');
  const applied = ctx.cache.apply({ seq: 11, kind: 'suspend', at: new Date().toISOString(), remove: [certKey(ctx.cards.bob)] });
  assert.is(applied.purged, 1);
  const r = await enter(ctx, '1234');
  assert.equal([r.outcome, r.serviceUserId], ['not_linked', undefined]);
  await takeAway(ctx);
});

test.run();
