// What the provisioning tools say to the hub: enrollment redemption on the device listener (the
// token is the credential, sent only over TLS to the device CA the technician pinned by its
// fingerprint), the health route, and the device API over mutual TLS with the device certificate.
// Every answer is validated here; failures become MyKeyError with the hub's stable code.
import { X509Certificate } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { isErrorCode, MyKeyError, type ErrorCode } from '../../shared/errors.ts';
import { EDGE_ID_PATTERN, SERVICE_ID_PATTERN } from '../../shared/ids.ts';
import { Snapshot } from '../../shared/sync.ts';

/** The hub's answer to POST /v1/enrollments (201). */
export const EnrollmentAnswer = Type.Object({
  certPem: Type.String({ pattern: '-----BEGIN CERTIFICATE-----' }),
  caPem: Type.String({ pattern: '-----BEGIN CERTIFICATE-----' }),
  serviceId: Type.String({ pattern: SERVICE_ID_PATTERN }),
  edgeId: Type.String({ pattern: EDGE_ID_PATTERN }),
  notAfter: Type.Optional(Type.String()),
  brokerUrl: Type.Optional(Type.String({ pattern: '^mqtts?://' })),
  hubUrl: Type.Optional(Type.String({ pattern: '^https?://' })),
});
export type EnrollmentAnswer = Static<typeof EnrollmentAnswer>;

/** The device credentials for mutual TLS (PEM text). */
export interface DeviceTls {
  cert: string;
  key: string;
  ca: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;

// OpenSSL verification failures (as Node names them) and a host name the certificate does not carry:
// the server is not the hub whose CA this tool trusts.
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

function unreachable(url: string, e: unknown): MyKeyError {
  const c = (e as { cause?: { code?: string; message?: string }; code?: string; message?: string }) ?? {};
  const why = c.cause?.code ?? c.code ?? c.cause?.message ?? c.message ?? String(e);
  if ((e as { name?: string })?.name === 'TimeoutError' || why === 'ETIMEDOUT') return new MyKeyError('timeout', `no answer from ${url} in time`, { cause: e });
  if (TLS_TRUST_ERRORS.has(why)) return new MyKeyError('hub_ca_mismatch', `${url} presented a certificate that does not chain to the trusted hub device CA (${why})`, { cause: e });
  return new MyKeyError('unavailable', `cannot reach ${url} (${why})`, { cause: e });
}

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
    throw new MyKeyError('insecure_transport', `refusing to send the enrollment token over plain http:// to ${url.host}: give the hub device API as https://${url.hostname}:8443 with --ca-fingerprint`);
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
      done(new MyKeyError('hub_ca_mismatch', `${url.origin} presented no certificate with the pinned fingerprint ${want} (its chain: ${seen.map((f) => f.slice(0, 11)).join(', ') || 'empty'}); the token was not sent`));
    });
    socket.once('timeout', () => done(new MyKeyError('timeout', `no TLS handshake with ${url.origin} in time`)));
    socket.once('error', (e) => done(unreachable(url.origin, e)));
  });
}

/** Turns a problem JSON body (RFC 9457 with `code`) into a MyKeyError. */
export function problemError(status: number, text: string, what: string): MyKeyError {
  let code: ErrorCode = status === 404 ? 'not_found' : status >= 500 ? 'unavailable' : 'bad_request';
  let detail = '';
  try {
    const p = JSON.parse(text) as { code?: unknown; detail?: unknown; title?: unknown };
    if (isErrorCode(p.code)) code = p.code;
    detail = typeof p.detail === 'string' ? p.detail : typeof p.title === 'string' ? p.title : '';
  } catch {
    detail = text.slice(0, 200);
  }
  return new MyKeyError(code, `${what}: HTTP ${status} ${code}${detail ? `: ${detail}` : ''}`, { details: { status } });
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
export async function redeemToken(hubUrl: string, body: { token: string; edgeId: string; csrPem: string }, trust: RedeemTrust = {}): Promise<EnrollmentAnswer> {
  const base = checkEnrollmentUrl(hubUrl);
  const url = new URL('/v1/enrollments', base);
  const timeoutMs = trust.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const pinned = trust.caFingerprint ? normalizeFingerprint(trust.caFingerprint) : trust.caPem ? new X509Certificate(trust.caPem).fingerprint256 : undefined;
  let status: number;
  let text: string;
  if (url.protocol === 'https:') {
    if (!pinned) throw new MyKeyError('validation_failed', 'an https:// hub needs --ca-fingerprint (the device CA fingerprint shown in the console beside the token)');
    const ca = trust.caPem ?? (await fetchPinnedCa(url, pinned, timeoutMs));
    ({ status, text } = await httpsCall(url, { ca }, 'POST', body, timeoutMs));
  } else {
    let res: Response;
    try {
      res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
    } catch (e) {
      throw unreachable(url.toString(), e);
    }
    status = res.status;
    text = await res.text();
  }
  if (status !== 201) throw problemError(status, text, 'the hub refused the enrollment');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new MyKeyError('bad_request', 'the hub answered the enrollment with something that is not JSON');
  }
  if (!Value.Check(EnrollmentAnswer, v)) {
    const first = [...Value.Errors(EnrollmentAnswer, v)][0];
    throw new MyKeyError('validation_failed', `the hub's enrollment answer does not match its schema (${first?.path || '/'}: ${first?.message})`);
  }
  if (pinned && new X509Certificate(v.caPem).fingerprint256 !== pinned) {
    throw new MyKeyError('hub_ca_mismatch', `the hub answered with a device CA other than the pinned ${pinned}`);
  }
  return v;
}

