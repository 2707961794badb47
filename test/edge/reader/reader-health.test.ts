// The reader that heals itself, with the real ReaderManager and TouchPipeline over a PC/SC stand-in
// and a temp directory as sysfs and /dev/bus/usb: a reader on the bus but missing from PC/SC is reset
// and comes back; one that stops answering is reset after repeated failures; resets back off and stop
// at the limit, then the shop is asked to replug, then to call the technician; a kernel NFC driver
// holding the reader is named instead of reset.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MyKeyError } from '../../../shared/errors.ts';
import { ReaderHealth } from '../../../shared/sync.ts';
import { Value } from '@sinclair/typebox/value';
import { silentReaderLog } from '../../../edge/reader/log.ts';
import { SCARD_STATE as S } from '../../../edge/reader/pcsc-state.ts';
import { ReaderHealer, isReaderTrouble, type ReaderAdvice, type ReaderHealerOptions } from '../../../edge/reader/reader-health.ts';
import { ReaderManager } from '../../../edge/reader/reader-manager.ts';
import { swError } from '../../../edge/reader/status-words.ts';
import { TouchPipeline } from '../../../edge/reader/touch.ts';
import { sysfsResetter, USBDEVFS_RESET, type UsbResetter } from '../../../edge/reader/usb-reset.ts';
import type { CardIdentity } from '../../../edge/reader/identity.ts';
import { fakePcsc, type FakeContext, type FakeReader } from './helpers/fake-pcsc.ts';
import { FakeUsb } from './helpers/fake-usb.ts';
import { until } from '../../helpers/polling.ts';

const ACR1252 = { sysName: '1-1.3', vendorId: '072f', productId: '223b', product: 'ACR1252 Dual Reader', devnum: 7 };
const ACR122 = { sysName: '1-1.2', vendorId: '072f', productId: '2200', product: 'ACR122U PICC Interface', devnum: 4 };
const NAME = 'ACS ACR1252 Dual Reader [ACR1252 Dual Reader PICC] 00 00';
const ATR = Buffer.from('3b888001000005e0b381a1007f', 'hex');

interface Rig {
  usb: FakeUsb;
  ctx: FakeContext;
  manager: ReaderManager;
  pipeline: TouchPipeline;
  healer: ReaderHealer;
  states: Array<{ state: string; advice: ReaderAdvice | undefined; resets: number }>;
  /** What the next touch does. */
  read: { fail?: MyKeyError };
  stop(): Promise<void>;
}

const FAST: ReaderHealerOptions = { pollMs: 10, missingMs: 30, failuresBeforeReset: 2, backoffMs: 40, maxResets: 3, technicianAfter: 6, log: silentReaderLog };

async function rig(opts: ReaderHealerOptions & { reset?: UsbResetter } = {}, setup: (usb: FakeUsb) => void = () => {}): Promise<Rig> {
  const usb = new FakeUsb();
  setup(usb);
  const pcsc = fakePcsc();
  const manager = new ReaderManager({ pcsc, log: silentReaderLog, removalGraceMs: 1 });
  const read: Rig['read'] = {};
  const pipeline = new TouchPipeline(manager, {
    log: silentReaderLog,
    readIdentity: async (): Promise<CardIdentity> => {
      if (read.fail) throw read.fail;
      return { mykeyId: 'X', source: 'mykey-app' } as unknown as CardIdentity;
    },
  });
  manager.start();
  pipeline.start();
  const healer = new ReaderHealer({ manager, touches: pipeline }, { roots: usb.roots, ...FAST, ...opts });
  const states: Rig['states'] = [];
  healer.on('state', ({ report, advice }) => {
    assert.ok(Value.Check(ReaderHealth, report), JSON.stringify(report)); // every report fits the status schema
    states.push({ state: report.state, advice, resets: report.resets });
  });
  return {
    usb,
    ctx: pcsc.contexts[0],
    manager,
    pipeline,
    healer,
    states,
    read,
    async stop() {
      await healer.stop();
      await pipeline.stop();
      await manager.stop();
      usb.close();
    },
  };
}

