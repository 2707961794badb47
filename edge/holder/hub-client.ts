// The companion's client of the hub's holder API: a challenge bound to one operation
// (POST /v1/challenges with `purpose`), then the operation with the card's proof. Answers are checked
// against the wire schemas of shared/messages.ts; a refusal keeps the hub's own code.
import { Value } from '@sinclair/typebox/value';
import { isErrorCode, MyKeyError } from '../../shared/errors.ts';
import { ChallengeResponse, HolderView, RegisterResponse, type ChallengeRequest, type Proof } from '../../shared/messages.ts';

export type HolderOperation = 'register' | 'status' | 'change_id' | 'invalidate' | 'unlink' | 'carry_over';

/** A view of the MyKey ID after an operation (register answers less: no history, no links). */
export type HolderResult = (HolderView & { created?: boolean }) | RegisterResponse;

export interface HubClientOptions {
  /** The hub's base URL (https://hub.example.jp). */
  hub: string;
  /** Time limit of one request, ms. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export class HolderHubClient {
  readonly #base: URL;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(opts: HubClientOptions) {
    this.#base = new URL(opts.hub);
    this.#timeoutMs = opts.timeoutMs ?? 15_000;
    this.#fetch = opts.fetch ?? fetch;
  }

  /** The hub's origin (scheme, host, port): the one web origin besides the companion's own page allowed to call it. */
  get origin(): string {
    return this.#base.origin;
  }

  /** Asks for a challenge bound to `binding`; returns its bytes, the base64url text and when it expires (ms). */
  async challenge(binding: ChallengeRequest): Promise<{ text: string; bytes: Uint8Array; expiresAt?: number }> {
    const body = await this.#post('/v1/challenges', binding, 201);
    if (!Value.Check(ChallengeResponse, body)) throw new MyKeyError('bad_request', 'the hub answered a challenge request with an unexpected body');
    return { text: body.challenge, bytes: new Uint8Array(Buffer.from(body.challenge, 'base64url')), expiresAt: Date.parse(body.expiresAt) };
  }

  /** Sends the operation with its proof(s); returns the MyKey ID as the hub now has it. */
  async perform(op: HolderOperation, proof: Proof, extra: { mykeyId?: string; serviceId?: string; previous?: Proof } = {}): Promise<HolderResult> {
    let path: string;
    let body: unknown;
    switch (op) {
      case 'register':
        [path, body] = ['/v1/mykey-ids', { proof }];
        break;
      case 'status':
        [path, body] = ['/v1/holder/status', { proof }];
        break;
      case 'invalidate':
        [path, body] = ['/v1/holder/invalidate', { proof }];
        break;
      case 'change_id':
        [path, body] = ['/v1/holder/mykey-id', { proof, mykeyId: extra.mykeyId }];
        break;
      case 'unlink':
        [path, body] = ['/v1/holder/unlink', { proof, serviceId: extra.serviceId }];
        break;
      case 'carry_over':
        [path, body] = ['/v1/holder/carry-over', { proof, previous: { proof: extra.previous } }];
        break;
    }
    const r = await this.#post(path, body, op === 'register' ? [200, 201] : 200);
    if (op === 'register' ? !Value.Check(RegisterResponse, r) : !Value.Check(HolderView, r)) {
      throw new MyKeyError('bad_request', 'the hub answered with an unexpected body');
    }
    return r as HolderResult;
  }

  async #post(path: string, body: unknown, expected: number | number[]): Promise<unknown> {
    let res: Response;
    try {
      res = await this.#fetch(new URL(path, this.#base), {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      throw new MyKeyError('hub_unreachable', `the hub at ${this.#base.origin} cannot be reached`, { cause: err });
    }
    const json: unknown = await res.json().catch(() => undefined);
    const ok = Array.isArray(expected) ? expected.includes(res.status) : res.status === expected;
    if (ok) return json;
    // Problem details (RFC 9457) with the hub's stable code; a proxy's HTML error page has none.
    const p = (json ?? {}) as { code?: unknown; detail?: unknown };
    if (isErrorCode(p.code)) throw new MyKeyError(p.code, typeof p.detail === 'string' ? p.detail : undefined, { details: { status: res.status } });
    throw new MyKeyError('hub_unreachable', `the hub at ${this.#base.origin} answered ${res.status}`);
  }
}
