// The updater's calls to the hub's device API over mutual TLS (the device certificate), and a
// download that resumes: bytes already on disk are kept and the rest is asked for with Range (RFC 9110
// 14.2); a cut connection is retried with backoff, and the file is only ever appended to.
import { createWriteStream, statSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import { MyKeyError } from '../../shared/errors.ts';

export interface DeviceTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export interface DeviceClientOptions {
  hubUrl: string;
  tls: DeviceTls;
  timeoutMs?: number;
}

function call(o: DeviceClientOptions, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const url = new URL(path, o.hubUrl);
  const opts: RequestOptions = {
    method,
    ca: o.tls.ca,
    cert: o.tls.cert,
    key: o.tls.key,
    headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    timeout: o.timeoutMs ?? 15_000,
  };
  return { req: (url.protocol === 'https:' ? request : httpRequest)(url, opts), payload: body === undefined ? undefined : JSON.stringify(body) };
}

/** A JSON call; a non-2xx answer throws with the problem's code when it has one. */
export function deviceJson<T>(o: DeviceClientOptions, method: string, path: string, body?: unknown): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const { req, payload } = call(o, method, path, body);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
        if (text.length > 1_000_000) req.destroy(new Error('answer too large'));
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = undefined;
        }
        if (status >= 200 && status < 300) return resolve(parsed as T | undefined);
        reject(new MyKeyError('unavailable', `${method} ${path}: ${status} ${(parsed as { code?: string } | undefined)?.code ?? ''}`.trim()));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** One attempt: appends to `file` from its current size; resolves with the file's size after. */
function downloadOnce(o: DeviceClientOptions, path: string, file: string, total: number): Promise<number> {
  const have = sizeOf(file);
  if (have >= total) return Promise.resolve(have);
  return new Promise((resolve, reject) => {
    const { req } = call(o, 'GET', path, undefined, have > 0 ? { range: `bytes=${have}-` } : {});
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      // 200 to a range request would restart from 0: only a 206 for exactly our offset is appended.
      const okStatus = have > 0 ? status === 206 && (res.headers['content-range'] ?? '').startsWith(`bytes ${have}-`) : status === 200;
      if (!okStatus) {
        res.resume();
        return reject(new MyKeyError(status === 404 ? 'release_not_found' : 'release_download_incomplete', `bundle download answered ${status}`));
      }
      const out = createWriteStream(file, { flags: 'a' });
      let written = have;
      res.on('data', (chunk: Buffer) => {
        written += chunk.length;
        if (written > total) req.destroy(new MyKeyError('release_size_mismatch', 'the hub sent more bytes than the signed size'));
      });
      res.pipe(out);
      const fail = (e: Error) => {
        out.end(() => reject(e));
      };
      res.on('error', fail);
      res.on('aborted', () => fail(new MyKeyError('release_download_incomplete', 'the connection was cut')));
      out.on('finish', () => resolve(sizeOf(file)));
    });
    req.on('timeout', () => req.destroy(new MyKeyError('release_download_incomplete', 'the download stalled')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Downloads a bundle of `total` bytes into `file`, resuming what is already there; retries a cut
 * connection up to `attempts` times. Resolves when the file has exactly `total` bytes.
 */
export async function downloadBundle(o: DeviceClientOptions, path: string, file: string, total: number, opts: { attempts?: number; delayMs?: number } = {}): Promise<void> {
  const attempts = opts.attempts ?? 5;
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const size = await downloadOnce(o, path, file, total);
      if (size === total) return;
      last = new MyKeyError('release_download_incomplete', `${size} of ${total} bytes`);
    } catch (e) {
      last = e;
      if (e instanceof MyKeyError && (e.code === 'release_size_mismatch' || e.code === 'release_not_found')) throw e;
    }
    await new Promise((r) => setTimeout(r, (opts.delayMs ?? 500) * 2 ** i));
  }
  throw last instanceof MyKeyError
    ? new MyKeyError('release_download_incomplete', `the download did not complete after ${attempts} attempts (${last.message})`, { cause: last })
    : new MyKeyError('release_download_incomplete', `the download did not complete after ${attempts} attempts`, { cause: last });
}
