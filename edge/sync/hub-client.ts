// The edge's client of the hub's device HTTP API (TLS with the device's client certificate in
// production; plain HTTP is for loopback tests):
//
//   GET {hubUrl}/v1/device/config               -> { edgeId, serviceId, syncSecret }
//   GET {hubUrl}/v1/device/snapshot             -> Snapshot (shared/sync.ts)
//   GET {hubUrl}/v1/device/changes?after=N&limit=M -> { headSeq, entries }
//
// Every body is size-limited, parsed and schema-checked here; failures are MyKeyErrors with stable
// codes (`unavailable` for the network and 5xx, `validation_failed` for bodies, the HTTP status'
// code otherwise). The hub's Date header comes back with each answer for the clock check.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { MyKeyError, type ErrorCode, type Result } from '../../shared/errors.ts';
import type { ChangeEntry, Snapshot } from '../../shared/sync.ts';
import { checkChanges, checkConfig, checkSnapshot, type DeviceConfig } from './payloads.ts';

/** TLS material for the hub and the broker: the hub CA, and the device's certificate and key (PEM). */
export interface TlsMaterial {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface HubClientOptions {
  /** `https://hub.example:8443` (or `http://127.0.0.1:port` in tests). */
  hubUrl: string;
  tls?: TlsMaterial;
  /** Replaces the built-in node:http(s) transport (TLS is then the fetch's business). */
  fetch?: typeof globalThis.fetch;
  /** Per request. Default 20 s. */
  timeoutMs?: number;
  /** Largest snapshot body accepted. Default 256 MiB. */
  maxSnapshotBytes?: number;
}

/** An answer and the hub's clock. */
export interface HubAnswer<T> {
  value: T;
  /** The hub's Date header (ms), when present. */
  hubDate?: number;
}

const MAX_SMALL_BODY = 16 * 1024 * 1024;

function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status >= 500) return 'unavailable';
  return 'bad_request';
}

export class HubClient {
  readonly #base: URL;
  readonly #o: HubClientOptions;

  constructor(opts: HubClientOptions) {
    this.#base = new URL(opts.hubUrl.endsWith('/') ? opts.hubUrl : `${opts.hubUrl}/`);
    this.#o = opts;
  }

  /** The device's edge id, service and the service's sync secret. */
  async config(): Promise<HubAnswer<DeviceConfig>> {
    return this.#get('v1/device/config', checkConfig, MAX_SMALL_BODY);
  }

  /** The service's mappings at the hub's head seq. */
  async snapshot(): Promise<HubAnswer<Snapshot>> {
    return this.#get('v1/device/snapshot', checkSnapshot, this.#o.maxSnapshotBytes ?? 256 * 1024 * 1024);
  }

  /** Entries after `after` (ordered), at most `limit`, and the hub's head seq. */
  async changes(after: number, limit: number): Promise<HubAnswer<{ headSeq: number; entries: ChangeEntry[] }>> {
    return this.#get(`v1/device/changes?after=${after}&limit=${limit}`, checkChanges, MAX_SMALL_BODY);
  }

  async #get<T>(path: string, check: (v: unknown) => Result<T>, maxBytes: number): Promise<HubAnswer<T>> {
    const url = new URL(path, this.#base);
    const { status, body, date } = this.#o.fetch ? await this.#viaFetch(url, maxBytes) : await this.#viaNode(url, maxBytes);
    if (status !== 200) throw new MyKeyError(codeForStatus(status), `hub answered ${status} for ${url.pathname}`);
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new MyKeyError('validation_failed', `hub body of ${url.pathname} is not JSON`, { cause: e });
    }
    const v = check(json);
    if (!v.ok) throw new MyKeyError(v.code, v.message);
    const hubDate = date ? Date.parse(date) : NaN;
    return Number.isFinite(hubDate) ? { value: v.value, hubDate } : { value: v.value };
  }

  async #viaFetch(url: URL, maxBytes: number): Promise<{ status: number; body: Buffer; date?: string }> {
    let res: Response;
    try {
      res = await this.#o.fetch!(url, { signal: AbortSignal.timeout(this.#o.timeoutMs ?? 20_000), headers: { accept: 'application/json' } });
    } catch (e) {
      throw new MyKeyError('unavailable', `hub unreachable: ${(e as Error).message}`, { cause: e });
    }
    const len = Number(res.headers.get('content-length') ?? 0);
    if (len > maxBytes) throw new MyKeyError('payload_too_large', `hub body of ${len} bytes`);
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > maxBytes) throw new MyKeyError('payload_too_large', `hub body of ${body.length} bytes`);
    return { status: res.status, body, date: res.headers.get('date') ?? undefined };
  }

  #viaNode(url: URL, maxBytes: number): Promise<{ status: number; body: Buffer; date?: string }> {
    const tls = this.#o.tls ?? {};
    const https = url.protocol === 'https:';
    const req = (https ? httpsRequest : httpRequest)(url, {
      method: 'GET',
      headers: { accept: 'application/json' },
      timeout: this.#o.timeoutMs ?? 20_000,
      ...(https ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true } : {}),
    });
    return new Promise((resolve, reject) => {
      const failed = (e: unknown) => reject(e instanceof MyKeyError ? e : new MyKeyError('unavailable', `hub unreachable: ${(e as Error).message}`, { cause: e }));
      req.on('timeout', () => {
        reject(new MyKeyError('timeout', 'hub did not answer in time'));
        req.destroy();
      });
      req.on('error', failed);
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > maxBytes) {
            reject(new MyKeyError('payload_too_large', `hub body above ${maxBytes} bytes`));
            req.destroy();
          } else chunks.push(c);
        });
        res.on('error', failed);
        res.on('aborted', () => failed(new Error('response aborted')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), date: res.headers.date }));
      });
      req.end();
    });
  }
}
