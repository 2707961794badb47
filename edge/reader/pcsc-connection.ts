// One PC/SC card connection as a session's RawCard, usable from the moment it is asked for. SCardConnect
// takes a round trip to pcscd; a touch's own work before its first APDU (the session, the first
// command and its guard check) runs meanwhile instead of after it, and that command goes to the card
// the moment the connection stands. A connection that fails answers the waiting command with its
// error (reader_busy, card_removed, timeout...), as connect() reported it before.
import { MyKeyError } from '../../shared/errors.ts';
import { SCARD_DISPOSITION, SCARD_PROTOCOL, SCARD_SHARE } from './pcsc-state.ts';
import type { PcscReader } from './pcsc-port.ts';
import { conclusive, mapPcscError, pcscCode, type RawAnswer, type RawCard } from './transport.ts';

/** pcsclite.h: another context holds the card in a mode that excludes ours. */
const SCARD_E_SHARING_VIOLATION = 0x8010000b;

interface Queued {
  apdu: Uint8Array;
  maxLen: number;
  answer: RawAnswer;
}

/** A PC/SC connection being made or made: SCARD_SHARE_EXCLUSIVE, T=0 or T=1 as the card offers. */
export class PcscConnection implements RawCard {
  readonly #handle: PcscReader;
  readonly #reader: string;
  readonly #timeoutMs: number;
  #state: 'connecting' | 'open' | 'failed' | 'closed' = 'connecting';
  #protocol = 0;
  #error: MyKeyError | undefined;
  /** The command sent while connecting (a session sends one at a time). */
  #queued: Queued | undefined;
  /** Waiting for the outcome of connecting. */
  #outcome: (() => void)[] = [];

  constructor(handle: PcscReader, reader: string, timeoutMs: number) {
    this.#handle = handle;
    this.#reader = reader;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Connects once `before` settled (the previous session on this reader closing, or nothing), then
   * keeps the connection only when `stillWanted()` (the card it was opened for is still there).
   */
  start(before: Promise<unknown> | undefined, stillWanted: () => boolean): void {
    if (before)
      before.then(
        () => this.#connectFresh(stillWanted),
        () => this.#connectFresh(stillWanted),
      );
    else this.#connectFresh(stillWanted);
  }

  /** Resolves once connected; rejects with the reason it could not connect. */
  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = () => (this.#state === 'open' ? resolve() : reject(this.#error ?? new MyKeyError('card_error', `${this.#reader}: the connection is closed`)));
      if (this.#state === 'connecting') this.#outcome.push(settle);
      else settle();
    });
  }

  send(apdu: Uint8Array, maxLen: number, answer: RawAnswer): void {
    if (this.#state === 'open') {
      this.#transmit(apdu, maxLen, answer);
      return;
    }
    if (this.#state === 'connecting' && !this.#queued) {
      this.#queued = { apdu, maxLen, answer };
      return;
    }
    answer(this.#error ?? new MyKeyError('card_error', `${this.#reader}: the connection is closed`));
  }

  transmit(apdu: Uint8Array, maxLen: number): Promise<Uint8Array> {
    return new Promise((resolve, reject) => this.send(apdu, maxLen, (err, resp) => (err ? reject(err) : resolve(resp as Uint8Array))));
  }

  async close({ reset }: { reset: boolean }): Promise<void> {
    // A connection still being made is let go once made: it must not stay behind holding the card.
    if (this.#state === 'connecting') await new Promise<void>((r) => this.#outcome.push(r));
    if (this.#state !== 'open') return;
    this.#state = 'closed';
    await new Promise<void>((resolve) => this.#handle.disconnect(reset ? SCARD_DISPOSITION.RESET : SCARD_DISPOSITION.LEAVE, () => resolve()));
  }

  #connectFresh(stillWanted: () => boolean): void {
    const handle = this.#handle;
    if (!handle.connected) {
      this.#connect(stillWanted);
      return;
    }
    // A connection left from a card that was taken away; pcsclite would otherwise reuse it silently.
    let done = false;
    const go = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.#connect(stillWanted);
    };
    const timer = setTimeout(go, this.#timeoutMs);
    handle.disconnect(SCARD_DISPOSITION.LEAVE, go);
  }

  #connect(stillWanted: () => boolean): void {
    // Always SCARD_SHARE_EXCLUSIVE, for the whole session (a touch read, PIN + signature, a certificate
    // read): another PC/SC client that could send APDUs between ours could SELECT another application
    // behind the guard's back, or use the PIN we verified. pcscd refuses it a connection meanwhile.
    const reader = this.#reader;
    const timer = setTimeout(() => this.#failed(new MyKeyError('timeout', `${reader}: connect: no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    try {
      this.#handle.connect({ share_mode: SCARD_SHARE.EXCLUSIVE, protocol: SCARD_PROTOCOL.T0 | SCARD_PROTOCOL.T1 }, (err, protocol) => {
        clearTimeout(timer);
        if (this.#state !== 'connecting') return; // timed out; the next connection disconnects what this made
        if (err) {
          if (pcscCode(err) === SCARD_E_SHARING_VIOLATION) {
            this.#failed(new MyKeyError('reader_busy', `${reader}: another program holds the card`, { cause: err }));
            return;
          }
          this.#failed(mapPcscError(err, `${reader}: connect`));
          return;
        }
        this.#protocol = protocol;
        if (!stillWanted()) {
          // The card left (or was replaced) while we connected.
          this.#handle.disconnect(SCARD_DISPOSITION.LEAVE, () => {});
          this.#failed(new MyKeyError('card_removed', `${reader}: the card was taken away`));
          return;
        }
        this.#state = 'open';
        const q = this.#queued;
        this.#queued = undefined;
        if (q) this.#transmit(q.apdu, q.maxLen, q.answer);
        this.#settle();
      });
    } catch (err) {
      clearTimeout(timer);
      this.#failed(mapPcscError(err, `${reader}: connect`));
    }
  }

  #failed(e: MyKeyError): void {
    if (this.#state !== 'connecting') return;
    this.#state = 'failed';
    // The connect failure is the touch's outcome as it stands: no waiting for a removal report on it.
    this.#error = conclusive(e);
    const q = this.#queued;
    this.#queued = undefined;
    q?.answer(this.#error);
    this.#settle();
  }

  #settle(): void {
    for (const f of this.#outcome.splice(0)) f();
  }

  #transmit(apdu: Uint8Array, maxLen: number, answer: RawAnswer): void {
    // pcsclite's callback passed on as it is: no promise per APDU. The APDU goes as it is too: the addon
    // takes any ArrayBufferView (node::Buffer::HasInstance) and copies the bytes before it returns.
    try {
      this.#handle.transmit(apdu, maxLen, this.#protocol, (err, resp) => (err ? answer(err) : answer(null, new Uint8Array(resp.buffer, resp.byteOffset, resp.byteLength))));
    } catch (err) {
      answer(err ?? new Error('transmit failed'));
    }
  }
}
