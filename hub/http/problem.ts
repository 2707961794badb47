// The one place where error codes become HTTP: problem JSON (RFC 9457) with the stable code.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { MyKeyError, toProblem, type ErrorCode, type Problem } from '../../shared/errors.ts';

/** Sends problem JSON for a code. */
export function problem(c: Context, code: ErrorCode, detail?: string, extra?: Partial<Problem>, headers?: Record<string, string>): Response {
  const body = toProblem(code, detail, { instance: c.req.path, ...extra });
  return c.json(body, body.status as 400, { 'content-type': 'application/problem+json', ...headers });
}

/** Hono onError: MyKeyErrors keep their code; anything unexpected is logged and becomes `internal`. */
export function errorHandler(log: (msg: string, err: unknown) => void) {
  return (err: Error, c: Context): Response => {
    if (err instanceof MyKeyError) return problem(c, err.code, err.message);
    if (err instanceof HTTPException) {
      const code: ErrorCode = err.status === 413 ? 'payload_too_large' : err.status === 404 ? 'not_found' : err.status === 401 ? 'unauthorized' : 'bad_request';
      return problem(c, code, err.message || undefined);
    }
    log('unhandled error', err);
    return problem(c, 'internal');
  };
}
