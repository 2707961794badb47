// APDU transport over one card connection: every command passes the guard, 61xx is resolved with GET
// RESPONSE, 6Cxx is resent with the exact Le (ISO 7816-4 5.3.4 / T=0 rules as PC/SC passes them up),
// each exchange has a time limit, and PC/SC failures become MyKeyError codes. The connection itself
// (pcsclite, or a test double) comes in as a `RawCard`.
import { MyKeyError } from '../../shared/errors.ts';
import { buildApdu, getResponse, toHex, type CommandApdu } from './apdu.ts';
import { ApduGuard, type ApduKind, type GuardOptions } from './guard.ts';
import { bytesAvailable, correctLe, responseData } from './status-words.ts';

/** How a raw card hands back one answer: an error, or the full response (data + SW1 SW2). */
export type RawAnswer = (err: unknown, response?: Uint8Array) => void;

/** The raw card connection the transport drives. */
export interface RawCard {
  /** Sends one APDU and resolves with the full response (data + SW1 SW2). */
  transmit(apdu: Uint8Array, maxResponseLength: number): Promise<Uint8Array>;
  /**
   * The same exchange in callback form. When present the session uses it: pcsclite answers with a
   * callback, and a promise per APDU around it is turns of the event loop on every exchange for nothing.
   */
  send?(apdu: Uint8Array, maxResponseLength: number, answer: RawAnswer): void;
  /** Ends the connection; `reset` asks the reader to reset the card (drops a verified PIN). */
  close(options: { reset: boolean }): Promise<void>;
}

/** A response APDU split in data and status word. */
export interface ResponseApdu {
  data: Uint8Array;
  sw: number;
}

/** Trace hook: every APDU exchanged with the card, as sent and as received (GET RESPONSE included). */
export type ApduTraceHook = (apdu: Uint8Array, response: Uint8Array) => void;

/** Options of a card session. */
export interface CardSessionOptions {
  /** Guard capabilities (the writer role), or a guard to use. */
  guard?: GuardOptions | ApduGuard;
  /** Time limit of one exchange with the card, in ms (default 5000). */
  timeoutMs?: number;
  /** Trace hook for tests. */
  onApdu?: ApduTraceHook;
  /** Reader name, for messages. */
  reader?: string;
  /**
   * Resolves true when the card is (or within `withinMs` becomes) reported gone by the reader. Used to
   * tell a card taken away mid-exchange from a card that answers badly: some readers (vpcd among them)
   * report the loss as an empty or cut-off response instead of a PC/SC error.
   */
  probeRemoval?: (withinMs: number) => Promise<boolean>;
  /** How long a failed exchange waits for the reader to report the card gone, ms (default 1000). */
  removalGraceMs?: number;
}

/** Short APDU responses are at most 256 data bytes + SW1 SW2. */
export const MAX_RESPONSE_LENGTH = 258;
/** Upper bound of chained GET RESPONSE rounds for one command (a looping card is a malformed card). */
export const MAX_GET_RESPONSE_ROUNDS = 32;
/** Default time limit of one exchange. */
export const DEFAULT_APDU_TIMEOUT_MS = 5000;
/** Default wait for a removal report after a failed exchange (pcscd polls card presence every 400 ms). */
export const DEFAULT_REMOVAL_GRACE_MS = 1000;

// Errors already checked against a removal report, so nested operations do not wait twice.
const explained = new WeakSet<object>();
const PROBED_CODES = new Set(['card_response_malformed', 'card_error', 'timeout']);

// PC/SC return codes (pcsclite pcsclite.h, winscard) that mean the card is gone or no longer ours.
const CARD_GONE_CODES = new Set([
  0x80100069, // SCARD_W_REMOVED_CARD
  0x80100068, // SCARD_W_RESET_CARD (someone else reset it: our selection is lost)
  0x80100067, // SCARD_W_UNPOWERED_CARD
  0x80100066, // SCARD_W_UNRESPONSIVE_CARD
  0x8010000c, // SCARD_E_NO_SMARTCARD
  0x80100017, // SCARD_E_READER_UNAVAILABLE
  0x80100009, // SCARD_E_UNKNOWN_READER
  0x80100003, // SCARD_E_INVALID_HANDLE (the connection was dropped)
]);
const SERVICE_GONE_CODES = new Set([
  0x8010001d, // SCARD_E_NO_SERVICE
  0x8010001e, // SCARD_E_SERVICE_STOPPED
]);
const TIMEOUT_CODES = new Set([0x8010000a /* SCARD_E_TIMEOUT */]);

