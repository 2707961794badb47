// What the provisioning tools say to the hub, over the one shared hub client (shared/hub-client.ts):
// enrollment redemption on the device listener (the token is the credential, sent only over TLS to
// the device CA the technician pinned by its fingerprint), the health route, and the device API over
// mutual TLS with the device certificate (config, snapshot, rotation, self-revocation). Bodies are
// the shared contract's (shared/device-api.ts); failures are MyKeyErrors with the hub's codes.
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { Type } from '@sinclair/typebox';
import { DeviceConfig, DeviceRevokeResponse, DeviceRotateResponse, EnrollmentResponse, type EnrollmentRequest } from '../../shared/device-api.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { HubHttpClient, problemError, transportError } from '../../shared/hub-client.ts';
import { Snapshot } from '../../shared/sync.ts';

export { problemError };

/** The device credentials for mutual TLS (PEM text). */
export interface DeviceTls {
  cert: string;
  key: string;
  ca: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;
// Every answer here is a certificate or two, or a small JSON object; a snapshot can be large.
const MAX_ANSWER_BYTES = 256 * 1024;
const MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024;

/** True for localhost, 127.0.0.0/8 and ::1 (as URL host names spell them). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/**
 * A SHA-256 certificate fingerprint in the form of node's `X509Certificate.fingerprint256` (upper-case
 * hex pairs joined by colons), from that form, lower case, or bare hex. Throws validation_failed.
 */
export function normalizeFingerprint(fp: string): string {
  const hex = fp.replace(/[:\s]/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) throw new MyKeyError('validation_failed', 'a CA fingerprint is 64 hex digits (SHA-256), optionally in pairs joined by colons');
  return hex.match(/../g)!.join(':');
}

/**
 * Checks where an enrollment token may go before anything is sent: https:// (the caller pins the CA),
 * or http:// to a loopback address only (a local tunnel or a development hub). Throws
 * insecure_transport, or validation_failed for anything that is not an http(s) URL.
 */
export function checkEnrollmentUrl(hubUrl: string): URL {
  let url: URL;
  try {
    url = new URL(hubUrl);
  } catch {
    throw new MyKeyError('validation_failed', `--hub is not a URL: ${hubUrl}`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:') {
    if (isLoopbackHost(url.hostname)) return url;
    throw new MyKeyError(
      'insecure_transport',
      `refusing to send the enrollment token over plain http:// to ${url.host}: give the hub device API as https://${url.hostname}:8443 with --ca-fingerprint`,
    );
  }
  throw new MyKeyError('validation_failed', `--hub must be an https:// URL (got ${url.protocol})`);
}

/**
 * Opens a TLS connection to `url` without trusting anything yet, reads the certificate chain the
 * server presents and returns the certificate in it whose SHA-256 fingerprint is `fingerprint`
 * (PEM). Nothing is sent over the connection. Throws hub_ca_mismatch when no certificate of the
 * chain has that fingerprint.
 */
export function fetchPinnedCa(url: URL, fingerprint: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
  const want = normalizeFingerprint(fingerprint);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host,
      port: Number(url.port || 443),
      ...(isIP(host) ? {} : { servername: host }),
      // Trust is decided below, by the pinned fingerprint; then the request itself verifies the whole
      // chain and the host name against the pinned CA alone.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      timeout: timeoutMs,
    });
    const done = (err: MyKeyError | undefined, pem?: string) => {
      socket.destroy();
      if (err) reject(err);
      else resolve(pem!);
    };
    socket.once('secureConnect', () => {
      const seen: string[] = [];
      let c: PeerCertificate | undefined = socket.getPeerCertificate(true);
      for (let depth = 0; c && c.raw && depth < 8; depth++) {
        const x = new X509Certificate(c.raw);
        if (x.fingerprint256 === want) return done(undefined, x.toString());
        seen.push(x.fingerprint256);
        const next: PeerCertificate | undefined = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate;
        if (!next || next === c || next.raw?.equals(c.raw)) break;
        c = next;
      }
      done(
        new MyKeyError(
          'hub_ca_mismatch',
          `${url.origin} presented no certificate with the pinned fingerprint ${want} (its chain: ${seen.map((f) => f.slice(0, 11)).join(', ') || 'empty'}); the token was not sent`,
        ),
      );
    });
    socket.once('timeout', () => done(new MyKeyError('timeout', `no TLS handshake with ${url.origin} in time`)));
    socket.once('error', (e) => done(transportError(url.origin, e)));
  });
}

/** How the enrollment request trusts the hub: a pinned CA fingerprint, or a CA certificate kept from before. */
export interface RedeemTrust {
  /** SHA-256 fingerprint of the hub's device CA (as shown in the console beside the token). */
  caFingerprint?: string;
  /** The device CA certificate stored at the last enrollment (rotation). */
  caPem?: string;
  timeoutMs?: number;
}

/**
 * Redeems a one-time enrollment token for the device certificate. Over https:// the token is sent only
 * after the hub's chain was found to end at the pinned CA, and only over a connection verified
 * against that CA alone; plain http:// only to a loopback address. The answer's CA must be the pinned
 * one. Throws insecure_transport or hub_ca_mismatch before the token leaves this machine.
 */
