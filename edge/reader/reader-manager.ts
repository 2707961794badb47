// The ReaderManager: the only part of the edge that talks to PC/SC. It watches readers come and go
// (hot-plug), turns PC/SC state bits into typed card events, hands out guarded card sessions, and
// reopens the PC/SC context forever when pcscd goes away. The constructor only assigns; start() and
// stop() act; stop() releases every native handle so a process can exit.
import { MyKeyError } from '../../shared/errors.ts';
import { consoleReaderLog, type ReaderLog } from './log.ts';
import { cardTransitions, SCARD_STATE } from './pcsc-state.ts';
import { nativePcsc, type PcscContext, type PcscFactory, type PcscReader } from './pcsc-port.ts';
import { TypedEvents } from '../../shared/typed-events.ts';
import { PcscConnection } from './pcsc-connection.ts';
import { CardSession, DEFAULT_APDU_TIMEOUT_MS, DEFAULT_REMOVAL_GRACE_MS, mapPcscError, type ApduTraceHook } from './transport.ts';

/** Events of the ReaderManager. */
export interface ReaderEvents {
  'reader-added': { reader: string };
  'reader-removed': { reader: string };
  'card-present': { reader: string; atr: Uint8Array };
  'card-removed': { reader: string };
  error: { error: Error; reader?: string };
}

/** Options of the ReaderManager; every field has a default. */
export interface ReaderManagerOptions {
  /** PC/SC context factory (the real pcsclite by default; a test double in unit tests). */
  pcsc?: PcscFactory;
  log?: ReaderLog;
  /** First delay before reopening PC/SC after a failure, ms; doubles up to maxReconnectDelayMs. */
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  /** Time limit of one APDU exchange and of connect/disconnect, ms. */
  apduTimeoutMs?: number;
  /** Trace hook given to every session (tests). */
  onApdu?: ApduTraceHook;
  /** How long a failed exchange waits for the reader to report the card gone, ms (default 1000). */
  removalGraceMs?: number;
  /** Only readers whose name passes are used (all by default). */
  readerFilter?: (name: string) => boolean;
}

/** Options of one card connection. */
export interface ConnectOptions {
  /** The municipal writer role (GET CHALLENGE, EXTERNAL AUTHENTICATE, CREATE FILE, UPDATE BINARY). */
  writer?: boolean;
  onApdu?: ApduTraceHook;
  timeoutMs?: number;
  /** How long a failed exchange waits for the reader to report the card gone, ms. */
  removalGraceMs?: number;
}

interface ReaderEntry {
  readonly name: string;
  readonly handle: PcscReader;
  state: number;
  atr: Uint8Array | undefined;
  /** Increments on each card-present, so a connect can tell the card it started with has left. */
  touch: number;
  session: CardSession | undefined;
  /** True once the handle reported a status: its native status thread is in its loop (closeReaderHandle). */
  watching: boolean;
}

const noop = () => {};

function deferClose(close: () => void): void {
  setImmediate(() => {
    try {
      close();
    } catch {
      // already closed
    }
  });
}

/**
 * Closes a pcsclite reader handle so that nothing of it outlives the close. pcsclite's CardReader
 * runs a status thread that first opens its own PC/SC context and then loops in SCardGetStatusChange;
 * close() sets a stop flag and cancels that call. A thread that has not reached its loop yet sees the
 * flag and ends without waking the event loop, so the handle's uv_async is never closed and the
 * process never exits (the lingering handle after a stop right after a start, or of a reader the
 * filter skips). The first status report proves the thread is in its loop; only then is it closed.
 * Never from inside a 'status' or 'end' listener: pcsclite calls them holding the reader's mutex, and
 * close() takes it.
 */
function closeReaderHandle(handle: PcscReader, watching: boolean): Promise<void> {
  // pcsclite's own '_end' listener stays: it keeps the context's list of readers right.
  for (const e of ['status', 'end', 'error']) handle.removeAllListeners(e);
  handle.on('error', noop); // pcsclite emits late errors; an EventEmitter without a listener would throw
  return new Promise((resolve) => {
    const close = () => {
      clearTimeout(giveUp);
      try {
        handle.close();
      } catch {
        // already closed
      }
      resolve();
    };
    // A thread that never reports (it cannot reach pcscd) is closed anyway after a while.
    const giveUp = setTimeout(close, watching ? 0 : 2000);
    if (watching) return;
    let once = false;
    const later = () => {
      if (once) return;
      once = true;
      clearTimeout(giveUp);
      // A little later still: the thread goes from its report back into SCardGetStatusChange.
      setTimeout(close, 20);
    };
    handle.on('status', later);
    handle.on('end', later);
    handle.on('error', later);
  });
}

