// The counter tablet's local page, served by the edge with node:http and kept live over Server-Sent
// Events. It is a hand-off target (it shows each touch result for a few seconds, then "touch your
// card" again) and the front of the counter registration flow (its buttons and fields post to
// /api/register/*). It keeps only the current screen: no list of earlier touches exists anywhere.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ErrorCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import type { HandoffTarget, TouchResult } from '../handoff/types.ts';
import type { RegistrationView } from '../register/view.ts';
import { KIOSK_CSS, kioskHtml, kioskJs } from './page.ts';
import type { Language } from './messages.ts';
import { resultView, type KioskHealth, type KioskView } from './view.ts';

/** What an action of the page answers. */
export type ActionReply = { ok: true } | { ok: false; code: ErrorCode; message: string };

/** The registration flow as the page drives it. */
export interface KioskActions {
  start(): ActionReply;
  serviceUserId(value: string): ActionReply;
  pin(pin: string): ActionReply;
  cancel(): ActionReply;
}

export interface KioskServerOptions {
  host?: string;
  port?: number;
  language?: Language;
  /** How long a touch result stays on the page, ms. */
  resultMs?: number;
  /** Health for the banner, asked every healthPollMs. */
  health?: () => KioskHealth;
  healthPollMs?: number;
  registration?: KioskActions;
  log?: Logger;
}

