// The touch pipeline: on every card-present, connect, read the identity, hand it on, disconnect.
// It emits `identity` {reader, identity, ms} or `touch-failed` {reader, code, message, ms}; ms runs
// from the card-present event to the identity being ready. Nothing here records who touched when.
import { MyKeyError, type ErrorCode } from '../../shared/errors.ts';
import { readIdentity as defaultReadIdentity, readIdentityNow, type CardIdentity } from './identity.ts';
import { consoleReaderLog, type ReaderLog } from './log.ts';
import type { ReaderManager } from './reader-manager.ts';
import { pcscCode, type CardSession } from './transport.ts';
import { TypedEvents } from '../../shared/typed-events.ts';

/** Events of the touch pipeline. */
export interface TouchEvents {
  identity: { reader: string; identity: CardIdentity; ms: number };
  /**
   * `pcsc`: the PC/SC return code under the failure, when there is one; `answered`: the card answered
   * with a status word (a foreign card, a refusal), so the reader itself works. Reader health reads both.
   */
  'touch-failed': { reader: string; code: ErrorCode; message: string; ms: number; pcsc?: number; answered?: true };
}

/** Options of the touch pipeline. */
export interface TouchPipelineOptions {
  /** What a touch reads (readIdentity by default). */
  readIdentity?: (session: CardSession) => Promise<CardIdentity>;
  /**
   * The same in callback form (readIdentityNow by default, when readIdentity is not given): `done` may
   * be called inside PC/SC's callback of the card's last answer, so the identity goes out without a
   * promise turn. Taken before readIdentity when both are given.
   */
  readIdentityNow?: ReadNow;
  log?: ReaderLog;
  /** Clock in ms (performance.now by default). */
  now?: () => number;
}

type ReadNow = (session: CardSession, done: (err: unknown, identity?: CardIdentity) => void) => void;

/** Turns card-present events of a ReaderManager into identity events. */
export class TouchPipeline {
  readonly events: TypedEvents<TouchEvents>;
  readonly #manager: ReaderManager;
  readonly #read: (session: CardSession) => Promise<CardIdentity>;
  /** The read in its callback form (the identity may come out in PC/SC's callback of the last answer). */
  readonly #readNow: ReadNow | undefined;
  readonly #log: ReaderLog;
  readonly #now: () => number;
  #off: (() => void) | undefined;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(manager: ReaderManager, options: TouchPipelineOptions = {}) {
    this.#manager = manager;
    this.#read = options.readIdentity ?? defaultReadIdentity;
    this.#readNow = options.readIdentityNow ?? (options.readIdentity ? undefined : readIdentityNow);
    this.#log = options.log ?? consoleReaderLog;
    this.#now = options.now ?? (() => performance.now());
    this.events = new TypedEvents<TouchEvents>(this.#log, 'touch pipeline');
  }

  /** Shorthand for events.on. */
  on<K extends keyof TouchEvents>(event: K, listener: (payload: TouchEvents[K]) => unknown): () => void {
    return this.events.on(event, listener);
  }

  /** Starts listening for touches (the manager is started by its owner). */
  start(): void {
    if (this.#off) return;
    this.#off = this.#manager.on('card-present', ({ reader }) => {
      const p = this.#touch(reader);
      this.#inFlight.add(p);
      p.finally(() => this.#inFlight.delete(p));
    });
  }

  /** Stops listening and waits for touches in progress to finish. */
  async stop(): Promise<void> {
    this.#off?.();
    this.#off = undefined;
    await Promise.allSettled([...this.#inFlight]);
  }

  /** One touch; settles once its session is closed. */
  #touch(reader: string): Promise<void> {
    const t0 = this.#now();
    return new Promise<void>((settled) => {
      let session: CardSession | undefined;
      let finished = false;
      // Runs once, maybe inside PC/SC's callback of the card's last answer: the identity goes out
      // there, without a promise turn between the card and the listeners (issue #11).
      const done = (err: unknown, identity?: CardIdentity): void => {
        if (finished) return;
        finished = true;
        try {
          if (identity) this.events.emit('identity', { reader, identity, ms: this.#now() - t0 });
          else this.#failed(reader, err, t0);
        } finally {
          if (session) session.close().then(settled, settled);
          else settled();
        }
      };
      try {
        // open, not connect: the read's first command passes the guard while pcscd connects, and goes
        // to the card the moment the connection stands (a failed connect fails the read with its reason).
        session = this.#manager.open(reader);
        if (this.#readNow) this.#readNow(session, done);
        else
          this.#read(session).then(
            (identity) => done(undefined, identity),
            (err: unknown) => done(err),
          );
      } catch (err) {
        done(err);
      }
    });
  }

  #failed(reader: string, err: unknown, t0: number): void {
    const e = err instanceof MyKeyError ? err : new MyKeyError('internal', 'the touch failed unexpectedly', { cause: err });
    if (!(err instanceof MyKeyError)) this.#log.error('touch failed unexpectedly', { reader, error: String(err) });
    else this.#log.debug('touch failed', { reader, code: e.code });
    const pcsc = pcscCodeIn(e);
    const answered = inChain(e, (x) => ((x as MyKeyError).details?.sw !== undefined ? true : undefined)) ?? false;
    this.events.emit('touch-failed', { reader, code: e.code, message: e.message, ms: this.#now() - t0, ...(pcsc !== undefined ? { pcsc } : {}), ...(answered ? { answered: true as const } : {}) });
  }
}

/** The first answer of `pick` along an error's cause chain. */
function inChain<T>(err: unknown, pick: (e: unknown) => T | undefined): T | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const v = pick(e);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** The first PC/SC return code in an error's cause chain. */
function pcscCodeIn(err: unknown): number | undefined {
  return inChain(err, pcscCode);
}
