// Asking the OCSP responder: one POST of a DER request (RFC 6960 Appendix A.1), bounded in time and
// in response size, answered with an HTTP status and body or the reason there is none. Never throws.
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/** Reads a response body, giving up (and cancelling the stream) past `limit` bytes, chunked or not. */
async function readBounded(res: Response, limit: number): Promise<Uint8Array | 'too-large'> {
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      return 'too-large';
    }
    chunks.push(value);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** What one POST to the responder gave: an HTTP status and the body, or why there is none. */
export type Posted = { status: number; body: Uint8Array } | { failed: 'too-large' } | { failed: 'unreachable'; why: string };
export type PostOcsp = (body: Uint8Array) => Promise<Posted>;

/** POSTs with a fetch implementation (tests give their own). */
export function postWithFetch(url: string, doFetch: typeof fetch, timeoutMs: number, maxBytes: number): PostOcsp {
  return async (body) => {
    try {
      const res = await doFetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!res.ok) return { status: res.status, body: new Uint8Array(0) };
      const declared = Number(res.headers.get('content-length') ?? '0');
      if (declared > maxBytes) return { failed: 'too-large' };
      const read = await readBounded(res, maxBytes);
      return read === 'too-large' ? { failed: 'too-large' } : { status: res.status, body: read };
    } catch (e) {
      return { failed: 'unreachable', why: (e as Error).message };
    }
  };
}

/**
 * POSTs over node:http(s) on keep-alive connections: several times cheaper per request than fetch,
 * which matters when every registration asks the responder. The whole exchange is bounded by the
 * timeout, the body by maxBytes (declared or streamed).
 */
export function postWithNodeHttp(url: string, timeoutMs: number, maxBytes: number): PostOcsp {
  const u = new URL(url);
  const https = u.protocol === 'https:';
  const agent = https ? new HttpsAgent({ keepAlive: true, maxSockets: 64 }) : new HttpAgent({ keepAlive: true, maxSockets: 64 });
  const send = https ? httpsRequest : httpRequest;
  return (body) =>
    new Promise<Posted>((resolve) => {
      let settled = false;
      const done = (p: Posted) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(p);
      };
      const req = send(u, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response', 'content-length': String(body.length) },
      });
      const timer = setTimeout(() => {
        req.destroy();
        done({ failed: 'unreachable', why: `no answer within ${timeoutMs} ms` });
      }, timeoutMs);
      req.on('error', (e) => done({ failed: 'unreachable', why: e.message }));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) {
          res.resume();
          return done({ status, body: new Uint8Array(0) });
        }
        if (Number(res.headers['content-length'] ?? '0') > maxBytes) {
          req.destroy();
          return done({ failed: 'too-large' });
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            req.destroy();
            done({ failed: 'too-large' });
          } else chunks.push(c);
        });
        res.on('end', () => {
          const b = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
          done({ status, body: new Uint8Array(b.buffer, b.byteOffset, b.byteLength) });
        });
        res.on('error', (e) => done({ failed: 'unreachable', why: e.message }));
      });
      req.end(body);
    });
}
