// The one place where error codes become HTTP: problem JSON (RFC 9457) with the stable code.
import { isBusyError } from '../store/write-batcher.ts';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { MyKeyError, isErrorCode, toProblem, type ErrorCode, type Problem } from '../../shared/errors.ts';
import { CRL_REASONS } from '../../shared/revocation.ts';

/** Sends problem JSON for a code. */
export function problem(c: Context, code: ErrorCode, detail?: string, extra?: Partial<Problem>, headers?: Record<string, string>): Response {
  const body = toProblem(code, detail, { instance: c.req.path, ...extra });
  return c.json(body, body.status as 400, { 'content-type': 'application/problem+json', ...headers });
}

/**
 * The details of an error that travel as problem members: only the named, safe ones (RFC 9457 3.2
 * extension members), each checked, so nothing else a thrower put in `details` leaks out.
 */
export function problemFields(err: MyKeyError): Partial<Problem> {
  const out: Partial<Problem> = {};
  const reason = err.details?.reason;
  // RFC 5280 5.3.1 CRLReason of a refused revoked certificate.
  if (typeof reason === 'string' && crlReasonFromName(reason)) out.reason = reason;
  const ocsp = err.details?.ocsp;
  if (isErrorCode(ocsp) && ocsp.startsWith('ocsp_')) out.ocsp = ocsp;
  return out;
}

function crlReasonFromName(name: string): boolean {
  return Object.hasOwn(CRL_REASONS, name);
}

/** Seconds a client is told to wait (RFC 9110 10.2.3 Retry-After) when the store is busy. */
const BUSY_RETRY_AFTER_S = '1';

/** The store said "busy, try again" (SQLite's lock errors, PostgreSQL's serialization failures; write-batcher.ts), wherever it came from. */
const isStoreBusy = isBusyError;

/**
 * Hono onError: MyKeyErrors keep their code; a busy store (another process writing, say a CRL
 * import) is 503 `unavailable` with Retry-After, a state to wait out rather than a server fault;
 * anything else unexpected is logged and becomes `internal`.
 */
export function errorHandler(log: (msg: string, err: unknown) => void) {
  return (err: Error, c: Context): Response => {
    if (err instanceof MyKeyError && err.code === 'unavailable') return problem(c, 'unavailable', err.message, {}, { 'retry-after': BUSY_RETRY_AFTER_S });
    if (err instanceof MyKeyError) return problem(c, err.code, err.message, problemFields(err));
    if (isStoreBusy(err) || isStoreBusy(err?.cause)) return problem(c, 'unavailable', 'the store is busy; retry shortly', {}, { 'retry-after': BUSY_RETRY_AFTER_S });
    if (err instanceof HTTPException) {
      const code: ErrorCode = err.status === 413 ? 'payload_too_large' : err.status === 404 ? 'not_found' : err.status === 401 ? 'unauthorized' : 'bad_request';
      return problem(c, code, err.message || undefined);
    }
    log('unhandled error', err);
    return problem(c, 'internal');
  };
}
