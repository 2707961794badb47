// Counter registration (サービスID登録): the holder touches the My Number Card, the service card's
// number is given (typed or scanned on the kiosk page, or sent on the command socket), and the edge
// asks the hub to link it (POST /v1/device/links). Where the holder's consent must be proven, the
// holder enters the PIN and the card signs a hub challenge bound to this device and this service ID
// (POST /v1/device/challenges); the proof goes with the link.
//
// The card's identity is held in memory only while the registration runs, and dropped when it ends,
// times out or is cancelled. The PIN is passed straight to the card and never kept, logged or shown.
import { MyKeyError, type ErrorCode } from '../../shared/errors.ts';
import { SERVICE_USER_ID_PATTERN } from '../../shared/ids.ts';
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import type { Proof } from '../../shared/messages.ts';
import type { ActionReply } from '../kiosk/server.ts';
import type { TouchIdentity } from '../lookup/decide.ts';
import type { HolderSigner } from './card-signer.ts';
import type { CounterLink, DeviceApi, LinkIdentity } from './device-api.ts';
import type { RegistrationView } from './view.ts';

export interface RegistrationFlowOptions {
  api: DeviceApi;
  /** Needed for the holder's proof; without it only services that do not require one can link. */
  signer?: HolderSigner;
  /** Always ask for the PIN (otherwise only when the hub says the service requires it). */
  requireHolderProof?: boolean;
  /** A step not finished within this is abandoned. */
  stepMs?: number;
  /** How long `done` or `failed` stays before the flow is off again. */
  resultMs?: number;
  log?: Logger;
}

interface HeldCard {
  reader: string;
  identity: TouchIdentity;
}

const SERVICE_USER_ID_RE = new RegExp(SERVICE_USER_ID_PATTERN);
const PIN_RE = /^[0-9]{4}$/;
/** Card troubles after which the holder can put the card back and try the PIN step again. */
const CARD_RETRY_CODES = new Set<ErrorCode>(['card_removed', 'card_error', 'card_response_malformed', 'timeout', 'reader_unavailable']);

const reject = (code: ErrorCode, message: string): ActionReply => ({ ok: false, code, message });
const accepted: ActionReply = { ok: true };

export class RegistrationFlow {
  readonly #o: Required<Omit<RegistrationFlowOptions, 'signer' | 'log'>> & { signer?: HolderSigner };
  readonly #log: Logger;
  readonly #listeners = new Set<(v: RegistrationView) => void>();
  #view: RegistrationView = { step: 'off' };
  #card: HeldCard | undefined;
  #offered: (HeldCard & { until: number }) | undefined;
  #serviceUserId: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Incremented whenever the flow leaves a step, so a late answer of an abandoned one is dropped. */
  #epoch = 0;
  #running: Promise<void> | undefined;
  readonly #stats = { started: 0, linked: 0, failed: 0, cancelled: 0 };

