// What the provisioning tools say to the hub: the public enrollment route (the token is the
// credential), the health route, and the device API over mutual TLS with the device certificate.
// Every answer is validated here; failures become MyKeyError with the hub's stable code.
import { request as httpsRequest } from 'node:https';
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

function unreachable(url: string, e: unknown): MyKeyError {
  const c = (e as { cause?: { code?: string; message?: string }; code?: string; message?: string }) ?? {};
  const why = c.cause?.code ?? c.code ?? c.cause?.message ?? c.message ?? String(e);
  if ((e as { name?: string })?.name === 'TimeoutError' || why === 'ETIMEDOUT') return new MyKeyError('timeout', `no answer from ${url} in time`, { cause: e });
  return new MyKeyError('unavailable', `cannot reach ${url} (${why})`, { cause: e });
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

/** Redeems a one-time enrollment token for the device certificate. */
export async function redeemToken(hubUrl: string, body: { token: string; edgeId: string; csrPem: string }, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<EnrollmentAnswer> {
  const url = new URL('/v1/enrollments', hubUrl).toString();
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw unreachable(url, e);
  }
  const text = await res.text();
  if (res.status !== 201) throw problemError(res.status, text, 'the hub refused the enrollment');
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
  return v;
}

/** GET /healthz on the hub's HTTP API: resolves with the hub's version. */
export async function hubHealth(hubUrl: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ version?: string }> {
  const url = new URL('/healthz', hubUrl).toString();
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw unreachable(url, e);
  }
  const text = await res.text();
  if (!res.ok) throw problemError(res.status, text, 'hub health');
  try {
    const v = JSON.parse(text) as { version?: unknown };
    return { version: typeof v.version === 'string' ? v.version : undefined };
  } catch {
    return {};
  }
}

/** One request to the device API over mutual TLS; resolves with the status and the body text. */
export function deviceRequest(deviceApiUrl: string, tls: DeviceTls, method: string, path: string, body?: unknown, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ status: number; text: string }> {
  const url = new URL(path, deviceApiUrl);
  if (url.protocol !== 'https:') return Promise.reject(new MyKeyError('validation_failed', `the device API must be https:// (got ${url.protocol})`));
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
