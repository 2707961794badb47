// A lean HTTP/1.1 load generator for benchmarks: requests are serialized before the clock starts and
// written over keep-alive sockets, one in flight per connection, with just enough response parsing to
// find the status and the end of the body. It keeps the client's own CPU small on a 2-core machine,
// so that the figure is the server's (as wrk would, without needing it installed).
import { connect, type Socket } from 'node:net';

/** Serializes a JSON POST. */
export function jsonPost(path: string, body: string, host = '127.0.0.1'): Buffer {
  const b = Buffer.from(body);
  return Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\nConnection: keep-alive\r\n\r\n`), b]);
}

const CRLF2 = Buffer.from('\r\n\r\n');

/** Sends every request once over `connections` sockets; returns statuses (in request order), bodies if asked, and elapsed ms. */
export async function runLoad(
  port: number,
  requests: Buffer[],
  connections: number,
  opts: { keepBodies?: boolean; host?: string } = {},
): Promise<{ statuses: number[]; bodies: string[]; ms: number }> {
  const statuses = new Array<number>(requests.length).fill(0);
  const bodies = new Array<string>(opts.keepBodies ? requests.length : 0);
  let next = 0;
  const sockets: Socket[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from(
      { length: Math.min(connections, requests.length) },
      () =>
        new Promise<void>((resolve, reject) => {
          const sock = connect({ port, host: opts.host ?? '127.0.0.1', noDelay: true });
          sockets.push(sock);
          let buf = Buffer.alloc(0);
          let current = -1;
          const send = () => {
            if (next >= requests.length) {
              sock.end();
              resolve();
              return;
            }
            current = next++;
            sock.write(requests[current]);
          };
          sock.on('connect', send);
          sock.on('error', reject);
          sock.on('data', (chunk) => {
            buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
            for (;;) {
              const headerEnd = buf.indexOf(CRLF2);
              if (headerEnd < 0) return;
              const head = buf.subarray(0, headerEnd).toString('latin1');
              const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
              const len = m ? Number(m[1]) : 0;
              const total = headerEnd + 4 + len;
              if (buf.length < total) return;
              statuses[current] = Number(head.slice(9, 12));
              if (opts.keepBodies) bodies[current] = buf.subarray(headerEnd + 4, total).toString('utf8');
              buf = buf.subarray(total);
              send();
            }
          });
        }),
    ),
  );
  const ms = performance.now() - t0;
  for (const s of sockets) s.destroy();
  return { statuses, bodies, ms };
}
