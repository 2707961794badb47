// The sync agent's calls to the hub's device API (mutual TLS with the device certificate in
// production; plain HTTP for loopback tests), over the one shared hub client (shared/hub-client.ts):
//
//   GET {hubUrl}/v1/device/config                  -> DeviceConfig (shared/device-api.ts)
//   GET {hubUrl}/v1/device/snapshot                -> Snapshot (shared/sync.ts)
//   GET {hubUrl}/v1/device/changes?after=N&limit=M -> ChangesPage (shared/device-api.ts)
//
// Bodies are size-capped and schema-checked by the shared client; failures are MyKeyErrors with its
// codes. The hub's Date header comes back with each answer for the clock check.
import { ChangesPage, DeviceConfig } from '../../shared/device-api.ts';
import { HubHttpClient, type HubTls } from '../../shared/hub-client.ts';
import { Snapshot } from '../../shared/sync.ts';

/** TLS material for the hub and the broker: the hub CA, and the device's certificate and key (PEM). */
export type TlsMaterial = HubTls;

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

// A page of at most 1000 entries of at most 64 keys each stays far below this.
const MAX_SMALL_BODY = 16 * 1024 * 1024;

export class HubClient {
  readonly #http: HubHttpClient;
  readonly #maxSnapshotBytes: number;

  constructor(opts: HubClientOptions) {
    this.#http = new HubHttpClient({ baseUrl: opts.hubUrl, tls: opts.tls, fetch: opts.fetch, timeoutMs: opts.timeoutMs ?? 20_000, maxBytes: MAX_SMALL_BODY });
    this.#maxSnapshotBytes = opts.maxSnapshotBytes ?? 256 * 1024 * 1024;
  }

  /** The device's edge id, service and the service's sync secret. */
  async config(): Promise<HubAnswer<DeviceConfig>> {
    return strip(await this.#http.call({ method: 'GET', path: 'v1/device/config', schema: DeviceConfig, what: 'config' }));
  }

  /** The service's mappings at the hub's head seq. */
  async snapshot(): Promise<HubAnswer<Snapshot>> {
    // gzip: a snapshot of a large service is tens of megabytes over shop Wi-Fi; the cap counts decoded bytes.
    return strip(await this.#http.call({ method: 'GET', path: 'v1/device/snapshot', schema: Snapshot, maxBytes: this.#maxSnapshotBytes, gzip: true, what: 'snapshot' }));
  }

  /** Entries after `after` (ordered), at most `limit`, and the hub's head seq. */
  async changes(after: number, limit: number): Promise<HubAnswer<ChangesPage>> {
    return strip(await this.#http.call({ method: 'GET', path: `v1/device/changes?after=${after}&limit=${limit}`, schema: ChangesPage, what: 'changes' }));
  }
}

function strip<T>(a: { value: T; hubDate?: number }): HubAnswer<T> {
  return a.hubDate === undefined ? { value: a.value } : { value: a.value, hubDate: a.hubDate };
}
