// APDU transport over one card connection: every command passes the guard, 61xx is resolved with GET
// RESPONSE, 6Cxx is resent with the exact Le (ISO 7816-4 5.3.4 / T=0 rules as PC/SC passes them up),
// each exchange has a time limit, and PC/SC failures become MyKeyError codes. The connection itself
// (pcsclite, or a test double) comes in as a `RawCard`.
import { MyKeyError } from '../../shared/errors.ts';
import { buildApdu, getResponse, toHex, type CommandApdu } from './apdu.ts';
import { ApduGuard, type GuardOptions } from './guard.ts';
import { bytesAvailable, correctLe, responseData, sw } from './status-words.ts';

/** The raw card connection the transport drives. */
export interface RawCard {
  /** Sends one APDU and resolves with the full response (data + SW1 SW2). */
  transmit(apdu: Uint8Array, maxResponseLength: number): Promise<Uint8Array>;
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

/**
 * One conversation with one card. Create it with a fresh guard per connection: the guard's idea of the
 * current selection is only valid for the connection it watched.
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
  #queue: Promise<unknown> = Promise.resolve();

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
  async run<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw await this.#explain(err);
    }
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
    // The common case, one command at a time, starts at once: no turn of the queue before the guard
    // and the card see it. A command that arrives while another runs waits for the queue as before.
    const run = this.#pending === 0 ? this.#exchange(apdu) : this.#queue.then(() => this.#exchange(apdu));
    this.#pending++;
    this.#queue = run.then(this.#settled, this.#settled);
    return run;
  }

  /** Commands sent and not yet answered (or failed). */
  #pending = 0;
  readonly #settled = (): void => {
    this.#pending--;
  };

  /** Marks the card as gone (the reader saw it leave): pending and later commands fail with card_removed. */
  markRemoved(): void {
    this.#gone ??= new MyKeyError('card_removed', `${this.reader}: the card was taken away`);
  }

  /** Ends the connection; resets the card when a PIN was presented so no verified state outlives the session. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    try {
      await withTimeout(this.#raw.close({ reset: this.#pinPresented }), this.#timeoutMs, `${this.reader}: disconnect`);
    } catch {
      // The card may already be gone; the connection is finished either way.
    }
  }

  async #exchange(bytes: Uint8Array): Promise<ResponseApdu> {
    if (this.#closed) throw new MyKeyError('card_error', `${this.reader}: the card session is closed`);
    if (this.#gone) throw this.#gone;
    const { kind, apdu } = this.#guard.check(bytes);
    if (kind === 'verify' && apdu.data.length > 0) this.#pinPresented = true;
    let resp = await this.#send(bytes);
    let status = sw(resp);

    // ISO 7816-4 5.3.4 (T=0 case 2/4): 6C xx = wrong Le, resend once with Le = xx.
    const le = correctLe(status);
    if (le !== undefined && apdu.le !== undefined) {
      const again = buildApdu(apdu.cla, apdu.ins, apdu.p1, apdu.p2, apdu.data.length ? apdu.data : undefined, le);
      this.#guard.check(again);
      resp = await this.#send(again);
      status = sw(resp);
    }

    // 61 xx = xx more bytes available: collect them with GET RESPONSE.
    let data = responseData(resp);
    for (let round = 0; bytesAvailable(status) !== undefined; round++) {
      if (round >= MAX_GET_RESPONSE_ROUNDS) {
        throw new MyKeyError('card_response_malformed', `${this.reader}: the card kept answering 61xx after ${round} GET RESPONSE rounds`);
      }
      const gr = getResponse(bytesAvailable(status)!);
      this.#guard.check(gr);
      const more = await this.#send(gr);
      status = sw(more);
      const chunk = responseData(more);
      const joined = new Uint8Array(data.length + chunk.length);
      joined.set(data);
      joined.set(chunk, data.length);
      data = joined;
    }
    this.#guard.observe(kind, apdu as CommandApdu, status);
    return { data, sw: status };
  }

  /**
   * One exchange with the time limit: a plain timer cleared by the answer, without Promise.race and
   * its extra promises and turns per APDU (the reader layer's cost on top of PC/SC is mostly these).
   */
  #transmitWithin(apdu: Uint8Array): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => reject(new MyKeyError('timeout', `${this.reader}: transmit: no answer from the card within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      let answer: Promise<Uint8Array>;
      try {
        answer = this.#raw.transmit(apdu, MAX_RESPONSE_LENGTH);
      } catch (e) {
        clearTimeout(timer);
        reject(e);
        return;
      }
      answer.then(
        (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  async #send(apdu: Uint8Array): Promise<Uint8Array> {
    if (this.#gone) throw this.#gone;
    let resp: Uint8Array;
    try {
      resp = await this.#transmitWithin(apdu);
    } catch (err) {
      const e = mapPcscError(err, `${this.reader}: transmit`);
      if (e.code === 'card_removed' || e.code === 'timeout') this.#gone ??= e.code === 'card_removed' ? e : new MyKeyError('card_error', `${this.reader}: the card stopped answering`, { cause: e });
      throw e;
    }
    if (this.#gone) throw this.#gone; // the reader reported the card gone while this exchange ran
    if (this.#onApdu) {
      try {
        this.#onApdu(apdu, resp);
      } catch {
        // A trace hook must not change the conversation.
      }
    }
    if (!(resp instanceof Uint8Array) || resp.length < 2 || resp.length > MAX_RESPONSE_LENGTH) {
      throw new MyKeyError('card_response_malformed', `${this.reader}: card response of ${resp?.length ?? 0} byte(s) to ${toHex(apdu.subarray(0, 4))}`);
    }
    return resp;
  }
}
