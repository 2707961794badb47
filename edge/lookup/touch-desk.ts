// Where a touch goes: to the counter registration while it waits for a card, otherwise to the
// touch-and-go lookup and the hand-off. A card found "not linked" is offered to registration for a
// few seconds (the page's "register" button), and forgotten at the next touch.
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import type { TouchIdentity } from './decide.ts';
import type { TouchLookup } from './touch-lookup.ts';

/** The touch events as the reader layer's TouchPipeline emits them. */
export interface TouchSource {
  on(event: 'identity', listener: (e: { reader: string; identity: TouchIdentity }) => unknown): () => void;
  on(event: 'touch-failed', listener: (e: { reader: string; code: string }) => unknown): () => void;
}

/** The registration flow as the desk needs it. */
export interface RegistrationSink {
  readonly active: boolean;
  readonly wantsCard: boolean;
  cardTouched(reader: string, identity: TouchIdentity): void;
  cardFailed(): void;
  offer(reader: string, identity: TouchIdentity): void;
  forgetOffer(): void;
}

/**
 * The PIN-checked touch (edge/pintouch, #14) as the desk needs it: whether the service wants the PIN
 * now, and the flow that takes such a touch instead of the plain lookup.
 */
export interface PinTouchSink {
  required(): boolean;
  begin(reader: string, identity: TouchIdentity): Promise<{ outcome: string } | undefined>;
}

export class TouchDesk {
  readonly #source: TouchSource;
  readonly #lookup: TouchLookup;
  readonly #registration: RegistrationSink | undefined;
  readonly #pin: PinTouchSink | undefined;
  readonly #log: Logger;
  readonly #offs: (() => void)[] = [];
  #ignored = 0;

  constructor(opts: { source: TouchSource; lookup: TouchLookup; registration?: RegistrationSink; pinTouch?: PinTouchSink; log?: Logger }) {
    this.#source = opts.source;
    this.#lookup = opts.lookup;
    this.#registration = opts.registration;
    this.#pin = opts.pinTouch;
    this.#log = opts.log ?? silentLogger;
  }

  start(): void {
    if (this.#offs.length) return;
    this.#offs.push(
      this.#source.on('identity', (e) => this.#identity(e.reader, e.identity)),
      this.#source.on('touch-failed', (e) => this.#failed(e.reader, e.code)),
    );
  }

  stop(): void {
    for (const off of this.#offs.splice(0)) off();
  }

  /** Touches that came while a registration was past its card step (aggregate). */
  get ignored(): number {
    return this.#ignored;
  }

  #identity(reader: string, identity: TouchIdentity): void {
    const reg = this.#registration;
    if (reg?.active) {
      if (reg.wantsCard) reg.cardTouched(reader, identity);
      else this.#ignored++;
      return;
    }
    reg?.forgetOffer();
    if (this.#pin?.required()) {
      this.#pin.begin(reader, identity).then(
        (decision) => {
          if (decision?.outcome === 'not_linked' && !reg?.active) reg?.offer(reader, identity);
          this.#log.debug('PIN-checked touch', { outcome: decision?.outcome ?? 'pin' });
        },
        (err) => this.#log.error('PIN-checked touch failed', { error: err }),
      );
      return;
    }
    this.#lookup.touch(reader, identity).then(
      ({ decision }) => {
        if (decision.outcome === 'not_linked' && !reg?.active) reg?.offer(reader, identity);
        this.#log.debug('touch', { outcome: decision.outcome });
      },
      (err) => this.#log.error('touch lookup failed', { error: err }),
    );
  }

  #failed(reader: string, code: string): void {
    const reg = this.#registration;
    if (reg?.active) {
      if (reg.wantsCard) reg.cardFailed();
      return;
    }
    reg?.forgetOffer();
    this.#lookup.touchFailed(reader, code);
  }
}
