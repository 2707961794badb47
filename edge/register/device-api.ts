// The two hub calls of counter registration, over the device API (mutual TLS with the device
// certificate; plain HTTP only for loopback tests), through the one shared hub client:
//
//   POST {hub}/v1/device/challenges CounterChallengeRequest -> 201 ChallengeResponse
//   POST {hub}/v1/device/links      CounterLinkRequest      -> 201/200 LinkResponse
//
// The challenge is bound by the hub to this device, its service and that service ID: the holder's
// proof over it is good for that one link only. Answers are size-capped and schema-checked; a problem
// answer becomes a MyKeyError with the hub's code (shared/hub-client.ts).
import type { CounterLinkRequest, LinkIdentity as SharedLinkIdentity } from '../../shared/device-api.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { HubHttpClient, type HubTls } from '../../shared/hub-client.ts';
import { ChallengeResponse, LinkResponse } from '../../shared/messages.ts';

/** What the card says it is, as the hub takes it. */
export type LinkIdentity = SharedLinkIdentity;

/** Body of POST /v1/device/links. */
export type CounterLink = CounterLinkRequest;

/** The hub as the registration flow needs it. */
export interface DeviceApi {
  /** A challenge for the holder's proof of one counter link (of `serviceUserId`, from this device). */
  counterChallenge(serviceUserId: string): Promise<ChallengeResponse>;
  link(body: CounterLink): Promise<LinkResponse>;
}

export interface HttpDeviceApiOptions {
  hubUrl: string;
  tls?: HubTls;
  timeoutMs?: number;
}

// Both answers are a few hundred bytes.
const MAX_ANSWER_BYTES = 64 * 1024;

/** The device API over the shared client. */
export class HttpDeviceApi implements DeviceApi {
  readonly #http: HubHttpClient;

  constructor(opts: HttpDeviceApiOptions) {
    this.#http = new HubHttpClient({ baseUrl: opts.hubUrl, tls: opts.tls, timeoutMs: opts.timeoutMs ?? 10_000, maxBytes: MAX_ANSWER_BYTES });
  }

  async counterChallenge(serviceUserId: string): Promise<ChallengeResponse> {
    const r = await hubCall(this.#http.call({ method: 'POST', path: 'v1/device/challenges', body: { serviceUserId }, expect: [201], schema: ChallengeResponse, what: 'challenge' }));
    return r.value;
  }

  async link(body: CounterLink): Promise<LinkResponse> {
    const r = await hubCall(this.#http.call({ method: 'POST', path: 'v1/device/links', body, expect: [200, 201], schema: LinkResponse, what: 'link' }));
    return r.value;
  }
}

/**
 * The registration flow reads `timeout` as the card's (it asks for the card again, registration.ts
 * CARD_RETRY_CODES); a hub that does not answer in time is `unavailable` to it, as it always was.
 */
async function hubCall<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof MyKeyError && e.code === 'timeout') throw new MyKeyError('unavailable', e.message, { cause: e });
    throw e;
  }
}
