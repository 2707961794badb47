// The home companion's local web server: the holder's page and its small JSON API, on loopback only,
// behind the guard (guard.ts). The PIN arrives in a POST body, goes to the card and is dropped: it is
// never logged, echoed, kept or sent to the hub.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ERROR_CODES, MyKeyError, isErrorCode, type ErrorCode } from '../../shared/errors.ts';
import { silentLogger, type Logger } from '../../shared/log.ts';
import { KIOSK_TOKEN_PARAM, MAX_BODY_BYTES, SECURITY_HEADERS } from '../kiosk/request-guard.ts';
import type { FlowRequest, HolderFlows } from './flows.ts';
import { guardHolderRequest, HOLDER_TOKEN_HEADER, type HolderPolicy } from './guard.ts';
import type { Language } from './messages.ts';
import { HOLDER_CSS, holderHtml, holderJs } from './page.ts';

export interface HolderServerOptions {
  flows: Pick<HolderFlows, 'run' | 'state' | 'cancel'>;
  /** The hub's origin, the one foreign web origin let in. */
  hubOrigin: string;
  /** Loopback address (127.0.0.1 by default; ::1 works too). Nothing else is accepted. */
  host?: string;
  port?: number;
  language?: Language;
  /** The session token; a fresh random one by default. */
  token?: string;
  log?: Logger;
}

export class HolderServer {
  readonly #o: HolderServerOptions;
  readonly #token: string;
  readonly #log: Logger;
  readonly #js = holderJs();
  #server: Server | undefined;

  constructor(o: HolderServerOptions) {
    const host = o.host ?? '127.0.0.1';
    if (host !== '127.0.0.1' && host !== '::1') throw new MyKeyError('bad_request', 'the home companion listens on loopback only (127.0.0.1 or ::1)');
    this.#o = { ...o, host };
    this.#token = o.token ?? randomBytes(24).toString('base64url');
    this.#log = o.log ?? silentLogger;
  }

  /** Base URL once started. */
  get url(): string {
    const a = this.#server?.address() as AddressInfo | null | undefined;
    if (!a) throw new Error('the companion is not running');
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** The link to open once: it carries the session token. */
  get pageUrl(): string {
    return `${this.url}/?${KIOSK_TOKEN_PARAM}=${encodeURIComponent(this.#token)}`;
  }

  /** The session token (for the hub's page, which has no cookie). */
  get token(): string {
    return this.#token;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer(
      (req, res) =>
        void this.#handle(req, res).catch((err) => {
          this.#log.error('companion request failed', { code: err instanceof MyKeyError ? err.code : 'internal' });
          if (!res.headersSent) res.writeHead(500).end();
          else res.destroy();
        }),
    );
    server.on('upgrade', (_req, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port ?? 0, this.#o.host, () => resolve());
    });
    this.#server = server;
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  #policy(): HolderPolicy {
    return { port: (this.#server!.address() as AddressInfo).port, token: this.#token, hubOrigin: this.#o.hubOrigin };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const v = guardHolderRequest({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers }, this.#policy());
    if (!v.ok) return this.#error(res, v.code, v.message);
    const cors: Record<string, string> = v.corsOrigin ? { 'access-control-allow-origin': v.corsOrigin, vary: 'Origin' } : {};
    if (v.preflight) {
      res.writeHead(204, {
        ...cors,
        'access-control-allow-methods': 'GET, POST',
        'access-control-allow-headers': `content-type, ${HOLDER_TOKEN_HEADER}`,
        // Private Network Access: a public https page may reach this loopback server only when it says so.
        'access-control-allow-private-network': 'true',
        'access-control-max-age': '600',
      });
      return void res.end();
    }
    if (v.redirectTo) {
      res.writeHead(303, { ...SECURITY_HEADERS, location: v.redirectTo, ...(v.setCookie ? { 'set-cookie': v.setCookie } : {}) });
      return void res.end();
    }
    const path = new URL(req.url ?? '/', 'http://holder').pathname;
    const method = req.method ?? 'GET';
    const route = `${method} ${path}`;
    switch (route) {
      case 'GET /':
        return this.#send(res, 200, 'text/html; charset=utf-8', holderHtml({ token: this.#token, language: this.#o.language ?? 'ja' }));
      case 'GET /holder.js':
        return this.#send(res, 200, 'text/javascript; charset=utf-8', this.#js);
      case 'GET /holder.css':
        return this.#send(res, 200, 'text/css; charset=utf-8', HOLDER_CSS);
      case 'GET /api/state':
        return this.#json(res, 200, this.#o.flows.state(), cors);
      case 'POST /api/cancel':
        this.#o.flows.cancel();
        return this.#json(res, 200, { ok: true }, cors);
      case 'POST /api/flow': {
        const body = await readJson(req).catch((e: MyKeyError) => e);
        if (body instanceof MyKeyError) return this.#error(res, body.code, body.message, cors);
        try {
          const result = await this.#o.flows.run(body as FlowRequest);
          return this.#json(res, 200, result, cors);
        } catch (err) {
          const e = err instanceof MyKeyError ? err : new MyKeyError('internal', undefined, { cause: err });
          // The code only: messages and causes of card errors never carry the PIN, but nothing else goes out either.
          this.#log.debug('holder flow refused', { code: e.code });
          const triesLeft = (e.details as { triesLeft?: unknown } | undefined)?.triesLeft;
          return this.#error(res, e.code, e.message, cors, typeof triesLeft === 'number' ? { triesLeft } : {});
        }
      }
      default:
        return this.#error(res, path.startsWith('/api/') || path === '/' ? 'method_not_allowed' : 'not_found', 'no such page', cors);
    }
  }

  #send(res: ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type });
    res.end(body);
  }

  #json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    res.writeHead(status, { ...SECURITY_HEADERS, ...extra, 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  #error(res: ServerResponse, code: ErrorCode, message: string, extra: Record<string, string> = {}, more: Record<string, unknown> = {}): void {
    this.#json(res, isErrorCode(code) ? ERROR_CODES[code].status : 500, { code, message, ...more }, extra);
  }
}

/** Reads a small JSON object body; anything else is refused before it reaches a flow. */
async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    req.resume();
    throw new MyKeyError('unsupported_media_type', 'send application/json');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new MyKeyError('payload_too_large');
    chunks.push(c as Buffer);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new MyKeyError('bad_request', 'the body is not JSON');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new MyKeyError('bad_request', 'the body is not a JSON object');
  return v as Record<string, unknown>;
}