  constructor(opts: RegistrationFlowOptions) {
    this.#o = {
      api: opts.api,
      signer: opts.signer,
      requireHolderProof: opts.requireHolderProof ?? false,
      stepMs: opts.stepMs ?? 120_000,
      resultMs: opts.resultMs ?? 8000,
    };
    this.#log = opts.log ?? silentLogger;
  }

  /** Listens to view changes; returns the unsubscribe. A throwing listener is logged, never fatal. */
  on(listener: (v: RegistrationView) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  view(): RegistrationView {
    return this.#view;
  }

  /** True while a registration runs (touches then belong to it, not to the lookup). */
  get active(): boolean {
    return this.#view.step !== 'off';
  }

  /** True while the flow waits for the holder's card. */
  get wantsCard(): boolean {
    return this.#view.step === 'touch';
  }

  /** Aggregate counters. */
  stats(): Record<string, number> {
    return { ...this.#stats };
  }

  /**
   * A touch found the card not linked: keep it for `withinMs` so that "register" on the page can go
   * straight to the service card number. Any later touch or the time running out forgets it.
   */
  offer(reader: string, identity: TouchIdentity, withinMs = this.#o.resultMs): void {
    this.#offered = { reader, identity, until: Date.now() + withinMs };
  }

  /** Any touch that is not for this flow forgets the offered card. */
  forgetOffer(): void {
    this.#offered = undefined;
  }

  /** Starts registration mode (the page's button, or the command socket). */
  start(): ActionReply {
    if (this.#view.step === 'sending') return reject('conflict', 'a registration is being sent');
    this.#reset();
    this.#stats.started++;
    const offered = this.#offered;
    this.#offered = undefined;
    if (offered && offered.until >= Date.now()) {
      this.#card = { reader: offered.reader, identity: offered.identity };
      this.#go({ step: 'service_user_id' });
    } else this.#go({ step: 'touch' });
    return accepted;
  }

  /** The card touched while the flow waits for it. */
  cardTouched(reader: string, identity: TouchIdentity): void {
    if (!this.wantsCard) return;
    this.#card = { reader, identity };
    this.#go({ step: 'service_user_id' });
  }

  /** A touch whose card could not be read while the flow waits for it: keep waiting. */
  cardFailed(): void {
    if (this.wantsCard) this.#go({ step: 'touch' });
  }

  /** The service card number (typed, scanned or sent). */
  serviceUserId(value: string): ActionReply {
    if (this.#view.step !== 'service_user_id' || !this.#card) return reject('conflict', 'no card is waiting for a service card number');
    const v = typeof value === 'string' ? value.trim() : '';
    if (!SERVICE_USER_ID_RE.test(v)) return reject('validation_failed', 'a service card number is 1 to 64 printable ASCII characters');
    this.#serviceUserId = v;
    if (!this.#o.requireHolderProof) this.#send(undefined);
    else if (this.#o.signer) this.#go({ step: 'pin' });
    else this.#fail('internal', 'the holder proof is required but no card signer is configured');
    return accepted;
  }

  /** The holder's PIN for the proof. Passed to the card only. */
  pin(pin: string): ActionReply {
    if (this.#view.step !== 'pin' || !this.#card || this.#serviceUserId === undefined) return reject('conflict', 'the flow is not asking for the PIN');
    if (typeof pin !== 'string' || !PIN_RE.test(pin)) return reject('validation_failed', 'the PIN is 4 digits');
    this.#send(pin);
    return accepted;
  }

  /** Leaves registration mode; whatever was held is forgotten. */
  cancel(): ActionReply {
    if (this.#view.step === 'off') return accepted;
    if (this.#view.step !== 'done' && this.#view.step !== 'failed') this.#stats.cancelled++;
    this.#reset();
    this.#go({ step: 'off' });
    return accepted;
  }

  /** Ends the flow and waits for a hub call in progress (its answer is dropped). */
  async stop(): Promise<void> {
    this.#reset();
    this.#view = { step: 'off' };
    await this.#running?.catch(() => undefined);
  }

  #send(pin: string | undefined): void {
    const card = this.#card!;
    const serviceUserId = this.#serviceUserId!;
    this.#go({ step: 'sending' });
    const epoch = this.#epoch;
    this.#running = this.#link(card, serviceUserId, pin, epoch).finally(() => (this.#running = undefined));
  }

  async #link(card: HeldCard, serviceUserId: string, pin: string | undefined, epoch: number): Promise<void> {
    const identity: LinkIdentity = card.identity.kind === 'mykey' ? { mykeyId: card.identity.mykeyId } : { certificate: Buffer.from(card.identity.certDer).toString('base64') };
    const body: CounterLink = { identity, serviceUserId };
    try {
      if (pin !== undefined) body.proof = await this.#proof(card.reader, pin, serviceUserId);
      if (epoch !== this.#epoch) return;
      const r = await this.#o.api.link(body);
      if (epoch !== this.#epoch) return;
      this.#stats.linked++;
      this.#log.info('service ID linked at the counter', { replaced: r.replaced !== undefined });
      this.#card = undefined;
      this.#serviceUserId = undefined;
      this.#go({ step: 'done', serviceUserId: r.serviceUserId, replaced: r.replaced !== undefined });
      this.#after(this.#o.resultMs);
    } catch (err) {
      if (epoch !== this.#epoch) return;
      const code: ErrorCode = err instanceof MyKeyError ? err.code : 'internal';
      if (code === 'pin_wrong') {
        const triesLeft = Number((err as MyKeyError).details?.triesLeft);
        this.#go({ step: 'pin', retry: 'pin_wrong', ...(Number.isInteger(triesLeft) ? { triesLeft } : {}) });
      } else if (pin !== undefined && CARD_RETRY_CODES.has(code)) {
        this.#go({ step: 'pin', retry: code === 'card_removed' ? 'card_removed' : 'card_error' });
      } else if (pin === undefined && code === 'holder_proof_required' && this.#o.signer) {
        // The service wants the holder's consent: ask for the PIN and send again with the proof.
        this.#go({ step: 'pin' });
      } else {
        if (!(err instanceof MyKeyError)) this.#log.error('registration failed unexpectedly', { error: err });
        this.#fail(code, err instanceof Error ? err.message : String(err));
      }
    }
  }

  async #proof(reader: string, pin: string, serviceUserId: string): Promise<Proof> {
    const signer = this.#o.signer;
    if (!signer) throw new MyKeyError('internal', 'no card signer is configured');
    const { challenge } = await this.#o.api.counterChallenge(serviceUserId);
    const { certDer, signature } = await signer.sign(reader, pin, new Uint8Array(Buffer.from(challenge, 'base64url')));
    return { challenge, certificate: Buffer.from(certDer).toString('base64'), signature: Buffer.from(signature).toString('base64') };
  }

  #fail(code: ErrorCode, message: string): void {
    this.#stats.failed++;
    this.#log.info('counter registration failed', { code, message });
    this.#card = undefined;
    this.#serviceUserId = undefined;
    this.#go({ step: 'failed', code });
    this.#after(this.#o.resultMs);
  }

  /** Enters a step: its own time limit starts, listeners hear of it. */
  #go(view: RegistrationView): void {
    this.#epoch++;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#view = view;
    if (view.step !== 'off' && view.step !== 'done' && view.step !== 'failed') {
      this.#timer = setTimeout(() => this.#fail('timeout', 'the registration step timed out'), this.#o.stepMs);
      this.#timer.unref();
    }
    for (const l of this.#listeners) {
      try {
        l(view);
      } catch (err) {
        this.#log.error('registration listener threw', { error: err });
      }
    }
  }

  /** Returns to off after `ms` (after done or failed). */
  #after(ms: number): void {
    const epoch = this.#epoch;
    this.#timer = setTimeout(() => {
      if (epoch === this.#epoch) this.#go({ step: 'off' });
    }, ms);
    this.#timer.unref();
  }

  #reset(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#epoch++;
    this.#card = undefined;
    this.#serviceUserId = undefined;
  }
}
