// Webhook notices (失効連絡) of a CRL run: 50,000 notices pending for one service go to a receiver on
// this machine that takes 50 ms to answer each request, as a business system across a network does.
// The receiver verifies every signature (shared/webhook-signature.ts) and counts the notices, lone or
// in batches (hub/notify/webhooks.ts). The time runs from the first delivery round until the
// receiver has every notice. Before batching, one notice per request took 175 s here with no delay.
//
// Metric: webhook_50k_ms.
//
//   npx tsx bench/run.ts webhook
//   WEBHOOK_NOTICES=5000 npx tsx bench/webhook.bench.ts      (a quicker look)
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createLinks } from '../hub/links/links.ts';
import { createWebhookSender } from '../hub/notify/webhooks.ts';
import { openDatabase } from '../hub/store/db.ts';
import { createLinkRepo } from '../hub/store/link-repo.ts';
import { createMyKeyRepo } from '../hub/store/mykey-repo.ts';
import { sqlOf } from '../hub/store/sql.ts';
import { createLogger } from '../shared/log.ts';
import { verifyWebhook } from '../shared/webhook-signature.ts';
import { benchMain, progress, round } from './lib.ts';

const NOTICES = Number(process.env.WEBHOOK_NOTICES ?? 50_000);
const LATENCY_MS = Number(process.env.WEBHOOK_LATENCY_MS ?? 50);

benchMain(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-webhook-'));
  let secret = '';
  let notices = 0;
  let requests = 0;
  let bad = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let done: () => void = () => undefined;
  const all = new Promise<void>((r) => (done = r));
  const seen = new Set<string>();
  const receiver = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      setTimeout(() => {
        inFlight--;
        requests++;
        if (!verifyWebhook(secret, body, req.headers).ok) {
          bad++;
          res.writeHead(401).end();
          return;
        }
        const b = JSON.parse(body) as { type: string; id?: string; notices?: { id: string }[] };
        for (const n of b.type === 'notices' ? b.notices! : [b as { id: string }]) seen.add(n.id);
        notices = seen.size;
        res.writeHead(204).end();
        if (notices >= NOTICES) done();
      }, LATENCY_MS);
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const port = (receiver.address() as AddressInfo).port;
  const db = openDatabase(join(dir, 'hub.sqlite'));
  try {
    const repo = createLinkRepo(db);
    const links = createLinks({ sql: db, repo, mykeys: createMyKeyRepo(db) });
    const created = await links.createService({ id: 'library', name: 'Town library', webhookUrl: `http://127.0.0.1:${port}/notices` });
    secret = created.webhookSecret!;
    // The notices a CRL run leaves (the shape links.ts writes), committed together.
    const at = Date.now();
    await sqlOf(db).tx(async () => {
      for (let seq = 1; seq <= NOTICES; seq++) {
        const notice = {
          id: `library-${seq}`,
          type: 'link.suspended',
          serviceId: 'library',
          serviceUserId: `LIB-${String(seq).padStart(6, '0')}`,
          reason: 'keyCompromise',
          seq,
          at: new Date(at).toISOString(),
        };
        await repo.insertWebhook('library', JSON.stringify(notice), at);
      }
    });
    progress(`${NOTICES} notices pending; the receiver answers after ${LATENCY_MS} ms`);
    const sender = createWebhookSender({ repo, log: createLogger('bench-webhooks', { level: 'error' }), allowPrivateTargets: true, allowHttp: true, timeoutMs: 30_000 });
    const t0 = performance.now();
    while (notices < NOTICES) {
      const n = await sender.deliverDue();
      if (n === 0) await new Promise((r) => setTimeout(r, 50)); // a failed batch waits for its retry
    }
    await all;
    const ms = performance.now() - t0;
    await sender.stop();
    progress(`${notices} notices in ${requests} requests (${bad} refused), at most ${maxInFlight} in flight, in ${Math.round(ms)} ms`);
    if (bad > 0) throw new Error(`${bad} requests did not verify`);
    const key = NOTICES === 50_000 && LATENCY_MS === 50 ? 'webhook_50k_ms' : `webhook_${NOTICES}_${LATENCY_MS}ms_latency_ms`;
    return { [key]: { value: round(ms, 0), unit: 'ms' } };
  } finally {
    db.close();
    receiver.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
