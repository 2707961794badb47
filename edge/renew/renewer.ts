// The edge renews its own device certificate when the hub says so: after a device CA rotation
// (hub/pki/device-ca.ts) the device config answer carries `renewCertificate: true` for a certificate
// of the retired CA. The renewer asks at start and then every `intervalMs` (the sync agent's own
// config call cannot be listened to from here), and renews through POST /v1/device/rotate: a new key
// pair and CSR made here (shared/device-csr.ts), sent with the current certificate over mutual TLS.
//
// Files, a power cut in mind (each write is atomic and durable, edge/state/durable-file.ts):
//   1. the new key goes to `<key>.renew` (0600) before the CSR leaves;
//   2. the answer is checked (the certificate carries that key, is signed by the CA in the answer);
//   3. the CA certificate, then the device certificate are replaced; then `<key>.renew` is renamed
//      over the key. A cut between 3's steps leaves a certificate whose key is `<key>.renew`:
//      `recoverRenewal` (run before the TLS files are read) finishes the rename, or drops a
//      `<key>.renew` that matches nothing (the CSR never got an answer).
// The hub keeps the current certificate valid until the new one is used or its overlap passes, so
// the shared TLS object is switched in place and `onRenewed` reconnects (edge/main.ts restarts the
// sync agent, whose next MQTT session and HTTP calls read the new material).
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { DeviceConfig, DeviceRotateResponse } from '../../shared/device-api.ts';
import { certMatchesKey, createCsr, generateDeviceKey, issuedBy } from '../../shared/device-csr.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { HubHttpClient, type HubTls } from '../../shared/hub-client.ts';
import type { Logger } from '../../shared/log.ts';
import { syncDir, writeFileDurably } from '../state/durable-file.ts';

/** Where the edge's TLS files are (edge config `tls`). */
export interface TlsPaths {
  key: string;
  cert: string;
  ca: string;
}

export interface CertRenewerOptions {
  hubUrl: string;
  edgeId: string;
  paths: TlsPaths;
  /** The TLS material the agent's clients read at each connection; updated in place on renewal. */
  tls: HubTls;
  log: Logger;
  /** How often to ask the hub. Default 6 hours. */
  intervalMs?: number;
  /** After the new files are in place: reconnect with them. A throw is logged. */
  onRenewed?: () => void | Promise<void>;
  timeoutMs?: number;
}

/** The pending key of a renewal in flight. */
export const pendingKeyPath = (paths: TlsPaths): string => `${paths.key}.renew`;

/**
 * Finishes or drops a renewal cut short by a power cut; returns what it did. Run before the TLS
 * files are read (synchronous: the agent reads them synchronously in its constructor).
 */
export function recoverRenewal(paths: TlsPaths): 'none' | 'completed' | 'dropped' {
  const pending = pendingKeyPath(paths);
  if (!existsSync(pending)) return 'none';
  let cert: string | undefined;
  try {
    cert = readFileSync(paths.cert, 'utf8');
  } catch {
    cert = undefined;
  }
  if (cert && certMatchesKey(cert, readFileSync(pending, 'utf8'))) {
    renameSync(pending, paths.key);
    return 'completed';
  }
  rmSync(pending, { force: true });
  return 'dropped';
}

export class CertRenewer {
  readonly #o: CertRenewerOptions;
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<unknown> | undefined;

  constructor(opts: CertRenewerOptions) {
    this.#o = opts;
  }

  #client(): HubHttpClient {
    return new HubHttpClient({ baseUrl: this.#o.hubUrl, tls: this.#o.tls, timeoutMs: this.#o.timeoutMs ?? 20_000 });
  }

  /** Asks now, then every interval. Failures are logged and retried at the next tick. */
  start(): void {
    if (this.#timer) return;
    const tick = () => {
      if (this.#running) return;
      this.#running = this.check()
        .catch((e: unknown) => this.#o.log.warn('certificate renewal check failed; retrying later', { code: e instanceof MyKeyError ? e.code : 'internal' }))
        .finally(() => (this.#running = undefined));
    };
    this.#timer = setInterval(tick, this.#o.intervalMs ?? 6 * 3600_000);
    this.#timer.unref?.();
    tick();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** Asks the hub whether this certificate must be renewed, and renews it if so. */
  async check(): Promise<'renewed' | 'current'> {
    const { value } = await this.#client().call({ method: 'GET', path: 'v1/device/config', schema: DeviceConfig, what: 'config' });
    if (value.renewCertificate !== true) return 'current';
    await this.renew();
    return 'renewed';
  }

  /** A new key and certificate through POST /v1/device/rotate, stored atomically; then `onRenewed`. */
  async renew(): Promise<void> {
    const { paths, tls, log } = this.#o;
    const { keyPair, keyPem } = await generateDeviceKey();
    const pending = pendingKeyPath(paths);
    await writeFileDurably(pending, keyPem);
    const csrPem = await createCsr(this.#o.edgeId, keyPair);
    let answer: DeviceRotateResponse;
    try {
      answer = (await this.#client().call({ method: 'POST', path: 'v1/device/rotate', body: { csrPem }, expect: [201], schema: DeviceRotateResponse, what: 'certificate renewal' })).value;
    } catch (e) {
      rmSync(pending, { force: true });
      throw e;
    }
    // The hub's answer is checked before anything is replaced: it must be for this edge and this key,
    // and signed by the CA it tells us to trust.
    if (answer.edgeId !== this.#o.edgeId || !certMatchesKey(answer.certPem, keyPem) || !issuedBy(answer.certPem, answer.caPem)) {
      rmSync(pending, { force: true });
      throw new MyKeyError('validation_failed', 'the renewed certificate is not for this edge and key, or not signed by the CA in the answer');
    }
    await writeFileDurably(paths.ca, answer.caPem);
    await writeFileDurably(paths.cert, answer.certPem);
    renameSync(pending, paths.key);
    await syncDir(dirname(paths.key));
    tls.ca = answer.caPem;
    tls.cert = answer.certPem;
    tls.key = keyPem;
    log.info('device certificate renewed', { notAfter: answer.notAfter });
    // The first use on the device API makes the new certificate the device's (the hub supersedes the
    // old one), so the broker knows it before the sync session reconnects. A failure here is not
    // fatal: the sync agent's own first call does the same.
    await this.#client()
      .call({ method: 'GET', path: 'v1/device/config', schema: DeviceConfig, what: 'config' })
      .catch((e: unknown) => log.warn('the renewed certificate was not confirmed yet', { code: e instanceof MyKeyError ? e.code : 'internal' }));
    try {
      await this.#o.onRenewed?.();
    } catch (e) {
      log.error('reconnecting with the renewed certificate failed', { error: e });
    }
  }
}