/** Marks a failure as needing no removal probe in CardSession.run (a connect failure is what it says). */
export function conclusive(err: MyKeyError): MyKeyError {
  explained.add(err);
  return err;
}

/** The PC/SC return code in a pcsclite error message (`SCardTransmit error: Card was removed.(0x80100069)`). */
export function pcscCode(err: unknown): number | undefined {
  const msg = err instanceof Error ? err.message : String(err);
  const m = /\(0x([0-9a-fA-F]{8})\)/.exec(msg);
  return m ? parseInt(m[1], 16) : undefined;
}

/** Maps a PC/SC failure to a MyKeyError (already-MyKeyErrors pass through). */
export function mapPcscError(err: unknown, what: string): MyKeyError {
  if (err instanceof MyKeyError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const code = pcscCode(err);
  if ((code !== undefined && CARD_GONE_CODES.has(code)) || /not connected/i.test(msg)) {
    return new MyKeyError('card_removed', `${what}: the card was taken away`, { cause: err });
  }
  if (code !== undefined && SERVICE_GONE_CODES.has(code)) return new MyKeyError('reader_unavailable', `${what}: the PC/SC service is not available`, { cause: err });
  if (code !== undefined && TIMEOUT_CODES.has(code)) return new MyKeyError('timeout', `${what}: the reader timed out`, { cause: err });
  return new MyKeyError('card_error', `${what}: ${msg}`, { cause: err });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MyKeyError('timeout', `${what}: no answer from the card within ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

const NO_DATA = new Uint8Array(0);

/**
 * What follows an answer in a series of steps: the next APDU, or undefined to end the series. `index`
 * counts the answers from 0; a throw ends the series with that error.
 */
export type NextApdu = (r: ResponseApdu, index: number) => Uint8Array | undefined;

/** A command waiting for, or in, its exchange with the card. */
interface Command {
  /** The command's first APDU. */
  readonly first: Uint8Array;
  /** For a series: the APDU that follows an answer, if any. */
  readonly next: NextApdu | undefined;
  readonly answers: ResponseApdu[];
  readonly resolve: (r: ResponseApdu[]) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * One conversation with one card. Create it with a fresh guard per connection: the guard's idea of the
 * current selection is only valid for the connection it watched.
 *
 * The exchange runs on callbacks, one promise per command for its caller: a touch is a handful of
 * APDUs in about a millisecond, and every promise, async frame or timer per APDU runs cold on the
 * edge (a touch comes after seconds of idle), which made the reader layer cost a fifth on top of the
 * bare PC/SC round trips (issue #11). One watchdog timer per session keeps each exchange's time limit.
 */
export class CardSession {
  readonly reader: string;
  readonly #raw: RawCard;
  readonly #guard: ApduGuard;
  readonly #timeoutMs: number;
  readonly #onApdu?: ApduTraceHook;
  readonly #probeRemoval?: (withinMs: number) => Promise<boolean>;
  readonly #graceMs: number;
  #gone: MyKeyError | undefined;
  #closed = false;
  #pinPresented = false;
  /** The command at the card, and those waiting their turn (commands reach the card one at a time). */
  #current: Command | undefined;
  readonly #waiting: Command[] = [];
  #pumping = false;
  /** Resolvers of close() waiting for the commands in progress. */
  #drained: (() => void)[] = [];
  // The exchange of #current: what was allowed, the phase of ISO 7816-4 5.3.4 handling it is in.
  #kind: ApduKind = 'select-app';
  #apdu: CommandApdu | undefined;
  #phase: 'first' | 'resent' | 'chained' = 'first';
  #rounds = 0;
  #data: Uint8Array = NO_DATA;
  /** The APDU at the card now (for messages), and whether its answer is still awaited. */
  #sent: Uint8Array = NO_DATA;
  #awaiting = false;
  /** performance.now() by which the card must have answered the APDU at the card. */
  #deadline = 0;
  #watchdog: NodeJS.Timeout | undefined;
  /** Whether the watchdog holds the process open (it does while an exchange runs). */
  #watchdogRefed = false;

  constructor(raw: RawCard, options: CardSessionOptions = {}) {
    this.#raw = raw;
    this.#guard = options.guard instanceof ApduGuard ? options.guard : new ApduGuard(options.guard);
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_APDU_TIMEOUT_MS;
    this.#onApdu = options.onApdu;
    this.reader = options.reader ?? 'reader';
    this.#probeRemoval = options.probeRemoval;
    this.#graceMs = options.removalGraceMs ?? DEFAULT_REMOVAL_GRACE_MS;
  }

  /**
   * Runs a card operation; when it fails in a way a departing card would cause (malformed or cut-off
   * response, unexpected status, timeout) and the reader then reports the card gone, the failure
   * becomes MyKeyError('card_removed') with the original as cause. Every public card-access function
   * runs through here, so callers see one clear code for "the card was taken away".
   */
  run<T>(op: () => Promise<T>): Promise<T> {
    // A plain rejection handler rather than an async frame: nothing extra on the way of a success.
    let p: Promise<T>;
    try {
      p = op();
    } catch (err) {
      p = Promise.reject(err);
    }
    return p.then(undefined, (err: unknown) =>
      this.#explain(err).then((e) => {
        throw e;
      }),
    );
  }

  /**
   * What run() makes of a failure: card_removed (with the failure as cause) when the reader then
   * reports the card gone, else the failure itself. Never rejects. For reads that take their outcome
   * in a callback (transmitStepsNow) rather than through run().
   */
  explain(err: unknown): Promise<unknown> {
    return this.#explain(err);
  }

  async #explain(err: unknown): Promise<unknown> {
    if (!(err instanceof MyKeyError) || explained.has(err)) return err;
    explained.add(err);
    if (this.#gone && err.code !== 'card_removed' && this.#gone.code === 'card_removed') {
      const e = new MyKeyError('card_removed', this.#gone.message, { cause: err });
      explained.add(e);
      return e;
    }
    if (!PROBED_CODES.has(err.code) || !this.#probeRemoval) return err;
    let removed = false;
    try {
      removed = await this.#probeRemoval(this.#graceMs);
    } catch {
      removed = false;
    }
    if (!removed) return err;
    this.markRemoved();
    const e = new MyKeyError('card_removed', `${this.reader}: the card was taken away during the exchange`, { cause: err });
    explained.add(e);
    return e;
  }

  /** The guard watching this session (read its state in tests). */
  get guard(): ApduGuard {
    return this.#guard;
  }

  /** True once the session was closed or the card was found gone. */
  get closed(): boolean {
    return this.#closed || this.#gone !== undefined;
  }

  /**
   * Sends one command APDU through the guard and returns the complete response (61xx and 6Cxx
   * resolved). Refused APDUs throw MyKeyError('apdu_refused') and never reach the card. Commands are
   * serialized: concurrent callers wait their turn.
   */
  transmit(apdu: Uint8Array): Promise<ResponseApdu> {
    return new Promise<ResponseApdu>((resolve, reject) => this.#enqueue({ first: apdu, next: undefined, answers: [], resolve: (a) => resolve(a[0]), reject }));
  }

  /**
   * Sends `first`, then for each answer the APDU `next` gives, until it gives undefined: one turn at
   * the card, each APDU through the guard at its turn (a refused one fails the whole series before it
   * is sent), and resolves with all the answers. A read whose next step follows from the answers
   * (which application is there, how long the file is) runs inside PC/SC's callbacks without a
   * promise between the APDUs; the caller reads the answers once at the end.
   */
  transmitSteps(first: Uint8Array, next: NextApdu): Promise<ResponseApdu[]> {
    return new Promise<ResponseApdu[]>((resolve, reject) => this.#enqueue({ first, next, answers: [], resolve, reject }));
  }

  /**
   * transmitSteps with a callback instead of a promise: `done` gets the answers inside PC/SC's callback
   * of the last answer, or the failure (not yet explained: see explain()). A touch's identity is then
   * ready in that callback rather than after the promise turns of a resolve, the read's then, run()'s
   * then and the caller's await, which measured some 20-40 us on a touch (issue #11). `done` may be
   * called before this returns (a refused first APDU, a closed session).
   */
  transmitStepsNow(first: Uint8Array, next: NextApdu, done: (err: unknown, answers?: ResponseApdu[]) => void): void {
    this.#enqueue({ first, next, answers: [], resolve: (a) => done(undefined, a), reject: (e) => done(e) });
  }

  #enqueue(cmd: Command): void {
    this.#waiting.push(cmd);
    this.#pump();
  }

  /** Marks the card as gone (the reader saw it leave): pending and later commands fail with card_removed. */
  markRemoved(): void {
    this.#gone ??= new MyKeyError('card_removed', `${this.reader}: the card was taken away`);
  }

  /** Ends the connection; resets the card when a PIN was presented so no verified state outlives the session. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Commands still waiting fail with "closed" when their turn comes; the one at the card finishes.
    if (this.#current || this.#waiting.length) await new Promise<void>((r) => this.#drained.push(r));
    clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
    try {
      await withTimeout(this.#raw.close({ reset: this.#pinPresented }), this.#timeoutMs, `${this.reader}: disconnect`);
    } catch {
      // The card may already be gone; the connection is finished either way.
    }
  }

  /** Starts waiting commands one after another while none is at the card. */
  #pump(): void {
    if (this.#pumping) return; // a command finishing inside #begin: the loop below goes on
    this.#pumping = true;
    try {
      for (let next = this.#current ? undefined : this.#waiting.shift(); next; next = this.#current ? undefined : this.#waiting.shift()) this.#begin(next);
    } finally {
      this.#pumping = false;
    }
    if (!this.#current && this.#waiting.length === 0 && this.#drained.length) for (const r of this.#drained.splice(0)) r();
  }

  #begin(cmd: Command): void {
    this.#current = cmd;
    this.#start(cmd.first);
  }

  /** The next APDU of the command at the card: through the guard, then to the card. */
  #start(bytes: Uint8Array): void {
    if (this.#closed) {
      this.#finish(new MyKeyError('card_error', `${this.reader}: the card session is closed`));
      return;
    }
    if (this.#gone) {
      this.#finish(this.#gone);
      return;
    }
    this.#phase = 'first';
    this.#rounds = 0;
    // A certificate chunk: allowed by the guard's byte compares, sent without a parsed command (one is
    // parsed only if the card asks for a resend with another Le). Everything else: the full rules.
    if (this.#guard.allowsPlainRead(bytes)) {
      this.#kind = 'read-binary';
      this.#apdu = undefined;
      this.#send(bytes);
      return;
    }
    let checked: { kind: ApduKind; apdu: CommandApdu };
    try {
      checked = this.#guard.check(bytes);
    } catch (e) {
      this.#finish(e);
      return;
    }
    if (checked.kind === 'verify' && checked.apdu.data.length > 0) this.#pinPresented = true;
    this.#kind = checked.kind;
    this.#apdu = checked.apdu;
    this.#send(bytes);
  }

  /** Ends one APDU's exchange: the next APDU of a series, or the command settles and the next one goes. */
  #finish(err: unknown, result?: ResponseApdu): void {
    const cmd = this.#current;
    this.#apdu = undefined;
    this.#data = NO_DATA;
    if (cmd && result) {
      cmd.answers.push(result);
      let more: Uint8Array | undefined;
      try {
        more = cmd.next?.(result, cmd.answers.length - 1);
      } catch (e) {
        err = e;
        result = undefined;
      }
      if (more) {
        this.#start(more);
        return;
      }
    }
    this.#current = undefined;
    try {
      if (cmd) {
        if (result) cmd.resolve(cmd.answers);
        else cmd.reject(err);
      }
    } finally {
      // Idle: the watchdog stops holding the process open (a session nobody closes must not keep it alive).
      if (this.#waiting.length === 0 && this.#watchdog && this.#watchdogRefed) {
        this.#watchdog.unref();
        this.#watchdogRefed = false;
      }
      this.#pump();
    }
  }

  /** One APDU to the card; its answer comes to #answer. */
  #send(apdu: Uint8Array): void {
    if (this.#gone) {
      this.#finish(this.#gone);
      return;
    }
    this.#sent = apdu;
    this.#awaiting = true;
    this.#deadline = performance.now() + this.#timeoutMs;
    if (!this.#watchdog) this.#watchdog = setTimeout(this.#tick, this.#timeoutMs);
    else if (!this.#watchdogRefed) this.#watchdog.ref();
    this.#watchdogRefed = true;
    const raw = this.#raw;
    try {
      if (raw.send) raw.send(apdu, MAX_RESPONSE_LENGTH, this.#answer);
      else raw.transmit(apdu, MAX_RESPONSE_LENGTH).then(this.#answered, this.#failed);
    } catch (e) {
      this.#answer(e ?? new Error('transmit failed'));
    }
  }

  readonly #answered = (resp: Uint8Array): void => this.#answer(null, resp);
  readonly #failed = (err: unknown): void => this.#answer(err ?? new Error('transmit failed'));

  /** The watchdog: fails the exchange at the card once its time limit has passed, else waits on. */
  readonly #tick = (): void => {
    this.#watchdog = undefined;
    if (!this.#awaiting) return;
    const left = this.#deadline - performance.now();
    if (left > 0) {
      this.#watchdog = setTimeout(this.#tick, left);
      return;
    }
    this.#awaiting = false;
    const e = new MyKeyError('timeout', `${this.reader}: transmit: no answer from the card within ${this.#timeoutMs} ms`);
    // A card that stopped answering is not talked to again: its late answer would be out of step.
    this.#gone ??= new MyKeyError('card_error', `${this.reader}: the card stopped answering`, { cause: e });
    this.#finish(e);
  };

  readonly #answer = (err: unknown, resp?: Uint8Array): void => {
    if (!this.#awaiting) return; // timed out already (or a raw card answering twice)
    this.#awaiting = false;
    if (err) {
      const e = mapPcscError(err, `${this.reader}: transmit`);
      if (e.code === 'card_removed' || e.code === 'timeout') this.#gone ??= e.code === 'card_removed' ? e : new MyKeyError('card_error', `${this.reader}: the card stopped answering`, { cause: e });
      this.#finish(e);
      return;
    }
    if (this.#gone) {
      // The reader reported the card gone while this exchange ran.
      this.#finish(this.#gone);
      return;
    }
    const apdu = this.#sent;
    if (this.#onApdu && resp instanceof Uint8Array) {
      try {
        this.#onApdu(apdu, resp);
      } catch {
        // A trace hook must not change the conversation.
      }
    }
    if (!(resp instanceof Uint8Array) || resp.length < 2 || resp.length > MAX_RESPONSE_LENGTH) {
      this.#finish(new MyKeyError('card_response_malformed', `${this.reader}: card response of ${resp?.length ?? 0} byte(s) to ${toHex(apdu.subarray(0, 4))}`));
      return;
    }
    try {
      this.#step(resp);
    } catch (e) {
      this.#finish(e);
    }
  };

  /** What the answer means for the command at the card: done, resend with the right Le, or collect more. */
  #step(resp: Uint8Array): void {
    // #answer checked the length: 2 to 258 bytes.
    const n = resp.length;
    const sw1 = resp[n - 2];
    const status = (sw1 << 8) | resp[n - 1];
    // The usual answer to the APDU as sent (90 00, or a final status such as 6A 82): its data as a
    // view, nothing to resend or collect. A plain READ BINARY (no parsed command) changes no selection
    // (nextGuardState), so the guard is told only of the others.
    if (this.#phase === 'first' && sw1 !== 0x61 && sw1 !== 0x6c) {
      if (this.#apdu) this.#guard.observe(this.#kind, this.#apdu, status);
      this.#finish(undefined, { data: resp.subarray(0, n - 2), sw: status });
      return;
    }
    // ISO 7816-4 5.3.4 (T=0 case 2/4): 6C xx = wrong Le, resend once with Le = xx.
    if (this.#phase === 'first') {
      const le = correctLe(status);
      const apdu = this.#apdu ?? this.#guard.check(this.#sent).apdu;
      if (le !== undefined && apdu.le !== undefined) {
        const again = buildApdu(apdu.cla, apdu.ins, apdu.p1, apdu.p2, apdu.data.length ? apdu.data : undefined, le);
        this.#guard.check(again);
        this.#phase = 'resent';
        this.#send(again);
        return;
      }
    }
    // 61 xx = xx more bytes available: collect them with GET RESPONSE.
    const chunk = responseData(resp);
    if (this.#phase === 'chained') {
      const joined = new Uint8Array(this.#data.length + chunk.length);
      joined.set(this.#data);
      joined.set(chunk, this.#data.length);
      this.#data = joined;
    } else {
      this.#data = chunk;
    }
    const more = bytesAvailable(status);
    if (more !== undefined) {
      if (this.#rounds >= MAX_GET_RESPONSE_ROUNDS) {
        throw new MyKeyError('card_response_malformed', `${this.reader}: the card kept answering 61xx after ${this.#rounds} GET RESPONSE rounds`);
      }
      this.#rounds++;
      const gr = getResponse(more);
      this.#guard.check(gr);
      this.#phase = 'chained';
      this.#send(gr);
      return;
    }
    if (this.#apdu) this.#guard.observe(this.#kind, this.#apdu, status);
    this.#finish(undefined, { data: this.#data, sw: status });
  }
}
