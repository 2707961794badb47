// A business system's webhook endpoint on loopback, for tests of what the hub (notices) and the edge
// (touch hand-off) deliver: every request's path, headers and whole body, answered as the test says.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the receiver got it. */
export interface ReceivedRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * How to answer one request: a status (empty body), a status with a JSON body, or 'hang' to keep it
 * open until close(). `n` counts requests from 1. May be async (a slow business system).
 */
export type Respond = (req: ReceivedRequest, n: number) => number | { status: number; json: unknown } | 'hang' | Promise<number | { status: number; json: unknown } | 'hang'>;

export interface WebhookReceiver {
  /** http://127.0.0.1:<port>, without a path. */
  readonly origin: string;
  /** A URL on this receiver, e.g. url('/notices'). */
  url(path: string): string;
  /** Every request, in the order their bodies ended. */
  readonly got: ReceivedRequest[];
  /** Stops listening, dropping hung and kept-alive connections. */
  close(): Promise<void>;
}

/** Starts a receiver on a free loopback port; answers 204 to everything unless `respond` says otherwise. */
export async function startWebhookReceiver(respond: Respond = () => 204): Promise<WebhookReceiver> {
  const got: ReceivedRequest[] = [];
  const hanging: ServerResponse[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', async () => {
      const r: ReceivedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      got.push(r);
      const answer = await respond(r, got.length);
      if (answer === 'hang') return void hanging.push(res);
      if (typeof answer === 'number') return void res.writeHead(answer).end();
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.json));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    url: (path) => `${origin}${path}`,
    got,
    async close() {
      for (const h of hanging) h.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
