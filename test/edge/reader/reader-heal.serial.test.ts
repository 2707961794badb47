// The whole edge agent with a reader that stops answering mid-session: pcscd + vpcd with the virtual
// card made to hold back its answers, a temp directory standing in for sysfs and /dev/bus/usb (an
// ACR1252U on the bus) with the USB reset recorded, a real hub with its MQTT broker over TLS, and the
// real kiosk page. The edge sees the reader stall, resets it on the stand-in, reports the state to the
// hub's broker (which validates and accepts the status carrying it), shows the shop what to do on the
// kiosk page, and is ok again once the vpcd card answers.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, generateRsaKeyPair, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile, type CardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard, type CardFaults } from '../../../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../../../provisioning/virtual-card/vpcd-slot.ts';
import { silentLogger } from '../../../shared/log.ts';
import type { EdgeStatus } from '../../../shared/sync.ts';
import { loadEdgeConfig } from '../../../edge/config.ts';
import { createEdgeAgent, type EdgeAgent } from '../../../edge/main.ts';
import type { KioskView } from '../../../edge/kiosk/index.ts';
import { sysfsResetter, USBDEVFS_RESET, type ResetMethod } from '../../../edge/reader/usb-reset.ts';
import { isReaderTrouble } from '../../../edge/reader/reader-health.ts';
import { requirePcscd, vpcdReaderName } from '../../helpers/pcsc.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';
import { FakeUsb } from './helpers/fake-usb.ts';
import { until } from '../../helpers/polling.ts';
import { enrollEdge } from '../../helpers/enrolled-edge.ts';

const READER = vpcdReaderName(0);
const EDGE = 'lib-counter-9';

interface Ctx {
  ca: TestCa;
  h: TestHub;
  dir: string;
  usb: FakeUsb;
  slot: VpcdSlot;
  agent: EdgeAgent;
  file: CardFile;
  resets: ResetMethod[];
  /** When the hub recorded a status of the edge (ms), in order. */
  recorded: number[];
}
const test = suite<Ctx>('reader self-healing end to end', {} as Ctx);

async function view(ctx: Ctx): Promise<KioskView> {
  return (await (await fetch(`${ctx.agent.kiosk!.url}/api/view`)).json()) as KioskView;
}

/** The failures of the touches so far: codes for the assertion messages, and whether each was the reader's trouble. */
const failures: string[] = [];
const failureEvents: Array<{ code: string; pcsc?: number }> = [];
/** Touch failures the healer counts against the reader (isReaderTrouble), so far. */
const counted = () => failureEvents.filter((e) => isReaderTrouble(e)).length;

/** Puts a card on the reader until the agent's touch pipeline is done with it, then takes it away. */
async function touch(ctx: Ctx, faults: CardFaults): Promise<'identity' | 'failed'> {
  const done = new Promise<'identity' | 'failed'>((resolve) => {
    const offs: Array<() => void> = [];
    const end = (outcome: 'identity' | 'failed') => {
      for (const o of offs) o();
      resolve(outcome);
    };
    offs.push(
      ctx.agent.pipeline.on('identity', (e) => e.reader === READER && end('identity')),
      ctx.agent.pipeline.on('touch-failed', (e) => {
        if (e.reader !== READER) return;
        failures.push(`${e.code}: ${e.message}`);
        failureEvents.push({ code: e.code, ...(e.pcsc !== undefined ? { pcsc: e.pcsc } : {}) });
        end('failed');
      }),
    );
  });
  // A fresh slot per touch: a slot answers in order, so one still holding back a stalled answer would
  // hold back the next card's first messages too.
  ctx.slot = new VpcdSlot({ slot: 0, log: () => {} });
  await ctx.slot.insert(new VirtualCard(ctx.file, { faults }));
  const outcome = await done;
  const gone = new Promise<void>((r) => {
    if (!ctx.agent.manager.isCardPresent(READER)) return r();
    const off: () => void = ctx.agent.manager.on('card-removed', (e) => {
      if (e.reader !== READER) return;
      off();
      r();
    });
  });
  await ctx.slot.remove();
  await gone;
  return outcome;
}

test.before(async (ctx) => {
  await requirePcscd();
  ctx.ca = await createTestCa({ label: 'reader-heal' });
  ctx.h = await startTestHub({ ca: ctx.ca });
  await ctx.h.hub.start();
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library' });
  const enrolled = await enrollEdge(ctx.h.hub, EDGE);
  ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-reader-heal-'));
  writeFileSync(join(ctx.dir, 'device.pem'), enrolled.certPem);
  writeFileSync(join(ctx.dir, 'device.key'), enrolled.keyPem, { mode: 0o600 });
  writeFileSync(join(ctx.dir, 'hub-ca.pem'), enrolled.caPem);
  ctx.file = await makeCardFile({ ca: ctx.ca, keyPair: await generateRsaKeyPair(), withMyKeyApp: false });

  // The hub's record of each accepted status (the broker validated it against EdgeStatus first).
  ctx.recorded = [];
  const devices = ctx.h.hub.devices as unknown as { recordStatus: (id: string, s: unknown, sample: boolean) => unknown };
  const record = devices.recordStatus.bind(devices);
  devices.recordStatus = (id, s, sample) => {
    if (id === EDGE) ctx.recorded.push(Date.now());
    return record(id, s, sample);
  };

  ctx.usb = new FakeUsb();
  ctx.usb.plug({ sysName: '1-1.3', vendorId: '072f', productId: '223b', product: 'ACR1252 Dual Reader', devnum: 7 });
  ctx.resets = [];
  const reset = sysfsResetter({ roots: ctx.usb.roots, ioctl: ctx.usb.ioctl, offMs: 1 });
  const config = loadEdgeConfig({
    env: {},
    overrides: {
      edgeId: EDGE,
      serviceId: 'library',
      hub: { url: ctx.h.hub.addresses.deviceApi },
      broker: { url: ctx.h.hub.addresses.mqtts },
      tls: { cert: join(ctx.dir, 'device.pem'), key: join(ctx.dir, 'device.key'), ca: join(ctx.dir, 'hub-ca.pem') },
      stateDir: join(ctx.dir, 'state'),
      readers: {
        include: [READER],
        heal: { pollSeconds: 1, missingSeconds: 1, failuresBeforeReset: 2, maxResets: 3, backoffSeconds: 60, sysRoot: ctx.usb.roots.sys, devRoot: ctx.usb.roots.dev },
      },
      kiosk: { port: 0 },
      logLevel: 'warn',
    },
  });
  ctx.agent = createEdgeAgent(config, {
    log: silentLogger,
    usbReset: async (r, m) => {
      ctx.resets.push(m);
      await reset(r, m);
    },
  });
  ctx.slot = new VpcdSlot({ slot: 0, log: () => {} });
});

