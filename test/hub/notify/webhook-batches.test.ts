// Webhook notices in batches: many pending notices of a service go as signed batches, several in
// flight, each verifying with the shared helper; every notice arrives once with its own id and seq;
// a refused batch keeps its notices and they go again; a lone notice goes as the notice itself.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLinks } from '../../../hub/links/links.ts';
import { createWebhookSender, type NoticeBatch } from '../../../hub/notify/webhooks.ts';
import { openDatabase, type Db } from '../../../hub/store/db.ts';
import { sqlOf } from '../../../hub/store/sql.ts';
import { createLinkRepo, type LinkRepo } from '../../../hub/store/link-repo.ts';
import { createMyKeyRepo } from '../../../hub/store/mykey-repo.ts';
import { silentLogger } from '../../../shared/log.ts';
import { verifyWebhook } from '../../../shared/webhook-signature.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../../helpers/webhook-receiver.ts';
import { sleep } from '../../helpers/polling.ts';

type Notice = { id: string; type: string; seq: number };
interface Ctx {
  dir: string;
  db: Db;
  repo: LinkRepo;
  secret: string;
  server: WebhookReceiver;
  /** Status answered per request, in order; 204 once used up. */
  answers: number[];
  got: { body: string; id: string; verified: boolean; status: number }[];
  inFlight: number;
  maxInFlight: number;
}
const test = suite<Ctx>('webhook notices in batches', {} as Ctx);

test.before.each(async (ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'notices-'));
  ctx.db = openDatabase(join(ctx.dir, 'hub.sqlite'));
  ctx.repo = createLinkRepo(ctx.db);
  ctx.answers = [];
  ctx.got = [];
  ctx.inFlight = ctx.maxInFlight = 0;
  // A business system that takes 20 ms per notice, counting how many the hub has in flight at once.
  ctx.server = await startWebhookReceiver(async ({ body, headers }) => {
    ctx.inFlight++;
    ctx.maxInFlight = Math.max(ctx.maxInFlight, ctx.inFlight);
    await sleep(20);
    ctx.inFlight--;
    const status = ctx.answers.shift() ?? 204;
    ctx.got.push({ body, id: String(headers['webhook-id']), verified: verifyWebhook(ctx.secret, body, headers).ok, status });
    return status;
  });
  const links = createLinks({ sql: ctx.db, repo: ctx.repo, mykeys: createMyKeyRepo(ctx.db) });
  ctx.secret = (await links.createService({ id: 'library', name: 'Library', webhookUrl: ctx.server.url('/n') })).webhookSecret!;
});
test.after.each(async (ctx) => {
  ctx.db.close();
  await ctx.server.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

async function pending(ctx: Ctx, count: number, from = 1): Promise<void> {
  await sqlOf(ctx.db).tx(async () => {
    for (let seq = from; seq < from + count; seq++)
      await ctx.repo.insertWebhook(
        'library',
        JSON.stringify({ id: `library-${seq}`, type: 'link.suspended', serviceId: 'library', serviceUserId: `U-${seq}`, seq, at: new Date().toISOString() }),
        Date.now(),
      );
  });
}
const noticesOf = (body: string): Notice[] => {
  const b = JSON.parse(body) as NoticeBatch | Notice;
  return b.type === 'notices' ? ((b as NoticeBatch).notices as Notice[]) : [b as Notice];
};

test('many pending notices go as signed batches, several in flight, each notice once', async (ctx) => {
  await pending(ctx, 1000);
  const s = createWebhookSender({ repo: ctx.repo, log: silentLogger, allowPrivateTargets: true, allowHttp: true, batchSize: 100, inFlight: 3 });
  assert.is(await s.deliverDue(), 1000);
  await s.stop();
  assert.is(ctx.got.length, 10);
  assert.ok(
    ctx.got.every((g) => g.verified),
    'every batch verifies with the shared helper',
  );
  assert.ok(ctx.got.every((g) => /^mykey-notices-\d+-\d+$/.test(g.id)));
  assert.is(ctx.maxInFlight, 3);
  const seqs = ctx.got.flatMap((g) => noticesOf(g.body).map((n) => n.seq)).sort((a, b) => a - b);
  assert.equal(
    seqs,
    Array.from({ length: 1000 }, (_, i) => i + 1),
  );
  assert.is((await ctx.repo.webhookHealth('library')).pending, 0);
});

test('a refused batch keeps its notices, which go again on the retry', async (ctx) => {
  await pending(ctx, 250);
  ctx.answers = [503];
  const s = createWebhookSender({ repo: ctx.repo, log: silentLogger, allowPrivateTargets: true, allowHttp: true, batchSize: 100, inFlight: 3, baseDelayMs: 200 });
  const first = await s.deliverDue();
  assert.is(first, 150, 'two of the three batches were taken');
  const health = await ctx.repo.webhookHealth('library');
  assert.is(health.pending, 100);
  assert.match(health.last_error ?? '', 'HTTP 503');
  assert.is(await s.deliverDue(), 0, 'not due before its retry time');
  await new Promise((r) => setTimeout(r, 300));
  assert.is(await s.deliverDue(), 100);
  await s.stop();
  const ok = ctx.got.filter((g) => g.status === 204).flatMap((g) => noticesOf(g.body).map((n) => n.seq));
  assert.equal(
    [...ok].sort((a, b) => a - b),
    Array.from({ length: 250 }, (_, i) => i + 1),
    'each delivered notice once',
  );
  assert.ok(ctx.got.every((g) => g.verified));
});

test('a lone pending notice goes as the notice itself, with its own webhook id', async (ctx) => {
  await pending(ctx, 1);
  const s = createWebhookSender({ repo: ctx.repo, log: silentLogger, allowPrivateTargets: true, allowHttp: true });
  assert.is(await s.deliverDue(), 1);
  await s.stop();
  assert.is(ctx.got.length, 1);
  assert.is(ctx.got[0].id, 'mykey-notice-1');
  assert.is((JSON.parse(ctx.got[0].body) as Notice).type, 'link.suspended');
  assert.ok(ctx.got[0].verified);
});

test.run();
