// What the holder can do from home, each as one request of the page: create the MyKey ID, see it,
// choose another, invalidate it, unlink a service, carry it over to a new card (two steps: the card
// bound now signs for role `previous`, then the new card for role `new`; the hub is called only once
// both proofs exist, so a card taken away or a wrong PIN in between leaves nothing half-done).
// One card operation at a time.
import { createHash } from 'node:crypto';
import { MyKeyError } from '../../shared/errors.ts';
import { normalizeMyKeyId, SERVICE_ID_PATTERN } from '../../shared/ids.ts';
import type { Proof } from '../../shared/messages.ts';
import { proveWithCard, readerState, type HolderReaders, type ReaderState } from './card-proof.ts';
import type { HolderHubClient, HolderResult } from './hub-client.ts';

/** One request of the page. */
export type FlowRequest =
  | { op: 'register' | 'status' | 'invalidate'; pin: string }
  | { op: 'change_id'; pin: string; mykeyId: string }
  | { op: 'unlink'; pin: string; serviceId: string }
  | { op: 'carry_over_previous'; pin: string }
  | { op: 'carry_over_new'; pin: string };

export type FlowResult = { step: 'done'; view: HolderResult } | { step: 'carry_over_new_card' };

export interface HolderFlowsOptions {
  readers: HolderReaders;
  hub: Pick<HolderHubClient, 'challenge' | 'perform'>;
  reader?: string;
  /** How long the previous card's proof is kept for the new card's step, ms (the hub's challenge TTL bounds it too). */
  carryOverMs?: number;
  now?: () => number;
}

const SERVICE_ID_RE = new RegExp(SERVICE_ID_PATTERN);

export class HolderFlows {
  readonly #o: HolderFlowsOptions;
  #busy = false;
  #previous: { proof: Proof; certHash: string; until: number } | undefined;

  constructor(o: HolderFlowsOptions) {
    this.#o = o;
  }

  /** Readers and card as they are now, and whether a carry-over waits for the new card. */
  state(): ReaderState & { busy: boolean; carryOver: boolean } {
    const { reader: _reader, ...s } = readerState(this.#o.readers, this.#o.reader);
    return { ...s, busy: this.#busy, carryOver: this.#pending() !== undefined };
  }

  /** Forgets a carry-over in progress (the page's cancel). */
  cancel(): void {
    this.#previous = undefined;
  }

  async run(req: FlowRequest): Promise<FlowResult> {
    if (this.#busy) throw new MyKeyError('holder_busy');
    this.#busy = true;
    try {
      return await this.#run(req);
    } finally {
      this.#busy = false;
    }
  }

  #pending() {
    const p = this.#previous;
    if (p && p.until < (this.#o.now ?? Date.now)()) this.#previous = undefined;
    return this.#previous;
  }

  async #run(req: FlowRequest): Promise<FlowResult> {
    const hub = this.#o.hub;
    const prove = (binding: Parameters<HolderHubClient['challenge']>[0], acceptCert?: (c: Uint8Array) => void) =>
      proveWithCard({ readers: this.#o.readers, reader: this.#o.reader, pin: req.pin, binding, challenge: (b) => hub.challenge(b), acceptCert });
    switch (req.op) {
      case 'register':
      case 'status':
      case 'invalidate': {
        const { proof } = await prove({ purpose: req.op });
        return { step: 'done', view: await hub.perform(req.op, proof) };
      }
      case 'change_id': {
        // Checked here so a typo costs no PIN try; the hub binds the challenge to the normalised form.
        const mykeyId = typeof req.mykeyId === 'string' ? normalizeMyKeyId(req.mykeyId) : undefined;
        if (!mykeyId) throw new MyKeyError('mykey_id_malformed');
        const { proof } = await prove({ purpose: 'change_id', mykeyId });
        return { step: 'done', view: await hub.perform('change_id', proof, { mykeyId }) };
      }
      case 'unlink': {
        if (typeof req.serviceId !== 'string' || !SERVICE_ID_RE.test(req.serviceId)) throw new MyKeyError('bad_request', 'not a service id');
        const { proof } = await prove({ purpose: 'unlink', serviceId: req.serviceId });
        return { step: 'done', view: await hub.perform('unlink', proof, { serviceId: req.serviceId }) };
      }
      case 'carry_over_previous': {
        this.#previous = undefined;
        const { proof, certDer, expiresAt } = await prove({ purpose: 'carry_over', role: 'previous' });
        // Kept no longer than the hub will accept its challenge (less a margin for the second card). The
        // hub's expiry is in the hub's clock: one that looks already past (a PC clock ahead) is ignored.
        const now = (this.#o.now ?? Date.now)();
        const hubLimit = expiresAt !== undefined && expiresAt - 5_000 > now ? expiresAt - 5_000 : Infinity;
        const until = Math.min(now + (this.#o.carryOverMs ?? 110_000), hubLimit);
        this.#previous = { proof, certHash: hashOf(certDer), until };
        return { step: 'carry_over_new_card' };
      }
      case 'carry_over_new': {
        const previous = this.#pending();
        if (!previous) throw new MyKeyError('holder_step_missing');
        const { proof } = await prove({ purpose: 'carry_over', role: 'new' }, (certDer) => {
          // Before the PIN: the same card twice would only be refused by the hub after using a try.
          if (hashOf(certDer) === previous.certHash) throw new MyKeyError('holder_same_card');
        });
        // Both proofs exist: one call carries the MyKey ID over (or changes nothing).
        this.#previous = undefined;
        return { step: 'done', view: await hub.perform('carry_over', proof, { previous: previous.proof }) };
      }
      default:
        throw new MyKeyError('bad_request', 'unknown operation');
    }
  }
}

function hashOf(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}