/** One touch on a fake reader: the card comes and goes. */
async function touch(r: FakeReader, rg: Rig): Promise<void> {
  const done = new Promise<void>((res) => {
    const offs: Array<() => void> = [];
    const done = () => {
      for (const o of offs) o();
      res();
    };
    offs.push(rg.pipeline.on('identity', done), rg.pipeline.on('touch-failed', done));
  });
  r.status({ state: S.CHANGED | S.PRESENT, atr: ATR });
  await done;
  r.status({ state: S.CHANGED | S.EMPTY });
}

test("which failures are the reader's: timeouts, a card that stopped answering, SCARD_W_UNRESPONSIVE_CARD; not a card taken away", () => {
  const table: Array<[{ code: string; pcsc?: number }, boolean]> = [
    [{ code: 'timeout' }, true],
    [{ code: 'card_error' }, true],
    [{ code: 'reader_unavailable' }, true],
    [{ code: 'card_removed', pcsc: 0x80100066 }, true],
    [{ code: 'card_removed', pcsc: 0x8010002e }, true],
    [{ code: 'card_removed', pcsc: 0x80100069 }, false],
    [{ code: 'card_removed' }, false],
    [{ code: 'apdu_refused' }, false],
    [{ code: 'card_response_malformed' }, false],
  ];
  for (const [e, want] of table) assert.is(isReaderTrouble(e), want, JSON.stringify(e));
});

test('a reader on the USB bus but missing from PC/SC is reset through USBDEVFS_RESET and is ok once PC/SC has it again', async () => {
  let ctx: FakeContext | undefined;
  let realReset: UsbResetter | undefined;
  const rg = await rig(
    {
      reset: async (r, m) => {
        await realReset!(r, m);
        setTimeout(() => ctx!.addReader(NAME), 5); // the reader re-enumerates and pcscd takes it
      },
    },
    (usb) => usb.plug(ACR1252),
  );
  ctx = rg.ctx;
  realReset = sysfsResetter({ roots: rg.usb.roots, ioctl: rg.usb.ioctl, offMs: 1 });
  try {
    rg.healer.start();
    await until(() => rg.states.some((s) => s.state === 'ok' && s.resets === 1), { what: 'ok again', intervalMs: 5 });
    assert.equal(rg.usb.ioctls, [{ path: rg.usb.path('dev/bus/usb/001/007'), request: USBDEVFS_RESET }]);
    assert.equal(
      rg.states.map((s) => `${s.state}/${s.advice ?? '-'}/${s.resets}`),
      ['missing/wait/0', 'resetting/wait/1', 'ok/-/1'],
    );
    const report = rg.healer.report();
    assert.equal([report.model, report.usbId], ['ACS ACR1252U', '072f:223b']);
  } finally {
    await rg.stop();
  }
});

test('a reader that keeps failing is reset after failuresBeforeReset failures and is ok after a card reads', async () => {
  const resets: string[] = [];
  const rg = await rig({ reset: async (r, m) => void resets.push(`${r.sysName} ${m}`) }, (usb) => usb.plug(ACR1252));
  try {
    const r = rg.ctx.addReader(NAME);
    r.status({ state: S.CHANGED | S.EMPTY });
    rg.healer.start();
    await until(() => rg.healer.report().state === 'ok', { what: 'ok', intervalMs: 5 });
    rg.read.fail = new MyKeyError('timeout', 'no answer from the card within 5000 ms');
    await touch(r, rg);
    assert.is(rg.healer.report().state, 'ok', "one failure is the card's business");
    await touch(r, rg);
    await until(() => resets.length === 1, { what: 'a reset', intervalMs: 5 });
    assert.equal(resets, ['1-1.3 usb-reset']);
    assert.ok(rg.states.some((s) => s.state === 'resetting'));
    rg.read.fail = undefined;
    await touch(r, rg);
    await until(() => rg.healer.report().state === 'ok', { what: 'ok', intervalMs: 5 });
    assert.is(rg.healer.report().failedResets, undefined, 'a card read: the reset worked');
    assert.is(rg.healer.report().resets, 1);
  } finally {
    await rg.stop();
  }
});

