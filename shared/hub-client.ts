// The one HTTP client of the hub, for the edge (sync, counter registration) and the provisioning
// tools (enrollment, self-test, rotation, decommission). It speaks TLS with the device certificate
// (mutual TLS), TLS trusting one pinned CA alone, or plain HTTP (loopback tests and a development
// hub). Every answer is read up to a size cap and checked against the shared schema of the route;
// every failure is a MyKeyError with one stable code, decided here only:
//   - no connection: `unavailable`; no answer in time: `timeout`; a server certificate that does not
//     chain to the trusted CA (or names another host): `hub_ca_mismatch`;
//   - an answer above the cap: `payload_too_large` (a gzip answer, which a call may accept, is capped
//     on its decoded bytes, so a small compressed body cannot unpack into an unbounded one);
//   - a status other than the expected ones: the `code` of its problem JSON (RFC 9457), or else one
//     derived from the status (`codeForStatus`); `details.status` carries the status;
//   - an expected status whose body is not JSON or not the schema: `validation_failed`.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createGunzip } from 'node:zlib';
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { isErrorCode, MyKeyError, type ErrorCode } from './errors.ts';

/** TLS material: the CA to trust (alone), and the device certificate and key for mutual TLS (PEM). */
export interface HubTls {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface HubClientOptions {
  /** The hub base URL: `https://hub.example:8443` (device API) or `http://127.0.0.1:port` in tests. */
  baseUrl: string;
  tls?: HubTls;
  /** Per request. Default 10 s. */
  timeoutMs?: number;
  /** Largest answer body accepted unless a call says otherwise. Default 1 MiB. */
  maxBytes?: number;
  /** Replaces the node:http(s) transport (TLS is then the fetch's business). */
  fetch?: typeof globalThis.fetch;
}

/** One call: the route, the statuses that count as success, and the schema of a successful body. */
export interface HubCall<S extends TSchema | undefined> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path and query, relative to the base URL (`v1/device/config`, or `/v1/...` from the origin). */
  path: string;
  body?: unknown;
  /** Default [200]. */
  expect?: readonly number[];
  /** Schema of a successful body; without it the body is not read as JSON. */
  schema?: S;
  maxBytes?: number;
  /** Ask for a gzip-encoded answer (RFC 9110 12.5.3 Accept-Encoding) and decode it; maxBytes caps the decoded body. */
  gzip?: boolean;
  /** What is being done, for messages ("the enrollment", "snapshot"). */
  what: string;
}

/** A successful answer: its status, the checked body and the hub's clock (Date header). */
export interface HubAnswer<T> {
  status: number;
  value: T;
  /** The hub's Date header (ms since the epoch), when present. */
  hubDate?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_BYTES = 1024 * 1024;

/** The code of a refusal that carried no problem JSON, from its HTTP status. */
export function codeForStatus(status: number): ErrorCode {
  const byStatus: Record<number, ErrorCode> = {
    401: 'unauthorized',
    403: 'forbidden',
    404: 'not_found',
    405: 'method_not_allowed',
    409: 'conflict',
    413: 'payload_too_large',
    415: 'unsupported_media_type',
    429: 'rate_limited',
  };
  return byStatus[status] ?? (status >= 500 ? 'unavailable' : 'bad_request');
}

/** A refusal (status and body text) as a MyKeyError with the problem's code. */
export function problemError(status: number, text: string, what: string): MyKeyError {
  let code = codeForStatus(status);
  let detail = '';
  try {
    const p = JSON.parse(text) as { code?: unknown; detail?: unknown; title?: unknown };
    if (isErrorCode(p.code)) code = p.code;
    detail = typeof p.detail === 'string' ? p.detail : typeof p.title === 'string' ? p.title : '';
  } catch {
    detail = text.slice(0, 200);
  }
  return new MyKeyError(code, `${what}: HTTP ${status} ${code}${detail ? `: ${detail.slice(0, 300)}` : ''}`, { details: { status } });
}

// OpenSSL verification failures (as Node names them) and a host name the certificate does not carry:
// the server is not the hub whose CA this client trusts.
const TLS_TRUST_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A transport failure (no connection, no answer in time, an untrusted server) as a MyKeyError. */
export function transportError(where: string, e: unknown): MyKeyError {
  if (e instanceof MyKeyError) return e;
  const c = (e as { cause?: { code?: string; message?: string }; code?: string; message?: string; name?: string } | undefined) ?? {};
  const why = c.cause?.code ?? c.code ?? c.cause?.message ?? c.message ?? String(e);
  if (c.name === 'TimeoutError' || why === 'ETIMEDOUT') return new MyKeyError('timeout', `no answer from ${where} in time`, { cause: e });
  if (TLS_TRUST_ERRORS.has(why)) return new MyKeyError('hub_ca_mismatch', `${where} presented a certificate that does not chain to the trusted hub device CA (${why})`, { cause: e });
  return new MyKeyError('unavailable', `cannot reach ${where} (${why})`, { cause: e });
}

const checks = new WeakMap<TSchema, TypeCheck<TSchema>>();
function checkerOf(schema: TSchema): TypeCheck<TSchema> {
  let c = checks.get(schema);
  if (!c) {
    c = TypeCompiler.Compile(schema);
    checks.set(schema, c);
  }
  return c;
}

/** Checks a value against a shared schema; throws validation_failed naming the first problem. */
export function checkAnswer<S extends TSchema>(schema: S, value: unknown, what: string): Static<S> {
  const c = checkerOf(schema);
  if (c.Check(value)) return value as Static<S>;
  const first = c.Errors(value).First();
  throw new MyKeyError('validation_failed', `${what}: the hub's answer does not match its schema (${first ? `${first.path || '/'}: ${first.message}` : 'invalid'})`);
}

interface RawAnswer {
  status: number;
  body: Buffer;
  date?: string;
}

/** A client of one hub base URL. */
export class HubHttpClient {
  readonly #base: URL;
  readonly #o: HubClientOptions;

