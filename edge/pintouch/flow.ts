// The PIN-checked touch (#14): for a service whose touches must prove more than possession, a touch
// asks the holder for the 4-digit user-authentication PIN on the kiosk page, the card signs a fresh
// challenge the edge made, and the edge verifies it against the certificate's key, offline, before
// the service ID is handed over.
//
//   touch (identity + certificate + tries left, one session: card-read.ts)
//     -> certificate issued by a JPKI anchor the hub gave, in validity (verify.ts checkCertificate)
//     -> staleness policy, linked?, certificate bound to the MyKey ID (binding.ts)   [no PIN asked if not]
//     -> PIN pad on the kiosk page (tries left; blocked PIN explained; timeout; card taken away)
//     -> PIN entered: new challenge, VERIFY + SIGN on the card (a new exclusive session)
//     -> signature checked (verify.ts), binding checked again (a purge that came meanwhile applies)
//     -> hand-over, through the same targets as every touch.
//
// The PIN goes from the page to the card and nowhere else: never logged, kept or returned. Nothing of
// the touch outlives it; only aggregate counters move (stats()).
import type { X509Certificate } from 'node:crypto';
import { MyKeyError, type ErrorCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import type { ActionReply } from '../kiosk/server.ts';
import type { LookupDecision, TouchIdentity } from '../lookup/decide.ts';
import type { TouchLookup } from '../lookup/touch-lookup.ts';
import { signChallenge, type CardSession } from '../reader/index.ts';
import type { Pausable } from '../register/card-signer.ts';
import { bindCertificate } from './binding.ts';
import { pinTouchReadOf } from './card-read.ts';
import { checkCertificate, makeChallenge, touchMessage, verifyTouchSignature } from './verify.ts';
import type { PinTouchView } from './view.ts';

/** The reader layer as the flow needs it (ReaderManager fits). */
export interface PinTouchCards {
  connect(reader: string): Promise<CardSession>;
  on(event: 'card-removed', listener: (e: { reader: string }) => unknown): () => void;
  /** Whether a card is on the reader now (a card gone before the flow started listening). */
  isCardPresent?(reader: string): boolean;
}

/** The verdict of one PIN attempt, for benchmarks and metrics: never who, only how it ended and how long it took. */
export interface PinVerdict {
  /** `linked`, `not_linked`, `degraded`, `refused`, or `pin_wrong` (the flow goes on). */
  outcome: LookupDecision['outcome'] | 'pin_wrong';
  code?: string;
  /** From the PIN entered to the verdict, ms (card VERIFY + SIGN, the checks, the hand-over). */
  ms: number;
}

export interface PinTouchFlowOptions {
  lookup: Pick<TouchLookup, 'keysFor' | 'lookupInput' | 'settle'>;
  cards: PinTouchCards;
  /** The touch pipeline: kept off the card while it signs (its card-present would close our session). */
  pause?: Pausable;
  /** The JPKI anchors the hub gave (parsed); empty: PIN-checked touches are refused (pin_touch_unavailable). */
  anchors: () => readonly X509Certificate[];
  /** How long the PIN pad waits, ms (default 30 s). */
  timeoutMs?: number;
  random?: (n: number) => Uint8Array;
  /** Monotonic clock for the verdict time (performance.now by default). */
  clock?: () => number;
  log?: Logger;
}

interface Pending {
  reader: string;
  identity: TouchIdentity;
  cert: X509Certificate;
  certDer: Uint8Array;
  identityKeys: string[] | undefined;
  certKeys: string[] | undefined;
}

const PIN_RE = /^[0-9]{4}$/;
const reject = (code: ErrorCode, message: string): ActionReply => ({ ok: false, code, message });
type Refusal = { outcome: 'refused'; reason: string };
const refused = (reason: string): Refusal => ({ outcome: 'refused', reason });

export class PinTouchFlow {
  readonly #o: PinTouchFlowOptions;
  readonly #timeoutMs: number;
  readonly #clock: () => number;
  readonly #log: Logger;
  readonly #views = new Set<(v: PinTouchView) => void>();
  readonly #verdicts = new Set<(v: PinVerdict) => void>();
  #view: PinTouchView = { step: 'off' };
  #pending: Pending | undefined;
  #timer: NodeJS.Timeout | undefined;
  #offRemoved: (() => void) | undefined;
  /** Moves on every new touch or end, so a late answer of an abandoned one is dropped. */
  #epoch = 0;
  #running: Promise<void> | undefined;
  readonly #stats = { pinTouches: 0, pinVerified: 0, pinFailures: 0 };

  constructor(opts: PinTouchFlowOptions) {
    this.#o = opts;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#clock = opts.clock ?? (() => performance.now());
    this.#log = opts.log ?? silentLogger;
  }

  /** Listens to view changes (the kiosk page); returns the unsubscribe. */
  on(listener: (v: PinTouchView) => void): () => void {
    this.#views.add(listener);
    return () => this.#views.delete(listener);
  }

  /** Listens to verdicts of PIN attempts (benchmarks, metrics); returns the unsubscribe. */
  onVerdict(listener: (v: PinVerdict) => void): () => void {
    this.#verdicts.add(listener);
    return () => this.#verdicts.delete(listener);
  }

  view(): PinTouchView {
    return this.#view;
  }

  /** True while the flow holds a touch (PIN pad or checking). */
  get active(): boolean {
    return this.#view.step !== 'off';
  }

  /**
   * Aggregate counters: touches that asked for the PIN, touches handed over after a verified
   * signature, and failures (wrong PINs, blocked PINs, refused certificates or signatures).
   */
  stats(): { pinTouches: number; pinVerified: number; pinFailures: number } {
    return { ...this.#stats };
  }

  /**
   * A touch on a service that wants the PIN. Answers at once what needs no PIN (refused by the
   * staleness policy, not linked, a certificate not bound to the MyKey ID, a blocked PIN), else opens
   * the PIN pad. Resolves to the decision when one was handed over now (the desk offers registration
   * for a card not linked), undefined otherwise.
   */
  async begin(reader: string, identity: TouchIdentity): Promise<LookupDecision | undefined> {
    this.#end();
    const epoch = this.#epoch;
    // The card taken away from here on (while the keys are derived, or the PIN pad waits) ends the
    // touch; while the card signs, the exchange fails by itself and the late answer is dropped.
    this.#offRemoved = this.#o.cards.on('card-removed', (e) => {
      if (e.reader === reader && epoch === this.#epoch && this.#view.step !== 'checking') this.#settle(reader, refused('card_removed'), identity);
    });
    const read = pinTouchReadOf(identity);
    if (!read) return void this.#settle(reader, refused('unreadable_identity'), identity);
    const anchors = this.#o.anchors();
    if (anchors.length === 0) return void this.#settle(reader, refused('pin_touch_unavailable'), identity);
    const input = this.#o.lookup.lookupInput();
    const cert = checkCertificate(read.certDer, anchors, input.health.state === 'clock_unsure' ? undefined : input.now);
    if (!cert.ok) return void this.#fail(reader, cert.code, identity);
    const [identityKeys, certKeys] = await Promise.all([
      this.#o.lookup.keysFor(identity),
      identity.kind === 'mykey' ? this.#o.lookup.keysFor({ kind: 'cert', certDer: read.certDer }) : Promise.resolve(undefined),
    ]);
    if (epoch !== this.#epoch) return undefined; // another touch came meanwhile
    const b = bindCertificate({ ...this.#o.lookup.lookupInput(), identity, certDer: read.certDer, identityKeys, certKeys });
    if (b.verdict === 'answer') {
      this.#settle(reader, b.decision, identity);
      return b.decision;
    }
    if (b.verdict === 'unbound') return void this.#fail(reader, 'pin_touch_cert_unbound', identity);
    if (read.pin.state === 'blocked') return void this.#fail(reader, 'pin_blocked', identity);
    if (this.#o.cards.isCardPresent?.(reader) === false) return void this.#settle(reader, refused('card_removed'), identity);
    this.#stats.pinTouches++;
    this.#pending = { reader, identity, cert: cert.value, certDer: read.certDer, identityKeys, certKeys };
    this.#go({ step: 'pin', ...(read.pin.state === 'open' ? { triesLeft: read.pin.triesLeft } : {}) });
    return undefined;
  }

  /** The PIN typed on the page. Goes to the card only. */
  pin(pin: string): ActionReply {
    const p = this.#pending;
    if (this.#view.step !== 'pin' || !p) return reject('conflict', 'no touch is waiting for a PIN');
    if (typeof pin !== 'string' || !PIN_RE.test(pin)) return reject('validation_failed', 'the PIN is 4 digits');
    this.#go({ step: 'checking' });
    const epoch = this.#epoch;
    this.#running = this.#check(p, pin, epoch).finally(() => (this.#running = undefined));
    return { ok: true };
  }

  /** The holder or the staff gave up (the page's cancel). */
  cancel(): ActionReply {
    const p = this.#pending;
    if (!p || this.#view.step !== 'pin') return this.active ? reject('conflict', 'the card is being checked') : { ok: true };
    this.#settle(p.reader, refused('pin_touch_cancelled'), p.identity);
    return { ok: true };
  }

  /** Ends the flow and waits for a card exchange in progress (its answer is dropped). */
  async stop(): Promise<void> {
    this.#end();
    await this.#running?.catch(() => undefined);
  }

  async #check(p: Pending, pin: string, epoch: number): Promise<void> {
    const t0 = this.#clock();
    const challenge = makeChallenge(this.#o.random);
    let signature: Uint8Array;
    try {
      signature = await this.#sign(p.reader, pin, touchMessage(challenge));
    } catch (err) {
      if (epoch !== this.#epoch) return;
      const e = err instanceof MyKeyError ? err : new MyKeyError('internal', 'the card could not sign', { cause: err });
      if (!(err instanceof MyKeyError)) this.#log.error('PIN-checked touch failed unexpectedly', { error: String(err) });
      if (e.code === 'pin_wrong') {
        this.#stats.pinFailures++;
        const triesLeft = Number(e.details?.triesLeft);
        this.#verdict({ outcome: 'pin_wrong', code: 'pin_wrong', ms: this.#clock() - t0 });
        this.#go({ step: 'pin', retry: 'pin_wrong', ...(Number.isInteger(triesLeft) ? { triesLeft } : {}) });
        return;
      }
      this.#fail(p.reader, e.code, p.identity, t0);
      return;
    }
    if (epoch !== this.#epoch) return;
    const v = verifyTouchSignature(p.cert, challenge, signature);
    if (!v.ok) return this.#fail(p.reader, v.code, p.identity, t0);
    // Verified. What the edge holds now decides (a suspension or unlink applied meanwhile counts).
    const b = bindCertificate({ ...this.#o.lookup.lookupInput(), identity: p.identity, certDer: p.certDer, identityKeys: p.identityKeys, certKeys: p.certKeys });
    if (b.verdict === 'unbound') return this.#fail(p.reader, 'pin_touch_cert_unbound', p.identity, t0);
    if (b.verdict === 'pin') this.#stats.pinVerified++;
    this.#settle(p.reader, b.decision, p.identity);
    this.#verdict({ outcome: b.decision.outcome, ms: this.#clock() - t0 });
  }

  /** VERIFY + SIGN on a new exclusive session, with the touch pipeline kept off the card meanwhile. */
  async #sign(reader: string, pin: string, message: Uint8Array): Promise<Uint8Array> {
    await this.#o.pause?.stop();
    try {
      const session = await this.#o.cards.connect(reader);
      try {
        return await signChallenge(session, pin, message);
      } finally {
        await session.close(); // resets the card: no verified PIN outlives the session
      }
    } finally {
      this.#o.pause?.start();
    }
  }

  #fail(reader: string, code: string, identity: TouchIdentity, t0?: number): void {
    this.#stats.pinFailures++;
    this.#log.debug('PIN-checked touch refused', { code });
    this.#settle(reader, refused(code), identity);
    if (t0 !== undefined) this.#verdict({ outcome: 'refused', code, ms: this.#clock() - t0 });
  }

  #settle(reader: string, decision: LookupDecision | Refusal, identity: TouchIdentity): void {
    this.#end();
    this.#o.lookup.settle(reader, decision, identity);
  }

  /** Forgets the touch held (if any) and shows the touch screen again. */
  #end(): void {
    this.#epoch++;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#offRemoved?.();
    this.#offRemoved = undefined;
    this.#pending = undefined;
    if (this.#view.step !== 'off') this.#show({ step: 'off' });
  }

  /** Enters a step of the held touch: the PIN pad's time limit starts again. */
  #go(view: PinTouchView): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (view.step === 'pin') {
      const epoch = this.#epoch;
      this.#timer = setTimeout(() => {
        const p = this.#pending;
        if (epoch === this.#epoch && p && this.#view.step === 'pin') this.#settle(p.reader, refused('pin_touch_timeout'), p.identity);
      }, this.#timeoutMs);
      this.#timer.unref();
    }
    this.#show(view);
  }

  #show(view: PinTouchView): void {
    this.#view = view;
    for (const l of this.#views) {
      try {
        l(view);
      } catch (err) {
        this.#log.error('PIN touch view listener threw', { error: err });
      }
    }
  }

  #verdict(v: PinVerdict): void {
    for (const l of this.#verdicts) {
      try {
        l(v);
      } catch (err) {
        this.#log.error('PIN touch verdict listener threw', { error: err });
      }
    }
  }
}