export async function redeemToken(hubUrl: string, body: EnrollmentRequest, trust: RedeemTrust = {}): Promise<EnrollmentResponse> {
  const base = checkEnrollmentUrl(hubUrl);
  const timeoutMs = trust.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const pinned = trust.caFingerprint ? normalizeFingerprint(trust.caFingerprint) : trust.caPem ? new X509Certificate(trust.caPem).fingerprint256 : undefined;
  let ca: string | undefined;
  if (base.protocol === 'https:') {
    if (!pinned) throw new MyKeyError('validation_failed', 'an https:// hub needs --ca-fingerprint (the device CA fingerprint shown in the console beside the token)');
    // The pin is checked on a connection that carries nothing; only then is the token sent, over a
    // connection verified against the pinned CA alone.
    ca = trust.caPem ?? (await fetchPinnedCa(base, pinned, timeoutMs));
  }
  const hub = new HubHttpClient({ baseUrl: base.origin, tls: ca ? { ca } : undefined, timeoutMs, maxBytes: MAX_ANSWER_BYTES });
  const r = await hub.call({ method: 'POST', path: '/v1/enrollments', body, expect: [201], schema: EnrollmentResponse, what: 'the hub refused the enrollment' });
  if (pinned && new X509Certificate(r.value.caPem).fingerprint256 !== pinned) {
    throw new MyKeyError('hub_ca_mismatch', `the hub answered with a device CA other than the pinned ${pinned}`);
  }
  return r.value;
}

const Health = Type.Object({ version: Type.Optional(Type.String({ maxLength: 64 })) });

/** GET /healthz on the hub (over https:// verified against `ca`): resolves with the hub's version. */
export async function hubHealth(hubUrl: string, timeoutMs = DEFAULT_TIMEOUT_MS, ca?: string): Promise<{ version?: string }> {
  const hub = new HubHttpClient({ baseUrl: new URL(hubUrl).origin, tls: ca ? { ca } : undefined, timeoutMs, maxBytes: MAX_ANSWER_BYTES });
  const r = await hub.call({ method: 'GET', path: '/healthz', schema: Health, what: 'hub health' });
  return { version: r.value.version };
}

/** The device API over mutual TLS with the device certificate (https:// only). */
export function deviceClient(deviceApiUrl: string, tls: DeviceTls, timeoutMs = DEFAULT_TIMEOUT_MS, maxBytes = MAX_ANSWER_BYTES): HubHttpClient {
  const url = new URL(deviceApiUrl);
  if (url.protocol !== 'https:') throw new MyKeyError('validation_failed', `the device API must be https:// (got ${url.protocol})`);
  return new HubHttpClient({ baseUrl: url.origin, tls, timeoutMs, maxBytes });
}

/** GET /v1/device/config: who the hub knows this certificate as. */
export async function fetchDeviceConfig(deviceApiUrl: string, tls: DeviceTls, timeoutMs?: number): Promise<DeviceConfig> {
  return (await deviceClient(deviceApiUrl, tls, timeoutMs).call({ method: 'GET', path: '/v1/device/config', schema: DeviceConfig, what: 'device API' })).value;
}

/** The first snapshot of the device's service, validated against the shared schema. */
export async function fetchSnapshot(deviceApiUrl: string, tls: DeviceTls, timeoutMs?: number): Promise<Snapshot> {
  const hub = deviceClient(deviceApiUrl, tls, timeoutMs, MAX_SNAPSHOT_BYTES);
  return (await hub.call({ method: 'GET', path: '/v1/device/snapshot', schema: Snapshot, what: 'snapshot' })).value;
}

/**
 * Asks the hub for a new certificate for a new key with the current one (POST /v1/device/rotate over
 * mutual TLS): no token while the current certificate is valid.
 */
export async function rotateOverDeviceApi(deviceApiUrl: string, tls: DeviceTls, csrPem: string, timeoutMs?: number): Promise<DeviceRotateResponse> {
  const hub = deviceClient(deviceApiUrl, tls, timeoutMs);
  const r = await hub.call({ method: 'POST', path: '/v1/device/rotate', body: { csrPem }, expect: [201], schema: DeviceRotateResponse, what: 'certificate rotation' });
  const answered = new X509Certificate(r.value.caPem);
  const stored = new X509Certificate(tls.ca);
  // After a device CA key rotation (hub/pki/device-ca.ts) the hub answers with its new CA, under the
  // same name: the answer came over TLS verified against the stored CA (through the cross
  // certificate), so it is the hub's word. A CA of another name is still refused.
  if (answered.fingerprint256 !== stored.fingerprint256 && answered.subject !== stored.subject) {
    throw new MyKeyError('hub_ca_mismatch', 'the hub answered the rotation with a device CA other than the one stored at enrollment');
  }
  return r.value;
}

/**
 * Asks the hub to revoke this device's own certificate: POST /v1/device/revoke over mutual TLS with
 * `{ reason }`. Only the holder of the device key can do this, which is what a technician at the
 * device has. Resolves false when the hub has no such route (404/405 without another code).
 */
export async function selfRevoke(deviceApiUrl: string, tls: DeviceTls, reason: string, timeoutMs?: number): Promise<boolean> {
  try {
    await deviceClient(deviceApiUrl, tls, timeoutMs).call({
      method: 'POST',
      path: '/v1/device/revoke',
      body: { reason: reason.slice(0, 64) },
      schema: DeviceRevokeResponse,
      what: 'device revocation',
    });
    return true;
  } catch (e) {
    // A problem body with a code other than these means the route exists and refused.
    if (e instanceof MyKeyError && (e.code === 'not_found' || e.code === 'method_not_allowed')) return false;
    throw e;
  }
}