test('foreign cards that answer with a status word (a transit card, say) never get the reader reset', async () => {
  const resets: string[] = [];
  const rg = await rig({ reset: async (r) => void resets.push(r.sysName) }, (usb) => usb.plug(ACR1252));
  try {
    const r = rg.ctx.addReader(NAME);
    r.status({ state: S.CHANGED | S.EMPTY });
    rg.healer.start();
    await until(() => rg.healer.report().state === 'ok', { what: 'ok', intervalMs: 5 });
    rg.read.fail = new MyKeyError('card_response_malformed', 'not a My Number Card', { cause: swError(0x6a82, 'SELECT JPKI') });
    for (let i = 0; i < 4; i++) await touch(r, rg);
    rg.read.fail = swError(0x6a82, 'SELECT JPKI'); // card_error, but the card answered
    for (let i = 0; i < 4; i++) await touch(r, rg);
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(resets, []);
    assert.is(rg.healer.report().state, 'ok');
  } finally {
    await rg.stop();
  }
});

test('resets that do not help back off, stop at maxResets (replug), then after technicianAfter ask for the technician; a replug gives new resets', async () => {
  const at: number[] = [];
  const rg = await rig({ maxResets: 2, technicianAfter: 3, reset: async () => void at.push(Date.now()) }, (usb) => usb.plug(ACR1252));
  try {
    rg.healer.start();
    await until(() => rg.healer.report().state === 'needs_replug', { what: 'needs_replug', intervalMs: 5 });
    assert.is(at.length, 2);
    assert.ok(at[1] - at[0] >= 40, `back-off between resets (${at[1] - at[0]} ms)`);
    assert.is(rg.healer.advice(), 'replug');
    await new Promise((r) => setTimeout(r, 200));
    assert.is(at.length, 2, 'no more resets at the limit');

    rg.usb.unplug(ACR1252.sysName); // the shop unplugs it...
    await until(() => rg.healer.advice() === 'connect', { what: 'missing, not on the bus', intervalMs: 5 });
    rg.usb.plug(ACR1252); // ...and plugs it back in; it still does not come up in PC/SC
    await until(() => rg.healer.advice() === 'technician', { what: 'the technician', intervalMs: 5 });
    assert.is(at.length, 3);
    assert.is(rg.healer.report().failedResets, 3);
    assert.is(rg.healer.report().state, 'needs_replug');
  } finally {
    await rg.stop();
  }
});

test('an ACR122U held by the kernel pn533_usb driver is not reset: the report names the driver and the page asks for the technician', async () => {
  const resets: string[] = [];
  const rg = await rig({ reset: async (r) => void resets.push(r.sysName) }, (usb) => usb.plug({ ...ACR122, driver: 'pn533_usb' }));
  try {
    rg.healer.start();
    await until(() => rg.healer.report().state === 'needs_replug', { what: 'needs_replug', intervalMs: 5 });
    assert.is(rg.healer.report().kernelDriver, 'pn533_usb');
    assert.is(rg.healer.advice(), 'technician');
    assert.equal(resets, []);
  } finally {
    await rg.stop();
  }
});

test('an ACR122U (a USB reset does not revive it) gets a port power cycle where the port has a switch, else a replug at once', async () => {
  const methods: string[] = [];
  const rg = await rig({ reset: async (_r, m) => void methods.push(m) }, (usb) => usb.plug({ ...ACR122, portSwitch: true }));
  try {
    rg.healer.start();
    await until(() => methods.length > 0, { what: 'a reset', intervalMs: 5 });
    assert.is(methods[0], 'port-power');
  } finally {
    await rg.stop();
  }
  const rg2 = await rig({ reset: async (_r, m) => void methods.push(m) }, (usb) => usb.plug(ACR122));
  try {
    methods.length = 0;
    rg2.healer.start();
    await until(() => rg2.healer.report().state === 'needs_replug', { what: 'needs_replug', intervalMs: 5 });
    assert.equal(methods, []);
    assert.is(rg2.healer.advice(), 'replug');
  } finally {
    await rg2.stop();
  }
});

test('no known reader on the bus and none in PC/SC: missing, and the page asks to connect one', async () => {
  const rg = await rig();
  try {
    rg.healer.start();
    await until(() => rg.healer.report().state === 'missing', { what: 'missing', intervalMs: 5 });
    assert.is(rg.healer.advice(), 'connect');
    rg.ctx.addReader('Some Other Reader 00 00');
    await until(() => rg.healer.report().state === 'ok', { what: 'ok', intervalMs: 5 });
  } finally {
    await rg.stop();
  }
});

test.run();