  constructor(opts: HubClientOptions) {
    this.#base = new URL(opts.baseUrl.endsWith('/') ? opts.baseUrl : `${opts.baseUrl}/`);
    this.#o = opts;
  }

  /** The URL a path resolves to. */
  url(path: string): URL {
    return new URL(path, this.#base);
  }

  /** Sends a call; resolves with the checked body of an expected status, or throws a MyKeyError. */
  async call<S extends TSchema | undefined>(call: HubCall<S>): Promise<HubAnswer<S extends TSchema ? Static<S> : undefined>> {
    type T = S extends TSchema ? Static<S> : undefined;
    const url = this.url(call.path);
    const maxBytes = call.maxBytes ?? this.#o.maxBytes ?? DEFAULT_MAX_BYTES;
    const raw = this.#o.fetch ? await this.#viaFetch(url, call, maxBytes) : await this.#viaNode(url, call, maxBytes);
    const text = raw.body.toString('utf8');
    if (!(call.expect ?? [200]).includes(raw.status)) throw problemError(raw.status, text, call.what);
    const hubDate = raw.date ? Date.parse(raw.date) : NaN;
    const withDate = (value: T): HubAnswer<T> => (Number.isFinite(hubDate) ? { status: raw.status, value, hubDate } : { status: raw.status, value });
    if (!call.schema) return withDate(undefined as T);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new MyKeyError('validation_failed', `${call.what}: the hub's answer is not JSON`, { cause: e });
    }
    return withDate(checkAnswer(call.schema, json, call.what) as T);
  }

  async #viaFetch(url: URL, call: HubCall<TSchema | undefined>, maxBytes: number): Promise<RawAnswer> {
    let res: Response;
    try {
      res = await this.#o.fetch!(url, {
        method: call.method,
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? DEFAULT_TIMEOUT_MS),
        headers: { accept: 'application/json', ...(call.body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
      });
    } catch (e) {
      throw transportError(url.origin, e);
    }
    const len = Number(res.headers.get('content-length') ?? 0);
    if (len > maxBytes) throw new MyKeyError('payload_too_large', `${call.what}: the hub's answer of ${len} bytes is above ${maxBytes}`);
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > maxBytes) throw new MyKeyError('payload_too_large', `${call.what}: the hub's answer of ${body.length} bytes is above ${maxBytes}`);
    return { status: res.status, body, date: res.headers.get('date') ?? undefined };
  }

  #viaNode(url: URL, call: HubCall<TSchema | undefined>, maxBytes: number): Promise<RawAnswer> {
    const https = url.protocol === 'https:';
    if (!https && url.protocol !== 'http:') return Promise.reject(new MyKeyError('validation_failed', `the hub URL must be https:// (got ${url.protocol})`));
    const tls = this.#o.tls ?? {};
    const payload = call.body === undefined ? undefined : Buffer.from(JSON.stringify(call.body));
    const req = (https ? httpsRequest : httpRequest)(url, {
      method: call.method,
      headers: {
        accept: 'application/json',
        ...(call.gzip ? { 'accept-encoding': 'gzip' } : {}),
        ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
      },
      timeout: this.#o.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      // The given CA alone is trusted (no system roots), and the host name is checked against it.
      ...(https ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true, minVersion: 'TLSv1.2' as const } : {}),
    });
    return new Promise((resolve, reject) => {
      let settled = false;
      const failed = (e: unknown) => {
        if (settled) return;
        settled = true;
        reject(transportError(url.origin, e));
        req.destroy();
      };
      req.on('timeout', () => failed(new MyKeyError('timeout', `${call.what}: no answer from ${url.origin} in time`)));
      req.on('error', failed);
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let n = 0;
        const encoding = String(res.headers['content-encoding'] ?? '')
          .trim()
          .toLowerCase();
        // Decoded on the libuv pool as it arrives; the cap counts decoded bytes.
        const gunzip = call.gzip && (encoding === 'gzip' || encoding === 'x-gzip') ? createGunzip() : undefined;
        const body = gunzip ? res.pipe(gunzip) : res;
        const stop = (e: unknown) => {
          gunzip?.destroy();
          failed(e);
        };
        body.on('data', (c: Buffer) => {
          n += c.length;
          if (n > maxBytes) stop(new MyKeyError('payload_too_large', `${call.what}: the hub's answer is above ${maxBytes} bytes`));
          else chunks.push(c);
        });
        gunzip?.on('error', (e) => stop(new MyKeyError('validation_failed', `${call.what}: the hub's gzip answer does not decode`, { cause: e })));
        res.on('error', stop);
        res.on('aborted', () => stop(new Error('the answer was cut off')));
        body.on('end', () => {
          if (settled) return;
          settled = true;
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks, n), date: res.headers.date });
        });
      });
      req.end(payload);
    });
  }
}
