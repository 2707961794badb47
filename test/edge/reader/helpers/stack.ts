// The real stack for the reader layer's serial tests: pcscd + vpcd slot 0 + VirtualCard, watched by
// a ReaderManager and a TouchPipeline, with every APDU recorded by the reader layer's trace hook.
import { toHex } from '../../../../edge/reader/apdu.ts';
import { silentReaderLog } from '../../../../edge/reader/log.ts';
import { ReaderManager, type ReaderEvents } from '../../../../edge/reader/reader-manager.ts';
import { TouchPipeline, type TouchEvents } from '../../../../edge/reader/touch.ts';
import { VirtualCard } from '../../../../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../../../../provisioning/virtual-card/vpcd-slot.ts';
import { vpcdReaderName } from '../../../helpers/pcsc.ts';

export const SLOT = 0 as const;
export const READER = vpcdReaderName(SLOT);

/** Resolves with the first event of `name` passing `pred`, or rejects after `ms`. Subscribe before acting. */
export function nextEvent<M, K extends keyof M>(on: (k: K, l: (p: M[K]) => unknown) => () => void, name: K, pred: (p: M[K]) => boolean = () => true, ms = 5000): Promise<M[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${String(name)} within ${ms} ms`));
    }, ms);
    const off = on(name, (p) => {
      if (!pred(p)) return;
      clearTimeout(timer);
      off();
      resolve(p);
    });
  });
}

export type TouchOutcome = { ok: true; event: TouchEvents['identity'] } | { ok: false; event: TouchEvents['touch-failed'] };

export class Stack {
  /** Every APDU the reader layer exchanged, as `APDU -> RESPONSE` hex. */
  readonly trace: string[] = [];
  /** Every VirtualCard used, for their own traces. */
  readonly cards: VirtualCard[] = [];
  readonly manager = new ReaderManager({
    log: silentReaderLog,
    readerFilter: (n) => n === READER,
    onApdu: (a, r) => this.trace.push(`${toHex(a)} -> ${toHex(r)}`),
  });
  readonly pipeline = new TouchPipeline(this.manager, { log: silentReaderLog });
  readonly slot = new VpcdSlot({ slot: SLOT, log: () => {} });

  async start(): Promise<void> {
    const added = nextEvent<ReaderEvents, 'reader-added'>(
      (k, l) => this.manager.on(k, l),
      'reader-added',
      (e) => e.reader === READER,
    );
    this.manager.start();
    this.pipeline.start();
    await added;
    // A card left in the slot by an earlier run would make the first touch ambiguous.
    if (this.manager.isCardPresent(READER)) throw new Error(`${READER} already has a card in it`);
  }

  async stop(): Promise<void> {
    await this.slot.remove().catch(() => {});
    await this.pipeline.stop();
    await this.manager.stop();
  }

  card(file: ConstructorParameters<typeof VirtualCard>[0], opts?: ConstructorParameters<typeof VirtualCard>[1]): VirtualCard {
    const c = new VirtualCard(file, opts);
    this.cards.push(c);
    return c;
  }

  /** Inserts the card and waits until the reader reports it. */
  async insert(card: VirtualCard): Promise<void> {
    const present = this.#next('card-present');
    await this.slot.insert(card);
    await present;
  }

  /** Takes the card away and waits until the reader reports it gone (unless it already left). */
  async remove(): Promise<void> {
    if (!this.manager.isCardPresent(READER)) {
      await this.slot.remove();
      return;
    }
    const gone = this.#next('card-removed');
    await this.slot.remove();
    await gone;
  }

  /** One touch through the pipeline: insert, wait for the identity (or the failure), take the card away. */
  async touch(card: VirtualCard): Promise<TouchOutcome> {
    const on = <K extends keyof TouchEvents>(k: K, l: (p: TouchEvents[K]) => unknown) => this.pipeline.on(k, l);
    const result = Promise.race([
      nextEvent<TouchEvents, 'identity'>(on, 'identity', (e) => e.reader === READER, 8000).then((event) => ({ ok: true, event }) as const),
      nextEvent<TouchEvents, 'touch-failed'>(on, 'touch-failed', (e) => e.reader === READER, 8000).then((event) => ({ ok: false, event }) as const),
    ]);
    await this.slot.insert(card);
    try {
      return await result;
    } finally {
      await this.remove();
    }
  }

  #next(name: 'card-present' | 'card-removed') {
    return nextEvent<ReaderEvents, typeof name>(
      (k, l) => this.manager.on(k, l),
      name,
      (e) => e.reader === READER,
      5000,
    );
  }
}