/** Watches PC/SC readers and cards; the edge's one door to pcsclite. */
export class ReaderManager {
  readonly events: TypedEvents<ReaderEvents>;
  readonly #factory: PcscFactory;
  readonly #log: ReaderLog;
  readonly #firstDelay: number;
  readonly #maxDelay: number;
  readonly #timeoutMs: number;
  readonly #onApdu?: ApduTraceHook;
  readonly #filter: (name: string) => boolean;
  readonly #graceMs: number;
  #ctx: PcscContext | undefined;
  #generation = 0;
  #running = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #delay: number;
  readonly #readers = new Map<string, ReaderEntry>();
  /** Native closes not done yet; stop() waits for them. */
  readonly #pendingCloses = new Set<Promise<void>>();

  constructor(options: ReaderManagerOptions = {}) {
    this.#factory = options.pcsc ?? nativePcsc;
    this.#log = options.log ?? consoleReaderLog;
    this.#firstDelay = options.reconnectDelayMs ?? 500;
    this.#maxDelay = options.maxReconnectDelayMs ?? 10_000;
    this.#delay = this.#firstDelay;
    this.#timeoutMs = options.apduTimeoutMs ?? DEFAULT_APDU_TIMEOUT_MS;
    this.#onApdu = options.onApdu;
    this.#filter = options.readerFilter ?? (() => true);
    this.#graceMs = options.removalGraceMs ?? DEFAULT_REMOVAL_GRACE_MS;
    this.events = new TypedEvents<ReaderEvents>(this.#log, 'reader manager');
  }

  /** Shorthand for events.on. */
  on<K extends keyof ReaderEvents>(event: K, listener: (payload: ReaderEvents[K]) => unknown): () => void {
    return this.events.on(event, listener);
  }

  /** Opens PC/SC and starts watching. Idempotent. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#open();
  }

  /** Closes every session and native handle. Listeners stay registered (their owners remove them). */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    await Promise.all([...this.#readers.values()].map((e) => e.session?.close()));
    this.#teardown(false);
    await new Promise((resolve) => setImmediate(resolve)); // the deferred native closes have run
    await Promise.all([...this.#pendingCloses]);
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.#running;
  }

  /** Names of the readers now attached. */
  readers(): string[] {
    return [...this.#readers.keys()];
  }

  /** True when a card is on `reader`. */
  isCardPresent(reader: string): boolean {
    const e = this.#readers.get(reader);
    return !!e && (e.state & SCARD_STATE.PRESENT) !== 0;
  }

  /**
   * Connects to the card on `reader` and returns a guarded session. One session per reader: a session
   * still open there is closed first. Close the session when done.
   */
  async connect(reader: string, options: ConnectOptions = {}): Promise<CardSession> {
    const { session, connection } = this.#openSession(reader, options);
    try {
      await connection.opened();
    } catch (err) {
      await session.close();
      throw err;
    }
    return session;
  }

  /**
   * The session of connect() at once, while the connection is made behind it: commands sent meanwhile
   * pass the guard now and reach the card as soon as it is connected, or fail with the reason it could
   * not be (reader_busy, card_removed, timeout). A touch's own work then overlaps pcscd's connect.
   */
  open(reader: string, options: ConnectOptions = {}): CardSession {
    return this.#openSession(reader, options).session;
  }

  #openSession(reader: string, options: ConnectOptions): { session: CardSession; connection: PcscConnection } {
    const entry = this.#readers.get(reader);
    if (!entry) throw new MyKeyError('reader_unavailable', `no reader named ${JSON.stringify(reader)}`);
    if (!(entry.state & SCARD_STATE.PRESENT)) throw new MyKeyError('card_removed', `${reader}: no card on the reader`);
    const touch = entry.touch;
    const previous = entry.session && !entry.session.closed ? entry.session : undefined;
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const connection = new PcscConnection(entry.handle, reader, timeoutMs);
    const session = new CardSession(connection, {
      guard: { writer: options.writer },
      timeoutMs,
      onApdu: options.onApdu ?? this.#onApdu,
      reader,
      probeRemoval: (withinMs) => this.#cardLeft(entry, touch, withinMs),
      removalGraceMs: options.removalGraceMs ?? this.#graceMs,
    });
    // The session is the reader's from now: a removal report while connecting fails it with card_removed.
    entry.session = session;
    connection.start(previous?.close(), () => entry.touch === touch && (entry.state & SCARD_STATE.PRESENT) !== 0 && this.#readers.get(reader) === entry);
    return { session, connection };
  }

  /** Resolves true once the card of touch `touch` has left `entry` (now, or within `withinMs`). */
  #cardLeft(entry: ReaderEntry, touch: number, withinMs: number): Promise<boolean> {
    const left = () => this.#readers.get(entry.name) !== entry || entry.touch !== touch || !(entry.state & SCARD_STATE.PRESENT);
    if (left()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (v: boolean) => {
        clearTimeout(timer);
        offCard();
        offReader();
        resolve(v);
      };
      const timer = setTimeout(() => done(left()), withinMs);
      const offCard = this.events.on('card-removed', (e) => e.reader === entry.name && done(true));
      const offReader = this.events.on('reader-removed', (e) => e.reader === entry.name && done(true));
    });
  }

  #open(): void {
    if (!this.#running) return;
    const gen = ++this.#generation;
    let ctx: PcscContext;
    try {
      ctx = this.#factory();
    } catch (err) {
      this.#failed(new MyKeyError('reader_unavailable', 'PC/SC is not available (is pcscd running?)', { cause: err }));
      this.#scheduleReopen();
      return;
    }
    this.#ctx = ctx;
    ctx.on('error', (err: Error) => {
      if (gen !== this.#generation) return; // our own close, or an old context
      this.#failed(mapPcscError(err, 'PC/SC'));
      this.#teardown(true);
      this.#scheduleReopen();
    });
    ctx.on('reader', (handle: PcscReader) => {
      if (gen !== this.#generation || !this.#filter(handle.name)) {
        this.#closing(closeReaderHandle(handle, false)); // an unclosed reader keeps a native thread and the event loop alive
        return;
      }
      this.#addReader(handle, gen);
    });
  }

  #addReader(handle: PcscReader, gen: number): void {
    const name = handle.name;
    const old = this.#readers.get(name);
    if (old) this.#dropReader(old, true);
    const entry: ReaderEntry = { name, handle, state: SCARD_STATE.UNAWARE, atr: undefined, touch: 0, session: undefined, watching: false };
    this.#readers.set(name, entry);
    this.#delay = this.#firstDelay; // PC/SC answers again
    handle.on('error', (err: Error) => {
      if (gen !== this.#generation) return;
      this.#failed(mapPcscError(err, name), name);
    });
    handle.on('status', (s) => {
      entry.watching = true;
      if (gen !== this.#generation || this.#readers.get(name) !== entry) return;
      this.#onStatus(entry, s.state, s.atr);
    });
    handle.on('end', () => {
      if (gen !== this.#generation || this.#readers.get(name) !== entry) return;
      this.#dropReader(entry, true);
    });
    this.#log.debug('reader added', { reader: name });
    this.events.emit('reader-added', { reader: name });
  }

  #onStatus(entry: ReaderEntry, state: number, atr: Uint8Array | undefined): void {
    const prev = entry.state;
    entry.state = state;
    for (const t of cardTransitions(prev, state)) {
      if (t === 'removed') {
        entry.atr = undefined;
        entry.session?.markRemoved();
        this.events.emit('card-removed', { reader: entry.name });
      } else if (t === 'present') {
        entry.touch++;
        entry.atr = atr ? Uint8Array.from(atr) : new Uint8Array(0);
        this.events.emit('card-present', { reader: entry.name, atr: entry.atr });
      } else {
        this.#failed(new MyKeyError('card_error', `${entry.name}: a card is on the reader but does not answer (mute)`), entry.name);
      }
    }
  }

  #dropReader(entry: ReaderEntry, announce: boolean): void {
    this.#readers.delete(entry.name);
    const hadCard = (entry.state & SCARD_STATE.PRESENT) !== 0;
    entry.session?.markRemoved();
    entry.session?.close().catch(noop);
    this.#closing(closeReaderHandle(entry.handle, entry.watching));
    if (announce) {
      if (hadCard) this.events.emit('card-removed', { reader: entry.name });
      this.events.emit('reader-removed', { reader: entry.name });
    }
  }

  #teardown(announce: boolean): void {
    this.#generation++; // every listener of the old context is now stale
    for (const entry of [...this.#readers.values()]) this.#dropReader(entry, announce);
    const ctx = this.#ctx;
    this.#ctx = undefined;
    if (ctx) {
      ctx.removeAllListeners();
      ctx.on('error', noop);
      deferClose(() => ctx.close());
    }
  }

  #closing(p: Promise<void>): void {
    this.#pendingCloses.add(p);
    void p.then(() => this.#pendingCloses.delete(p));
  }

  #scheduleReopen(): void {
    if (!this.#running || this.#retryTimer) return;
    const delay = this.#delay;
    this.#delay = Math.min(this.#maxDelay, this.#delay * 2);
    this.#log.debug('reopening PC/SC', { delayMs: delay });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#open();
    }, delay);
  }

  #failed(error: Error, reader?: string): void {
    if (this.events.listenerCount('error') === 0) this.#log.warn(error.message, reader ? { reader } : undefined);
    this.events.emit('error', reader ? { error, reader } : { error });
  }
}
