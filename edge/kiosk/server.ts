// The counter tablet's local page, served by the edge with node:http and kept live over Server-Sent
// Events. It is a hand-off target (it shows each touch result for a few seconds, then "touch your
// card" again) and the front of the counter registration flow (its buttons and fields post to
// /api/register/*). It keeps only the current screen: no list of earlier touches exists anywhere.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { ErrorCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import type { HandoffTarget, TouchResult } from '../handoff/types.ts';
import type { PinTouchView } from '../pintouch/view.ts';
import type { RegistrationView } from '../register/view.ts';
import { KIOSK_CSS, kioskHtml, kioskJs } from './page.ts';
import type { Language } from './messages.ts';
import { resultView, type KioskHealth, type KioskReaderView, type KioskView } from './view.ts';
import { guardRequest, isLoopbackHost, KIOSK_TOKEN_PARAM, MAX_BODY_BYTES, SECURITY_HEADERS, type GuardPolicy, type GuardVerdict } from './request-guard.ts';

/** What an action of the page answers. */
export type ActionReply = { ok: true } | { ok: false; code: ErrorCode; message: string };

/** The registration flow as the page drives it. */
export interface KioskActions {
  start(): ActionReply;
  serviceUserId(value: string): ActionReply;
  pin(pin: string): ActionReply;
  cancel(): ActionReply;
}

/** The PIN-checked touch (#14) as the page drives it. */
export interface KioskPinActions {
  pin(pin: string): ActionReply;
  cancel(): ActionReply;
}

export interface KioskServerOptions {
  /** The address to listen on; loopback by default. Anything else requires a token. */
  host?: string;
  /** The token browsers must present; when empty and host is not loopback, one is generated at start. */
  token?: string;
  /** More host names the tablet may use to reach the page (e.g. a DNS name on the LAN). */
  allowedHosts?: readonly string[];
  /** Where a generated token's link is printed, once (stderr by default: stdout may carry JSON lines). */
  print?: (line: string) => void;
  port?: number;
  language?: Language;
  /** How long a touch result stays on the page, ms. */
  resultMs?: number;
  /** Health for the banner, asked every healthPollMs. */
  health?: () => KioskHealth;
  healthPollMs?: number;
  registration?: KioskActions;
  /** The PIN-checked touch's PIN pad (#14). */
  pinTouch?: KioskPinActions;
  log?: Logger;
}

export class KioskServer implements HandoffTarget {
  readonly name = 'kiosk';
  readonly #o: Required<Omit<KioskServerOptions, 'registration' | 'pinTouch' | 'log' | 'token' | 'allowedHosts' | 'print'>>;
  readonly #configuredToken: string | undefined;
  readonly #allowedHosts: readonly string[];
  readonly #print: (line: string) => void;
  #policy: GuardPolicy | undefined;
  #generatedToken: string | undefined;
  #printed = false;
  readonly #actions: KioskActions | undefined;
  readonly #pinActions: KioskPinActions | undefined;
  #pin: PinTouchView = { step: 'off' };
  readonly #log: Logger;
  readonly #clients = new Set<ServerResponse>();
  readonly #js: string;
  #server: Server | undefined;
  #result: KioskView['result'] | undefined;
  #resultTimer: NodeJS.Timeout | undefined;
  #register: RegistrationView = { step: 'off' };
  #health: KioskHealth = 'ok';
  #reader: KioskReaderView | undefined;
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
    this.#configuredToken = opts.token ? opts.token : undefined;
    this.#allowedHosts = (opts.allowedHosts ?? []).map((h) => h.toLowerCase().replace(/^\[|\]$/g, ''));
    this.#print = opts.print ?? ((line) => process.stderr.write(`${line}\n`));
    this.#actions = opts.registration;
    this.#pinActions = opts.pinTouch;
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

