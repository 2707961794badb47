// A TCP load balancer in front of hub replicas, for tests: what production puts in front of them
// (ARCHITECTURE.md, hub/replicas/README.md) so that the broker nodes' HTTP auth backend and the edges'
// device API (TLS passed through untouched) have one address whichever replica is alive. Each
// connection goes to the next backend in turn; one that refuses the connection (a replica killed with
// kill -9: the kernel closed its listening socket) is skipped and the next tried. A connection whose
// backend dies is closed on the client's side too, so the client reconnects (and lands on a live one).
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpBalancer {
  port: number;
  /** Connections handed to each backend so far (by its port). */
  counts: Map<number, number>;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:`port` (0: any free port) and spreads connections over `backends` (ports on 127.0.0.1). */
export function startTcpBalancer(backends: number[], o: { port?: number; connectTimeoutMs?: number } = {}): Promise<TcpBalancer> {
  const counts = new Map(backends.map((p) => [p, 0]));
  const open = new Set<Socket>();
  let turn = 0;
  const track = (s: Socket) => {
    open.add(s);
    s.once('close', () => open.delete(s));
  };
  const server: Server = createServer((client) => {
    track(client);
    client.pause();
    client.on('error', () => undefined);
    const first = turn++ % backends.length;
    const attempt = (k: number) => {
      if (client.destroyed) return;
      if (k === backends.length) return void client.destroy();
      const port = backends[(first + k) % backends.length]!;
      const up = connect({ host: '127.0.0.1', port });
      track(up);
      const t = setTimeout(() => up.destroy(new Error('connect timeout')), o.connectTimeoutMs ?? 5000);
      let connected = false;
      up.once('connect', () => {
        connected = true;
        clearTimeout(t);
        counts.set(port, (counts.get(port) ?? 0) + 1);
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
      up.on('error', () => {
        clearTimeout(t);
        // Refused before connecting: the next backend. After: the client's connection goes with it.
        if (!connected) attempt(k + 1);
        else client.destroy();
      });
      up.once('close', () => connected && client.destroy());
      client.once('close', () => up.destroy());
    };
    attempt(0);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve({
        port: (server.address() as { port: number }).port,
        counts,
        close: () =>
          new Promise<void>((r) => {
            for (const s of open) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}
