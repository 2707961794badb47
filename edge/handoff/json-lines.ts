// Hand-off as JSON lines, one object per touch: on a stream (stdout, for a program that runs the
// agent), or on a local Unix socket the agent listens on, where every connected local program gets
// every line. A reader that falls behind is cut off rather than buffered without bound.
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import { payloadOf, type HandoffTarget, type TouchResult } from './types.ts';

/**
 * JSON lines on a stream (process.stdout by default). Opt-in only, never a default: under the systemd
 * unit standard output is the journal, and a line per touch there is a usage history (MISSION.md).
 */
export class StreamTarget implements HandoffTarget {
  readonly name: string;
  readonly #out: Writable;
  readonly #includeMyKeyId: boolean;
  readonly #stats = { written: 0, failed: 0 };

  constructor(opts: { out?: Writable; includeMyKeyId?: boolean; name?: string } = {}) {
    this.#out = opts.out ?? process.stdout;
    this.#includeMyKeyId = opts.includeMyKeyId ?? false;
    this.name = opts.name ?? 'stdout';
  }

  deliver(result: TouchResult): void {
    try {
      this.#out.write(JSON.stringify(payloadOf(result, { includeMyKeyId: this.#includeMyKeyId })) + '\n');
      this.#stats.written++;
    } catch {
      this.#stats.failed++;
    }
  }

  stats(): Record<string, number> {
    return { ...this.#stats };
  }
}

/** Largest backlog a socket client may have before it is disconnected. */
export const SOCKET_CLIENT_MAX_BACKLOG = 256 * 1024;

/** JSON lines to every program connected to a Unix socket the agent listens on. */
export class SocketTarget implements HandoffTarget {
  readonly name: string;
  readonly path: string;
  readonly #includeMyKeyId: boolean;
  readonly #mode: number;
  readonly #log: Logger;
  readonly #clients = new Set<Socket>();
  #server: Server | undefined;
  readonly #stats = { written: 0, clients: 0, cutOff: 0 };

  constructor(opts: { path: string; includeMyKeyId?: boolean; mode?: number; name?: string; log?: Logger }) {
    this.path = opts.path;
    this.#includeMyKeyId = opts.includeMyKeyId ?? false;
    this.#mode = opts.mode ?? 0o660;
    this.name = opts.name ?? `socket:${opts.path}`;
    this.#log = opts.log ?? silentLogger;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    await removeStaleSocket(this.path);
    const server = createServer((sock) => {
      this.#clients.add(sock);
      this.#stats.clients = this.#clients.size;
      sock.on('error', () => sock.destroy());
      sock.on('close', () => {
        this.#clients.delete(sock);
        this.#stats.clients = this.#clients.size;
      });
      sock.on('data', () => {}); // input is ignored; reading keeps the socket flowing
    });
    await listenOnSocket(server, this.path);
    server.on('error', (err) => this.#log.error('hand-off socket failed', { target: this.name, error: err }));
    this.#server = server;
    await chmod(this.path, this.#mode);
  }

  deliver(result: TouchResult): void {
    if (this.#clients.size === 0) return;
    const line = JSON.stringify(payloadOf(result, { includeMyKeyId: this.#includeMyKeyId })) + '\n';
    for (const c of this.#clients) {
      if (c.writableLength > SOCKET_CLIENT_MAX_BACKLOG) {
        this.#stats.cutOff++;
        c.destroy();
        continue;
      }
      c.write(line);
    }
    this.#stats.written++;
  }

  stats(): Record<string, number> {
    return { ...this.#stats };
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    await closeSocketServer(server, this.#clients, this.path);
  }
}

/** Listens on the Unix socket `path`; rejects when it cannot (a stale file is removeStaleSocket's). */
export function listenOnSocket(server: Server, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stops a Unix socket server: drops its clients, closes it and removes its socket file. */
export async function closeSocketServer(server: Server | undefined, clients: Set<Socket>, path: string): Promise<void> {
  for (const c of clients) c.destroy();
  clients.clear();
  if (server) await new Promise<void>((r) => server.close(() => r()));
  await unlink(path).catch(() => undefined);
}

/**
 * Removes a socket file left by a previous run that nobody listens on; refuses to remove anything
 * that is not a socket, or a socket another process still serves.
 */
export async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`${path} is served by another process`);
  await unlink(path);
}
