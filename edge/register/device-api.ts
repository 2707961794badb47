// The two hub calls of counter registration, over the device API (mutual TLS with the device
// certificate; plain HTTP only for loopback tests):
//
//   POST {hub}/v1/device/challenges { serviceUserId }                  -> 201 { challenge, expiresAt }
//   POST {hub}/v1/device/links      { identity, serviceUserId, proof? } -> 201/200 LinkResponse
//
// The challenge is bound by the hub to this device, its service and that service ID: the holder's
// proof over it is good for that one link only.
//
// Answers are size-limited and checked; a problem answer becomes a MyKeyError with the hub's code.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Value } from '@sinclair/typebox/value';
import { isErrorCode, MyKeyError, type ErrorCode } from '../../shared/errors.ts';
import { ChallengeResponse, LinkResponse, type Proof } from '../../shared/messages.ts';

/** What the card says it is, as the hub takes it. */
export type LinkIdentity = { mykeyId: string } | { certificate: string };

/** Body of POST /v1/device/links. */
export interface CounterLink {
  identity: LinkIdentity;
  serviceUserId: string;
  proof?: Proof;
}

/** The hub as the registration flow needs it. */
export interface DeviceApi {
  /** A challenge for the holder's proof of one counter link (of `serviceUserId`, from this device). */
  counterChallenge(serviceUserId: string): Promise<{ challenge: string; expiresAt: string }>;
  link(body: CounterLink): Promise<LinkResponse>;
}

export interface HttpDeviceApiOptions {
  hubUrl: string;
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  timeoutMs?: number;
}

const MAX_ANSWER_BYTES = 64 * 1024;

function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 409) return 'conflict';
  if (status === 429) return 'rate_limited';
  if (status >= 500) return 'unavailable';
  return 'bad_request';
}

/** The device API over node:http(s). */
export class HttpDeviceApi implements DeviceApi {
  readonly #base: URL;
  readonly #o: HttpDeviceApiOptions;

  constructor(opts: HttpDeviceApiOptions) {
    this.#base = new URL(opts.hubUrl.endsWith('/') ? opts.hubUrl : `${opts.hubUrl}/`);
    this.#o = opts;
  }

  async counterChallenge(serviceUserId: string): Promise<{ challenge: string; expiresAt: string }> {
    const r = await this.#post('v1/device/challenges', { serviceUserId });
    if (r.status !== 201 || !Value.Check(ChallengeResponse, r.json)) throw this.#failure(r, 'challenge');
    return r.json;
  }

  async link(body: CounterLink): Promise<LinkResponse> {
    const r = await this.#post('v1/device/links', body);
    if ((r.status !== 200 && r.status !== 201) || !Value.Check(LinkResponse, r.json)) throw this.#failure(r, 'link');
    return r.json;
  }

  #failure(r: { status: number; json: unknown }, what: string): MyKeyError {
    const p = r.json as { code?: unknown; detail?: unknown } | undefined;
    const code = p && isErrorCode(p.code) ? p.code : r.status >= 200 && r.status < 300 ? 'validation_failed' : codeForStatus(r.status);
    const detail = p && typeof p.detail === 'string' ? p.detail.slice(0, 200) : `hub answered ${r.status}`;
    return new MyKeyError(code, `${what}: ${detail}`);
  }

  #post(path: string, body: unknown): Promise<{ status: number; json: unknown }> {
    const url = new URL(path, this.#base);
    const https = url.protocol === 'https:';
    const tls = this.#o.tls ?? {};
    const data = Buffer.from(JSON.stringify(body));
    const req = (https ? httpsRequest : httpRequest)(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'content-length': data.length },
      timeout: this.#o.timeoutMs ?? 10_000,
      ...(https ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true } : {}),
    });
    return new Promise((resolve, reject) => {
      const failed = (e: unknown) => reject(e instanceof MyKeyError ? e : new MyKeyError('unavailable', `hub unreachable: ${(e as Error).message}`, { cause: e }));
      req.on('timeout', () => req.destroy(new MyKeyError('unavailable', 'the hub did not answer in time')));
      req.on('error', failed);
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > MAX_ANSWER_BYTES) req.destroy(new MyKeyError('payload_too_large', 'hub answer too large'));
          else chunks.push(c);
        });
        res.on('error', failed);
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      });
      req.end(data);
    });
  }
}
