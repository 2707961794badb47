// Touch to identity through the real stack (VirtualCard -> vpcd -> pcscd -> pcsclite): the time from
// putting the card into the vpcd slot until the edge's reader layer has the identity, p50 and p99 over
// TOUCHES touches, for a card with the MyKey application (MyKey ID) and one without (certificate mode).
//
// The floor, measured in the same run and interleaved touch by touch: a bare pcsclite loop that
// connects on card-present and sends the very same APDU sequence (recorded from the reader layer),
// without guard, parsing or checks. Target: the reader layer adds at most 10% over the floor.
//
// Each touch is inserted right after the previous removal was seen, which locks the insert to pcscd's
// presence polling, so the figures do not scatter over the poll interval. Extra figures `touch_read_*`
// time only card-present -> identity, where the reader layer's own work is a larger share.
import pcsclite from 'pcsclite';
import { performance } from 'node:perf_hooks';
import { benchMain, percentile, progress, round, type Metrics } from './lib.ts';
import { createTestCa } from '../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../provisioning/virtual-card/vpcd-slot.ts';
import { ReaderManager, TouchPipeline, silentReaderLog, type CardIdentity } from '../edge/reader/index.ts';
import { requirePcscd, vpcdReaderName } from '../test/helpers/pcsc.ts';

const TOUCHES = Math.max(1, Number(process.env.TOUCH_BENCH_TOUCHES ?? 200));
// TOUCH_BENCH_KINDS=cert (or mykey) measures one card kind only, e.g. to compare two builds quickly.
const KINDS = (['mykey', 'cert'] as const).filter((k) => (process.env.TOUCH_BENCH_KINDS ?? 'mykey,cert').split(',').includes(k));
const SLOT = 1 as const;
const READER = vpcdReaderName(SLOT);
const PRESENT = 0x20;
const EMPTY = 0x10;

type PcscReader = Parameters<Parameters<ReturnType<typeof pcsclite>['on']>[1]>[0];
interface Sample {
  total: number;
  read: number;
}

function timeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: nothing within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

/** The floor: bare pcsclite, connect on card-present, send the APDUs, nothing else. */
class Floor {
  private readonly ctx = pcsclite();
  private reader: PcscReader | undefined;
  private state = 0;
  private job: { apdus: Buffer[]; done: (t: { tPresent: number; at: number }) => void; fail: (e: unknown) => void } | undefined;
  private removalWaiters: (() => void)[] = [];
  readonly ready: Promise<void>;

  constructor() {
    this.ctx.on('error', () => {});
    this.ready = new Promise((resolve) => {
      this.ctx.on('reader', (r) => {
        r.on('error', () => {});
        if (r.name !== READER) return void setImmediate(() => r.close());
        this.reader = r;
        r.on('status', (s) => this.status(s.state));
        resolve();
      });
    });
  }

  get cardPresent(): boolean {
    return (this.state & PRESENT) !== 0;
  }

  private status(next: number): void {
    const changes = this.state ^ next;
    this.state = next;
    if (changes & EMPTY && next & EMPTY) for (const w of this.removalWaiters.splice(0)) w();
    if (changes & PRESENT && next & PRESENT && this.job) {
      const job = this.job;
      this.job = undefined;
      this.run(job);
    }
  }

  private run(job: NonNullable<Floor['job']>): void {
    const tPresent = performance.now();
    const r = this.reader!;
    r.connect({ share_mode: r.SCARD_SHARE_EXCLUSIVE, protocol: r.SCARD_PROTOCOL_T0 | r.SCARD_PROTOCOL_T1 }, (err, protocol) => {
      if (err) return job.fail(err);
      let i = 0;
      const next = (): void => {
        if (i === job.apdus.length) {
          // The identity moment is now; the touch ends once the card is let go, as the reader
          // layer's does (its session closes before the next touch): a card still held here made
          // the next touch of the layer fail with reader_busy now and then.
          const at = performance.now();
          r.disconnect(r.SCARD_LEAVE_CARD, () => job.done({ tPresent, at }));
          return;
        }
        r.transmit(job.apdus[i++], 258, protocol, (e) => (e ? job.fail(e) : next()));
      };
      next();
    });
  }

  /** Arms the loop for the next card-present; resolves with that moment and the one the last answer came. */
  arm(apdus: Buffer[]): Promise<{ tPresent: number; at: number }> {
    return new Promise((done, fail) => (this.job = { apdus, done, fail }));
  }

  removed(): Promise<void> {
    return this.cardPresent ? new Promise((r) => this.removalWaiters.push(r)) : Promise.resolve();
  }

  close(): void {
    try {
      this.reader?.close();
    } catch {
      /* closed */
    }
    this.ctx.close();
  }
}