test.after(async (ctx) => {
  await ctx.slot?.remove().catch(() => {});
  await ctx.agent?.stop();
  await ctx.h?.close();
  ctx.usb?.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

test('a reader that stops answering is reset on the USB bus, reported to the hub, shown on the kiosk page, and is ok once the card answers', async (ctx) => {
  await ctx.agent.start();
  await until(() => ctx.agent.sync.connected && ctx.agent.cache.synced, { what: 'connected to the hub' });
  await until(() => ctx.agent.manager.readers().includes(READER), { what: 'the reader' });
  await until(() => ctx.agent.healer!.report().state === 'ok', { what: 'the reader is ok' });
  // A working card reads. (The vpcd slot a previous test used may still be released by pcscd a moment
  // after the agent starts: a first connection refused as busy is retried, as a holder would touch again;
  // a read that works clears any count towards a reset.)
  let first: 'identity' | 'failed' = 'failed';
  for (let i = 0; i < 3 && first !== 'identity'; i++) {
    if (i) await new Promise((r) => setTimeout(r, 1000));
    first = await touch(ctx, {});
  }
  assert.is(first, 'identity', `a working card reads (failures: ${failures.join('; ')})`);

  // The card stops answering mid-session: every response is held back beyond the 5 s APDU time limit.
  // A stalled touch fails on the APDU time limit, the reader's trouble. vpcd may instead report the card
  // gone (pcscd's presence poll waits behind the held-back answer on the slot's one socket), which is not
  // the reader's trouble and not counted: such a touch is made again, as the shop would.
  const stalled: CardFaults = { delayMs: 8000 };
  const base = counted();
  for (let i = 0; i < 6 && counted() - base < 1; i++) assert.is(await touch(ctx, stalled), 'failed');
  assert.is(counted() - base, 1, `a failure counted against the reader (failures: ${failures.join('; ')})`);
  assert.is(ctx.agent.healer!.report().state, 'ok', 'one failure is not yet the reader');
  assert.equal(ctx.resets, []);
  for (let i = 0; i < 6 && counted() - base < 2; i++) assert.is(await touch(ctx, stalled), 'failed');
  await until(() => ctx.resets.length === 1, { what: 'the reset', detail: () => `failures: ${failures.join('; ')}; healer: ${JSON.stringify(ctx.agent.healer!.report())}` });
  assert.equal(ctx.resets, ['usb-reset']);
  assert.equal(ctx.usb.ioctls, [{ path: ctx.usb.path('dev/bus/usb/001/007'), request: USBDEVFS_RESET }]);

  // The status the edge publishes carries the reader's state, and the hub's broker accepts it.
  const st = ctx.agent.sync.status() as EdgeStatus;
  assert.equal([st.reader?.state, st.reader?.resets, st.reader?.model, st.reader?.usbId], ['resetting', 1, 'ACS ACR1252U', '072f:223b']);
  const seen = ctx.recorded.length;
  await until(() => ctx.recorded.length > seen, { what: 'the hub records a status after the reset' });
  assert.equal(ctx.h.hub.broker!.refusals(), {}, 'the broker refused nothing');
  assert.ok(ctx.h.hub.broker!.connectedEdges().includes(EDGE), 'and kept the edge connected');

  // The kiosk page tells the shop to wait while the reader restarts.
  const v = await view(ctx);
  assert.equal(v.reader, { state: 'resetting', advice: 'wait' });

  let okAt = 0;
  ctx.agent.healer!.on('state', ({ report }) => {
    if (report.state === 'ok') okAt = Date.now();
  });
  // The vpcd reader comes back: a card answers again. (vpcd is not re-enumerated by a reset as a USB
  // reader is, so the stalled connection's own disconnect reaches pcscd a moment later: until then a
  // new connection may get reader_busy, which is not counted as the reader's trouble.)
  let back: 'identity' | 'failed' = 'failed';
  for (let i = 0; i < 5 && back !== 'identity'; i++) {
    if (i) await new Promise((r) => setTimeout(r, 1000));
    back = await touch(ctx, {});
  }
  assert.is(back, 'identity', `the card reads again (failures: ${failures.join('; ')})`);
  await until(() => okAt > 0, { what: 'ok again' });
  assert.is(ctx.agent.sync.status().reader?.state, 'ok');
  assert.is(ctx.agent.sync.status().reader?.resets, 1);
  await until(async () => (await view(ctx)).reader === undefined, { what: 'the page drops the reader message' });
  // The state change is published at once (not at the next periodic status): the hub records a status
  // sent after the edge turned ok.
  await until(() => ctx.recorded.some((t) => t >= okAt), { what: 'the hub records the recovery' });
  assert.equal(ctx.h.hub.broker!.refusals(), {});
});

test.run();