const MAX_BODY_BYTES = 1024;
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export class KioskServer implements HandoffTarget {
  readonly name = 'kiosk';
  readonly #o: Required<Omit<KioskServerOptions, 'registration' | 'log'>>;
  readonly #actions: KioskActions | undefined;
  readonly #log: Logger;
  readonly #clients = new Set<ServerResponse>();
  readonly #js: string;
  #server: Server | undefined;
  #result: KioskView['result'] | undefined;
  #resultTimer: NodeJS.Timeout | undefined;
  #register: RegistrationView = { step: 'off' };
  #health: KioskHealth = 'ok';
  #healthTimer: NodeJS.Timeout | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  readonly #stats = { shown: 0, clients: 0 };

  constructor(opts: KioskServerOptions = {}) {
    this.#o = {
      host: opts.host ?? '127.0.0.1',
      port: opts.port ?? 0,
      language: opts.language ?? 'ja',
      resultMs: opts.resultMs ?? 8000,
      health: opts.health ?? (() => 'ok'),
      healthPollMs: opts.healthPollMs ?? 2000,
    };
    this.#actions = opts.registration;
    this.#log = opts.log ?? silentLogger;
    this.#js = kioskJs();
  }

  /** The page's base URL once started. */
  get url(): string {
    const a = this.#server?.address() as AddressInfo | null | undefined;
    if (!a) throw new Error('the kiosk page is not running');
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer((req, res) => void this.#handle(req, res).catch((err) => {
      this.#log.error('kiosk request failed', { error: err });
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    }));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port, this.#o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    this.#health = this.#o.health();
    this.#healthTimer = setInterval(() => this.refreshHealth(), this.#o.healthPollMs);
    this.#healthTimer.unref();
    // A comment line now and then keeps proxies and the tablet's browser from dropping the stream.
    this.#keepAlive = setInterval(() => {
      for (const c of this.#clients) c.write(': keep-alive\n\n');
    }, 15_000);
    this.#keepAlive.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#healthTimer);
    clearInterval(this.#keepAlive);
    clearTimeout(this.#resultTimer);
    const server = this.#server;
    this.#server = undefined;
    for (const c of this.#clients) c.end();
    this.#clients.clear();
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  /** The current view. */
  view(): KioskView {
    const base = { health: this.#health, registrationEnabled: this.#actions !== undefined };
    if (this.#register.step !== 'off') return { screen: 'register', ...base, register: this.#register };
    if (this.#result) return { screen: 'result', ...base, result: this.#result };
    return { screen: 'idle', ...base };
  }

  /** Hand-off target: shows a touch result until resultMs passes or the next one comes. */
  deliver(result: TouchResult): void {
    this.#stats.shown++;
    this.#result = resultView(result, this.#actions !== undefined);
    clearTimeout(this.#resultTimer);
    this.#resultTimer = setTimeout(() => {
      this.#result = undefined;
      this.#push();
    }, this.#o.resultMs);
    this.#resultTimer.unref();
    this.#push();
  }

  /** Shows the registration flow's state (step `off` returns to the touch screen). */
  showRegistration(view: RegistrationView): void {
    this.#register = view;
    if (view.step !== 'off') {
      this.#result = undefined;
      clearTimeout(this.#resultTimer);
    }
    this.#push();
  }

  /** Re-reads the health and pushes it when it changed. */
  refreshHealth(): void {
    const h = this.#o.health();
    if (h === this.#health) return;
    this.#health = h;
    this.#push();
  }

  stats(): Record<string, number> {
    return { ...this.#stats, clients: this.#clients.size };
  }

  #push(): void {
    const frame = `event: view\ndata: ${JSON.stringify(this.view())}\n\n`;
    for (const c of this.#clients) c.write(frame);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://kiosk');
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /':
        return send(res, 200, 'text/html; charset=utf-8', kioskHtml(this.#o.language));
      case 'GET /kiosk.js':
        return send(res, 200, 'text/javascript; charset=utf-8', this.#js);
      case 'GET /kiosk.css':
        return send(res, 200, 'text/css; charset=utf-8', KIOSK_CSS);
      case 'GET /api/view':
        return send(res, 200, 'application/json', JSON.stringify(this.view()));
      case 'GET /events':
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
        res.write(`retry: 1000\nevent: view\ndata: ${JSON.stringify(this.view())}\n\n`);
        this.#clients.add(res);
        req.on('close', () => this.#clients.delete(res));
        return;
      case 'POST /api/register/start':
      case 'POST /api/register/service-user-id':
      case 'POST /api/register/pin':
      case 'POST /api/register/cancel':
        return this.#action(req, res, url.pathname.slice('/api/register/'.length));
      default:
        if (['GET', 'POST', 'HEAD'].includes(req.method ?? '')) return send(res, 404, 'text/plain', 'not found');
        return send(res, 405, 'text/plain', 'method not allowed');
    }
  }

  async #action(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const reply = (status: number, r: ActionReply) => send(res, status, 'application/json', JSON.stringify(r));
    // JSON only: a cross-site form cannot send it without a CORS preflight, which this server never grants.
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return reply(415, { ok: false, code: 'unsupported_media_type', message: 'send application/json' });
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}`) return reply(403, { ok: false, code: 'forbidden', message: 'cross-origin request' });
    const actions = this.#actions;
    if (!actions) return reply(404, { ok: false, code: 'not_found', message: 'registration is not enabled here' });
    const body = await readBody(req);
    if (body === undefined) return reply(400, { ok: false, code: 'bad_request', message: `a JSON object of at most ${MAX_BODY_BYTES} bytes` });
    let r: ActionReply;
    if (name === 'start') r = actions.start();
    else if (name === 'cancel') r = actions.cancel();
    else if (name === 'service-user-id') r = typeof body.serviceUserId === 'string' ? actions.serviceUserId(body.serviceUserId) : { ok: false, code: 'validation_failed', message: 'serviceUserId is a string' };
    else r = typeof body.pin === 'string' ? actions.pin(body.pin) : { ok: false, code: 'validation_failed', message: 'pin is a string' };
    return reply(r.ok ? 200 : 409, r);
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
}

/** Reads a small JSON object body; undefined when too large or not an object. */
function readBody(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY_BYTES) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(d);
    });
    req.on('end', () => {
      try {
        const v = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
        resolve(typeof v === 'object' && v !== null && !Array.isArray(v) ? v : undefined);
      } catch {
        resolve(undefined);
      }
    });
    req.on('error', () => resolve(undefined));
  });
}