benchMain(async () => {
  await requirePcscd();
  const ca = await createTestCa({ label: 'touch-bench' });
  const files = {
    mykey: await makeCardFile({ ca, mykeyId: 'B7NQ4KXW' }),
    cert: await makeCardFile({ ca, withMyKeyApp: false }),
  };

  let recording: Buffer[] | undefined;
  const manager = new ReaderManager({
    log: silentReaderLog,
    readerFilter: (n) => n === READER,
    onApdu: (apdu) => recording?.push(Buffer.from(apdu)),
  });
  const pipeline = new TouchPipeline(manager, { log: silentReaderLog });
  const floor = new Floor();
  const slot = new VpcdSlot({ slot: SLOT, log: () => {} });
  const managerReady = new Promise<void>((r) => manager.on('reader-added', (e) => e.reader === READER && r()));
  manager.start();
  await timeout(Promise.all([managerReady, floor.ready]), 5000, `reader ${READER}`);
  if (manager.isCardPresent(READER)) throw new Error(`${READER} already holds a card`);

  const managerRemoved = () =>
    manager.isCardPresent(READER)
      ? new Promise<void>((r) => {
          const off = manager.on('card-removed', (e) => {
            if (e.reader === READER) {
              off();
              r();
            }
          });
        })
      : Promise.resolve();

  /** Takes the card away and waits until both PC/SC contexts have seen it go. */
  async function takeAway(): Promise<void> {
    const seen = Promise.all([managerRemoved(), floor.removed()]);
    await slot.remove();
    await timeout(seen, 5000, 'card removal');
  }

  /** One touch through the reader layer. */
  async function layerTouch(kind: 'mykey' | 'cert'): Promise<Sample & { identity: CardIdentity }> {
    pipeline.start();
    let tPresent = 0;
    const offPresent = manager.on('card-present', () => (tPresent = performance.now()));
    const got = new Promise<{ identity: CardIdentity; at: number }>((resolve, reject) => {
      const offs = [
        pipeline.on('identity', (e) => {
          for (const o of offs) o();
          resolve({ identity: e.identity, at: performance.now() });
        }),
        pipeline.on('touch-failed', (e) => {
          for (const o of offs) o();
          reject(new Error(`touch failed: ${e.code} ${e.message}`));
        }),
      ];
    });
    const t0 = performance.now();
    await slot.insert(new VirtualCard(files[kind]));
    const { identity, at } = await timeout(got, 5000, 'identity');
    offPresent();
    await pipeline.stop();
    await takeAway();
    return { total: at - t0, read: at - tPresent, identity };
  }

  /** One touch through the bare floor loop. */
  async function floorTouch(kind: 'mykey' | 'cert', apdus: Buffer[]): Promise<Sample> {
    const done = floor.arm(apdus);
    const t0 = performance.now();
    await slot.insert(new VirtualCard(files[kind]));
    const { tPresent, at } = await timeout(done, 5000, 'floor APDUs');
    await takeAway();
    return { total: at - t0, read: at - tPresent };
  }

  const metrics: Metrics = {};
  try {
    // Record the reader layer's APDU sequence for each card: the floor replays exactly these.
    const sequences = {} as Record<'mykey' | 'cert', Buffer[]>;
    for (const kind of KINDS) {
      recording = [];
      const first = await layerTouch(kind);
      sequences[kind] = recording;
      recording = undefined;
      if (first.identity.kind !== kind) throw new Error(`expected a ${kind} identity, got ${first.identity.kind}`);
      progress(`${kind}: ${sequences[kind].length} APDUs per touch`);
      await floorTouch(kind, sequences[kind]); // warm the floor path too
    }

    for (const kind of KINDS) {
      const layer: Sample[] = [];
      const bare: Sample[] = [];
      for (let i = 0; i < TOUCHES; i++) {
        // Interleaved, alternating which goes first, so drift in pcscd or the machine hits both alike.
        if (i % 2 === 0) {
          layer.push(await layerTouch(kind));
          bare.push(await floorTouch(kind, sequences[kind]));
        } else {
          bare.push(await floorTouch(kind, sequences[kind]));
          layer.push(await layerTouch(kind));
        }
        if ((i + 1) % 50 === 0) progress(`${kind}: ${i + 1}/${TOUCHES} touches`);
      }
      const p = (xs: Sample[], f: 'total' | 'read', q: number) =>
        round(
          percentile(
            xs.map((x) => x[f]),
            q,
          ),
          2,
        );
      metrics[`touch_identity_${kind}_p50_ms`] = { value: p(layer, 'total', 50), unit: 'ms' };
      metrics[`touch_identity_${kind}_p99_ms`] = { value: p(layer, 'total', 99), unit: 'ms' };
      metrics[`touch_floor_${kind}_p50_ms`] = { value: p(bare, 'total', 50), unit: 'ms' };
      metrics[`touch_floor_${kind}_p99_ms`] = { value: p(bare, 'total', 99), unit: 'ms' };
      metrics[`touch_read_${kind}_p50_ms`] = { value: p(layer, 'read', 50), unit: 'ms' };
      metrics[`touch_read_${kind}_p99_ms`] = { value: p(layer, 'read', 99), unit: 'ms' };
      metrics[`touch_read_floor_${kind}_p50_ms`] = { value: p(bare, 'read', 50), unit: 'ms' };
      metrics[`touch_read_floor_${kind}_p99_ms`] = { value: p(bare, 'read', 99), unit: 'ms' };
      const over = round(
        (100 *
          (percentile(
            layer.map((x) => x.total),
            50,
          ) -
            percentile(
              bare.map((x) => x.total),
              50,
            ))) /
          percentile(
            bare.map((x) => x.total),
            50,
          ),
        1,
      );
      metrics[`touch_overhead_${kind}_p50_pct`] = { value: over, unit: '%' };
      progress(`${kind}: layer p50 ${metrics[`touch_identity_${kind}_p50_ms`].value} ms, floor p50 ${metrics[`touch_floor_${kind}_p50_ms`].value} ms (${over}%)`);
      // Printed only: the read's extra time touch by touch (each layer touch against the floor touch
      // next to it), steadier than the difference of two p50s on a loaded machine.
      const paired = layer.map((x, j) => x.read - bare[j].read);
      progress(
        `${kind}: read p50 ${metrics[`touch_read_${kind}_p50_ms`].value} ms, floor ${metrics[`touch_read_floor_${kind}_p50_ms`].value} ms; paired extra p50 ${round(percentile(paired, 50), 3)} ms`,
      );
    }
  } finally {
    await slot.remove().catch(() => {});
    await pipeline.stop();
    await manager.stop();
    floor.close();
  }
  return metrics;
});