/** GET /healthz on the hub (over https:// verified against `ca`): resolves with the hub's version. */
export async function hubHealth(hubUrl: string, timeoutMs = DEFAULT_TIMEOUT_MS, ca?: string): Promise<{ version?: string }> {
  const url = new URL('/healthz', hubUrl);
  let status: number;
  let text: string;
  if (url.protocol === 'https:' && ca) ({ status, text } = await httpsCall(url, { ca }, 'GET', undefined, timeoutMs));
  else {
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    } catch (e) {
      throw unreachable(url.toString(), e);
    }
    status = res.status;
    text = await res.text();
  }
  if (status < 200 || status > 299) throw problemError(status, text, 'hub health');
  try {
    const v = JSON.parse(text) as { version?: unknown };
    return { version: typeof v.version === 'string' ? v.version : undefined };
  } catch {
    return {};
  }
}

/** One HTTPS request trusting `tls.ca` alone (with a client certificate when given): status and body text. */
function httpsCall(url: URL, tls: { ca: string; cert?: string; key?: string }, method: string, body: unknown, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpsRequest(
      url,
      {
        method,
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        timeout: timeoutMs,
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', (e) => reject(unreachable(url.origin, e)));
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (e) => reject(unreachable(url.origin, e)));
    req.end(payload);
  });
}

/** One request to the device API over mutual TLS; resolves with the status and the body text. */
export function deviceRequest(deviceApiUrl: string, tls: DeviceTls, method: string, path: string, body?: unknown, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ status: number; text: string }> {
  const url = new URL(path, deviceApiUrl);
  if (url.protocol !== 'https:') return Promise.reject(new MyKeyError('validation_failed', `the device API must be https:// (got ${url.protocol})`));
  return httpsCall(url, tls, method, body, timeoutMs);
}

/** The first snapshot of the device's service, validated against the shared schema. */
export async function fetchSnapshot(deviceApiUrl: string, tls: DeviceTls, timeoutMs?: number): Promise<Snapshot> {
  const r = await deviceRequest(deviceApiUrl, tls, 'GET', '/v1/device/snapshot', undefined, timeoutMs);
  if (r.status !== 200) throw problemError(r.status, r.text, 'snapshot');
  let v: unknown;
  try {
    v = JSON.parse(r.text);
  } catch {
    throw new MyKeyError('bad_request', 'the snapshot is not JSON');
  }
  if (!Value.Check(Snapshot, v)) throw new MyKeyError('validation_failed', 'the snapshot does not match the shared Snapshot schema');
  return v;
}

/**
 * Asks the hub to revoke this device's own certificate: POST /v1/device/revoke over mutual TLS with
 * `{ reason }`. Only the holder of the device key can do this, which is what a technician at the
 * device has. Resolves false when the hub has no such route (404/405).
 */
export async function selfRevoke(deviceApiUrl: string, tls: DeviceTls, reason: string, timeoutMs?: number): Promise<boolean> {
  const r = await deviceRequest(deviceApiUrl, tls, 'POST', '/v1/device/revoke', { reason }, timeoutMs);
  if (r.status === 200 || r.status === 204) return true;
  if (r.status === 404 || r.status === 405) {
    // A problem body with a code other than not_found means the route exists and refused.
    const e = problemError(r.status, r.text, 'device revocation');
    if (e.code === 'not_found' || e.code === 'method_not_allowed') return false;
    throw e;
  }
  throw problemError(r.status, r.text, 'device revocation');
}