  /** The URL to open once on the tablet: the base URL, with the token when one is required. */
  get pageUrl(): string {
    const token = this.#policy?.token;
    return token === undefined ? `${this.url}/` : `${this.url}/?${KIOSK_TOKEN_PARAM}=${encodeURIComponent(token)}`;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer(
      (req, res) =>
        void this.#handle(req, res).catch((err) => {
          this.#log.error('kiosk request failed', { error: err });
          if (!res.headersSent) res.writeHead(500).end();
          else res.destroy();
        }),
    );
    // The page has no WebSocket; an upgrade is answered (guard first, so a foreign one gets its own code) and closed.
    server.on('upgrade', (req: IncomingMessage, socket: Socket) => this.#refuseUpgrade(req, socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port, this.#o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    this.#policy = this.#guardPolicy(server);
    if (this.#policy.token !== undefined && this.#configuredToken === undefined && !this.#printed) {
      this.#printed = true;
      // Printed once, never logged: the log may be shipped elsewhere.
      this.#print(`kiosk page (open this link once on the counter tablet; it then keeps the token in a cookie): ${this.#printableUrl()}`);
    }
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
    this.#policy = undefined;
    for (const c of this.#clients) c.end();
    this.#clients.clear();
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  /** The current view. */
  view(): KioskView {
    const base = { health: this.#health, registrationEnabled: this.#actions !== undefined, ...(this.#reader ? { reader: this.#reader } : {}) };
    if (this.#register.step !== 'off') return { screen: 'register', ...base, register: this.#register };
    if (this.#pin.step !== 'off') return { screen: 'pin', ...base, pin: this.#pin };
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

  /** Shows the PIN-checked touch's PIN pad (step `off` returns to the touch screen or the result). */
  showPinTouch(view: PinTouchView): void {
    this.#pin = view;
    if (view.step !== 'off') {
      this.#result = undefined;
      clearTimeout(this.#resultTimer);
    }
    this.#push();
  }

  /** Shows what the shop should do about the reader (undefined: it works again). */
  showReader(view: KioskReaderView | undefined): void {
    if (JSON.stringify(view) === JSON.stringify(this.#reader)) return;
    this.#reader = view ? { state: view.state, advice: view.advice } : undefined;
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

  #guardPolicy(server: Server): GuardPolicy {
    const a = server.address() as AddressInfo;
    const hosts = new Set<string>(['localhost', '127.0.0.1', '::1', ...this.#allowedHosts]);
    const bound = a.address.toLowerCase();
    if (bound === '0.0.0.0' || bound === '::') {
      // Every interface: the page is served under each of this machine's addresses.
      for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) hosts.add(i.address.toLowerCase());
    } else hosts.add(bound);
    const needsToken = this.#configuredToken !== undefined || !isLoopbackHost(this.#o.host);
    // A generated token lives as long as this server object: a restart of the page keeps the tablet's cookie good.
    if (needsToken && this.#configuredToken === undefined) this.#generatedToken ??= randomBytes(18).toString('base64url');
    const token = needsToken ? (this.#configuredToken ?? this.#generatedToken) : undefined;
    return token === undefined ? { hosts, port: a.port } : { hosts, port: a.port, token };
  }

  #printableUrl(): string {
    const a = this.#server?.address() as AddressInfo;
    if (a.address !== '0.0.0.0' && a.address !== '::') return this.pageUrl;
    const lan = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && !i.internal && i.family === 'IPv4');
    return this.pageUrl.replace(/^http:\/\/[^/]+/, `http://${lan?.address ?? '<this-host>'}:${a.port}`);
  }

  #check(req: IncomingMessage): GuardVerdict {
    const policy = this.#policy;
    if (!policy) return { ok: false, status: 403, code: 'kiosk_host_refused', message: 'the kiosk page is not running' };
    return guardRequest({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers }, policy);
  }

  #refuseUpgrade(req: IncomingMessage, socket: Socket): void {
    const v = this.#check(req);
    const [status, body] = v.ok ? [404, { ok: false, code: 'not_found', message: 'no WebSocket here' }] : [v.status, { ok: false, code: v.code, message: v.message }];
    const text = JSON.stringify(body);
    socket.on('error', () => undefined);
    socket.end(
      `HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 401 ? 'Unauthorized' : 'Forbidden'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
    );
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const verdict = this.#check(req);
    if (!verdict.ok) return send(res, verdict.status, 'application/json', JSON.stringify({ ok: false, code: verdict.code, message: verdict.message }));
    if (verdict.redirectTo !== undefined) {
      // The token leaves the address bar (and the history) at once; from now on the cookie carries it.
      res.writeHead(303, { ...SECURITY_HEADERS, location: verdict.redirectTo, 'set-cookie': verdict.setCookie ?? '', 'content-length': 0 }).end();
      return;
    }
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
      case 'POST /api/pin':
      case 'POST /api/pin/cancel':
        return this.#pinAction(req, res, url.pathname === '/api/pin' ? 'pin' : 'cancel');
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

  /** The PIN pad's posts (#14): the PIN goes straight to the flow, which hands it to the card only. */
  async #pinAction(req: IncomingMessage, res: ServerResponse, name: 'pin' | 'cancel'): Promise<void> {
    const reply = (status: number, r: ActionReply) => send(res, status, 'application/json', JSON.stringify(r));
    // JSON only, as the registration actions: a cross-site form cannot send it without a preflight.
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return reply(415, { ok: false, code: 'unsupported_media_type', message: 'send application/json' });
    const actions = this.#pinActions;
    if (!actions) return reply(404, { ok: false, code: 'not_found', message: 'PIN-checked touches are not enabled here' });
    const body = await readBody(req);
    if (body === undefined) return reply(400, { ok: false, code: 'bad_request', message: `a JSON object of at most ${MAX_BODY_BYTES} bytes` });
    const r = name === 'cancel' ? actions.cancel() : typeof body.pin === 'string' ? actions.pin(body.pin) : ({ ok: false, code: 'validation_failed', message: 'pin is a string' } as const);
    return reply(r.ok ? 200 : r.code === 'validation_failed' ? 400 : 409, r);
  }

  async #action(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const reply = (status: number, r: ActionReply) => send(res, status, 'application/json', JSON.stringify(r));
    // JSON only: a cross-site form cannot send it without a CORS preflight, which this server never grants.
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return reply(415, { ok: false, code: 'unsupported_media_type', message: 'send application/json' });
    const actions = this.#actions;
    if (!actions) return reply(404, { ok: false, code: 'not_found', message: 'registration is not enabled here' });
    const body = await readBody(req);
    if (body === undefined) return reply(400, { ok: false, code: 'bad_request', message: `a JSON object of at most ${MAX_BODY_BYTES} bytes` });
    let r: ActionReply;
    if (name === 'start') r = actions.start();
    else if (name === 'cancel') r = actions.cancel();
    else if (name === 'service-user-id')
      r = typeof body.serviceUserId === 'string' ? actions.serviceUserId(body.serviceUserId) : { ok: false, code: 'validation_failed', message: 'serviceUserId is a string' };
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
