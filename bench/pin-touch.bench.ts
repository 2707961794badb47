// PIN-checked touch (#14) through the real stack (VirtualCard -> vpcd -> pcscd -> pcsclite -> the
// reader layer and its guard -> edge/pintouch): the time from the PIN entered (the flow's pin()) to
// the verdict handed over: a new exclusive session, SELECT + VERIFY + SELECT EF + SIGN on the card,
// the signature checked against the certificate's key, the binding checked again in the cache, the
// hand-over. The keyed identities (scrypt) are derived at the touch, while the holder types, so they
// are not in this figure. Target: touch_pin_verify_ms <= 50 ms. A real card adds its own RSA signing
// time (hundreds of ms on a contactless My Number Card); the virtual card signs in about 1-2 ms.
//
//   npm run bench -- pin-touch          (PIN_TOUCH_BENCH_TOUCHES, default 40)
import { X509Certificate } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { benchMain, percentile, progress, round, type Metrics } from './lib.ts';
import { createTestCa } from '../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../provisioning/virtual-card/vpcd-slot.ts';
import { CURRENT_KEY_SCHEME, keyedIdentitySync } from '../shared/sync.ts';
import { EdgeCache, KeyIndex } from '../edge/cache/index.ts';
import { Handoff, type HandoffTarget, type TouchResult } from '../edge/handoff/index.ts';
import { certIdentityOf, TouchDesk, TouchLookup } from '../edge/lookup/index.ts';
import { PinTouchFlow, readPinTouchIdentity, type PinVerdict } from '../edge/pintouch/index.ts';
import { ReaderManager, TouchPipeline, silentReaderLog } from '../edge/reader/index.ts';
import { requirePcscd, vpcdReaderName } from '../test/helpers/pcsc.ts';

const TOUCHES = Math.max(1, Number(process.env.PIN_TOUCH_BENCH_TOUCHES ?? 40));
const SLOT = 1 as const;
const READER = vpcdReaderName(SLOT);
const SECRET = new Uint8Array(32).fill(9);
const MYKEY_ID = 'B7NQ4KXW';

function waitUntil(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const end = Date.now() + ms;
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() > end) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 1);
    };
    tick();
  });
}

benchMain(async () => {
  await requirePcscd();
  const ca = await createTestCa({ label: 'pin-touch-bench' });
  const file = await makeCardFile({ ca, mykeyId: MYKEY_ID });
  const certDer = new Uint8Array(Buffer.from(file.jpki.authCert, 'base64'));
  const certId = certIdentityOf(certDer, CURRENT_KEY_SCHEME);
  if (!certId.ok) throw new Error(certId.message);
  // The cache as the hub leaves it under the current derivation: the MyKey ID and its certificate.
  const index = new KeyIndex();
  index.set(keyedIdentitySync(SECRET, 'mykey', MYKEY_ID), 'PT-0001');
  index.set(keyedIdentitySync(SECRET, 'cert', certId.value), 'PT-0001');
  const cache = new EdgeCache({ secret: SECRET });
  cache.replace(index, 1, CURRENT_KEY_SCHEME);

  const received: TouchResult[] = [];
  const recorder: HandoffTarget = { name: 'recorder', deliver: (r) => void received.push(r), stats: () => ({}) };
  const handoff = new Handoff([{ target: recorder, outcomes: ['linked', 'not_linked', 'refused', 'degraded'] }]);
  const lookup = new TouchLookup({
    cache,
    secret: () => SECRET,
    health: () => ({ state: 'ok', lastContactMs: Date.now() }),
    policy: { maxStalenessMs: 3_600_000, whenStale: 'refuse' },
    handoff,
    context: { serviceId: 'points', edgeId: 'bench' },
  });
  const manager = new ReaderManager({ log: silentReaderLog, readerFilter: (n) => n === READER });
  const pipeline = new TouchPipeline(manager, { log: silentReaderLog, readIdentity: readPinTouchIdentity });
  const anchors = [new X509Certificate(ca.certDer)];
  const flow = new PinTouchFlow({ lookup, cards: manager, pause: pipeline, anchors: () => anchors });
  const verdicts: PinVerdict[] = [];
  flow.onVerdict((v) => verdicts.push(v));
  const desk = new TouchDesk({ source: pipeline, lookup, pinTouch: { required: () => true, begin: (r, i) => flow.begin(r, i) } });
  const slot = new VpcdSlot({ slot: SLOT, log: () => {} });
  const added = new Promise<void>((r) => manager.on('reader-added', (e) => e.reader === READER && r()));
  desk.start();
  pipeline.start();
  manager.start();
  await added;

  const takeAway = async () => {
    if (!manager.isCardPresent(READER)) return void (await slot.remove());
    const gone = new Promise<void>((r) => {
      const off: () => void = manager.on('card-removed', (e) => {
        if (e.reader !== READER) return;
        off();
        r();
      });
    });
    await slot.remove();
    await gone;
  };

  const verify: number[] = [];
  const outside: number[] = [];
  const metrics: Metrics = {};
  try {
    for (let i = 0; i < TOUCHES + 2; i++) {
      await slot.insert(new VirtualCard(file));
      await waitUntil(() => flow.view().step === 'pin', 'the PIN pad');
      const before = received.length;
      const n = verdicts.length;
      const t0 = performance.now();
      if (!flow.pin('1234').ok) throw new Error('the flow did not take the PIN');
      await waitUntil(() => verdicts.length > n && received.length > before, 'the verdict');
      const wall = performance.now() - t0;
      const r = received[before];
      if (r.outcome !== 'linked' || r.serviceUserId !== 'PT-0001') throw new Error(`unexpected verdict ${JSON.stringify(r)}`);
      // The first two warm the path (JIT, the pcsclite handle, the key objects).
      if (i >= 2) {
        verify.push(verdicts[n].ms);
        outside.push(wall);
      }
      await takeAway();
      if ((i + 1) % 10 === 0) progress(`${i + 1}/${TOUCHES + 2} PIN-checked touches`);
    }
    metrics.touch_pin_verify_ms = { value: round(percentile(verify, 50), 2), unit: 'ms' };
    metrics.touch_pin_verify_p99_ms = { value: round(percentile(verify, 99), 2), unit: 'ms' };
    progress(`PIN entered -> verdict: p50 ${metrics.touch_pin_verify_ms.value} ms, p99 ${metrics.touch_pin_verify_p99_ms.value} ms (polled from outside: p50 ${round(percentile(outside, 50), 2)} ms)`);
  } finally {
    await slot.remove().catch(() => {});
    await flow.stop();
    desk.stop();
    await pipeline.stop();
    await manager.stop();
  }
  return metrics;
});
