// Registration commands from a local program (a barcode or IC card reader of the service, a POS) on
// a Unix socket: one JSON object per line in, one reply per line out (shared/errors.ts Reply, with
// the transaction echoed), and every change of the flow pushed as {"event":"registration","view"}.
//
//   {"transaction":"1","command":"start"}
//   {"transaction":"2","command":"service-user-id","value":"LIB-000123"}
//   {"transaction":"3","command":"pin","value":"1234"}        (only where the holder's PIN is asked)
//   {"command":"cancel"}  {"command":"status"}
//
// The socket is created 0600 (the PIN may pass through it); a line longer than 4 KiB closes the connection.
import { chmod } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { errorReply, MyKeyError, okReply, type Reply } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import { closeSocketServer, listenOnSocket, removeStaleSocket } from '../handoff/json-lines.ts';
import type { ActionReply } from '../kiosk/server.ts';
import type { RegistrationFlow } from './registration.ts';
import type { RegistrationView } from './view.ts';

const MAX_LINE = 4096;

export class CommandSocket {
  readonly path: string;
  readonly #flow: RegistrationFlow;
  readonly #log: Logger;
  readonly #clients = new Set<Socket>();
  #server: Server | undefined;
  #off: (() => void) | undefined;

  constructor(opts: { path: string; flow: RegistrationFlow; log?: Logger }) {
    this.path = opts.path;
    this.#flow = opts.flow;
    this.#log = opts.log ?? silentLogger;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    await removeStaleSocket(this.path);
    const server = createServer((sock) => this.#accept(sock));
    await listenOnSocket(server, this.path);
    server.on('error', (err) => this.#log.error('command socket failed', { error: err }));
    this.#server = server;
    await chmod(this.path, 0o600);
    this.#off = this.#flow.on((view) => this.#broadcast({ event: 'registration', view }));
  }

  async stop(): Promise<void> {
    this.#off?.();
    const server = this.#server;
    this.#server = undefined;
    await closeSocketServer(server, this.#clients, this.path);
  }

  #accept(sock: Socket): void {
    this.#clients.add(sock);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('close', () => this.#clients.delete(sock));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (line) sock.write(JSON.stringify(this.#command(line)) + '\n');
      }
      if (buf.length > MAX_LINE) sock.destroy();
    });
  }

  #command(line: string): Reply<RegistrationView> {
    let msg: { transaction?: unknown; command?: unknown; value?: unknown };
    try {
      msg = JSON.parse(line);
    } catch {
      return errorReply(new MyKeyError('bad_request', 'one JSON object per line'));
    }
    if (typeof msg !== 'object' || msg === null) return errorReply(new MyKeyError('bad_request', 'one JSON object per line'));
    const tx = typeof msg.transaction === 'string' && msg.transaction.length <= 64 ? msg.transaction : undefined;
    const value = typeof msg.value === 'string' ? msg.value : '';
    let r: ActionReply;
    switch (msg.command) {
      case 'start':
        r = this.#flow.start();
        break;
      case 'service-user-id':
        r = this.#flow.serviceUserId(value);
        break;
      case 'pin':
        r = this.#flow.pin(value);
        break;
      case 'cancel':
        r = this.#flow.cancel();
        break;
      case 'status':
        r = { ok: true };
        break;
      default:
        return errorReply(new MyKeyError('bad_request', 'command is start, service-user-id, pin, cancel or status'), tx);
    }
    return r.ok ? okReply(this.#flow.view(), tx) : errorReply(new MyKeyError(r.code, r.message), tx);
  }

  #broadcast(msg: unknown): void {
    const line = JSON.stringify(msg) + '\n';
    for (const c of this.#clients) c.write(line);
  }
}
