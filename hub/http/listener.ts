// An HTTP(S) listener as a lifecycle component (shared/lifecycle.ts): start binds and resolves once it
// listens (or rejects with the bind error: a port in use, a host not on this machine); stop closes
// the open connections too, so a keep-alive client does not hold the hub's stop.
import { serve, type ServerType } from '@hono/node-server';
import type { Component } from '../../shared/lifecycle.ts';

export type ListenOptions = Parameters<typeof serve>[0];

export interface HttpListener extends Component {
  /** The bound port while listening. */
  readonly port: number | undefined;
}

/** A host as it stands in a URL: an IPv6 literal in brackets (RFC 3986 3.2.2). */
export const urlHost = (host: string): string => (host.includes(':') ? `[${host}]` : host);

/** Binds `options` and resolves with the server and its port. */
export function listen(options: ListenOptions): Promise<{ server: ServerType; port: number }> {
  return new Promise((resolve, reject) => {
    const server = serve(options, (info) => resolve({ server, port: info.port }));
    server.once('error', reject);
  });
}

/** Closes a server and every connection still open on it. */
export function closeServer(server: ServerType): Promise<void> {
  return new Promise((resolve) => {
    // http.Server and https.Server have it (Node >= 18.2); the type is the union with HTTP/2's.
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => resolve());
  });
}

/**
 * A listener named `name`. `options` is read at start: the device listener's TLS credentials exist
 * only once the device CA is open. `onListening` is told the bound port (port 0 binds a free one).
 */
export function httpListener(name: string, options: () => ListenOptions, onListening?: (port: number) => void): HttpListener {
  let server: ServerType | undefined;
  let port: number | undefined;
  return {
    name,
    get port() {
      return port;
    },
    async start() {
      const bound = await listen(options());
      server = bound.server;
      port = bound.port;
      onListening?.(bound.port);
    },
    async stop() {
      const s = server;
      server = port = undefined;
      if (s) await closeServer(s);
    },
  };
}
