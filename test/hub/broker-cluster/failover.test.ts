// Fail-over of the broker cluster under a revocation burst (issue #12): a three-node RabbitMQ 3.10
// cluster, the hub publishing its change log to it, and 100 edges running the real edge sync code
// (edge/sync: SyncAgent, its MQTT session with every node's URL, its apply queue and catch-up), each
// with its own device certificate. During a burst of 2,000 suspensions (a CRL run's, through the
// store's code, committed in chunks), the node the most edges are on, which the hub publishes through
// too, is killed with kill -9. Every edge must end at the hub's head having applied each entry exactly
// once and in order (a redelivered message is a duplicate the cache ignores; a lost one is a gap the
// catch-up fills), and the time to converge is printed. One cluster and fleet for the file.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { tapLogs } from '../../../shared/log.ts';
import { rabbitAvailable } from './helpers/rabbit-cluster.ts';
import { appliedProblem, linkMany, markOf, quorumSettled, startFleet, startHubs, suspendInChunks, type ClusterHubs, type Fleet } from './helpers/failover-harness.ts';

const EDGES = 100;
const BURST = 2000;
const CHUNK = 100;
const SERVICE = 'library';

interface Ctx {
  setup: ClusterHubs;
  fleet: Fleet;
  ids: string[];
}
const test = suite<Ctx>('fail-over of the broker cluster under a revocation burst', {} as Ctx);
// Without rabbitmq-server (CI installs it) the tests are reported as skipped, never as passed.
const it = (name: string, fn: (ctx: Ctx) => Promise<void>) => {
  if (rabbitAvailable) return test(name, fn);
  console.log(`skipped (rabbitmq-server is not installed): ${name}`);
  test.skip(name, fn);
};
// The hub's broker-cluster lines (refusals of the auth backend, the publisher moving), for a failure's report.
const hubLines: string[] = [];
tapLogs((r) => {
  if (r.name.includes('broker-cluster') || r.name.includes('outbox')) hubLines.push(r.line.slice(0, 300)) > 60 && hubLines.shift();
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.before(async (ctx) => {
  if (!rabbitAvailable) return;
  try {
    const t0 = Date.now();
    ctx.setup = await startHubs({ count: 1 });
    const h = ctx.setup.hubs[0]!;
    await h.hub.links.createService({ id: SERVICE, name: 'Town library', requireHolderProof: false });
    ctx.ids = await linkMany(h, SERVICE, BURST);
    const c = ctx.setup.cluster;
    // Every edge has all three nodes, starting from a different one (0, 1, 2, 0, ...): node 0 has the most.
    ctx.fleet = await startFleet(h, ctx.setup.deviceCa, { count: EDGES, serviceId: SERVICE, urlsFor: (i) => [0, 1, 2].map((k) => c.mqttsUrl((i + k) % 3)) });
    console.log(`cluster up in ${c.startMs} ms; ${EDGES} edges synced and connected ${Date.now() - t0} ms after the start`);
  } catch (e) {
    // uvu reports a failing `before` as failed tests without the cause.
    console.error(e);
    throw e;
  }
});

test.after(async (ctx) => {
  await ctx.fleet?.stop();
  await ctx.setup?.stop();
});

it('every edge converges to the head with each entry applied once and in order when a broker node is killed with kill -9 during a burst of 2,000 suspensions', async (ctx) => {
  const h = ctx.setup.hubs[0]!;
  const { edges } = ctx.fleet;
  const marks = new Map(edges.map((e) => [e, markOf(e)]));
  const before = await h.hub.links.headSeq(SERVICE);
  assert.ok(edges.every((e) => e.cache.appliedSeq === before), 'every edge at the head before the burst');
  const victim = 0; // the first URL of a third of the edges, plus one, and the hub's first node
  const onVictim = edges.filter((e) => e.urls[0] === ctx.setup.cluster.mqttsUrl(victim)).length;
  const connects = new Map(edges.map((e) => [e, e.agent.stats().connects]));
  const settleMs = await quorumSettled(ctx.setup.cluster, ctx.setup.plan.admin, EDGES);
  const t0 = Date.now();
  let killedAt = 0;
  const head = await suspendInChunks(h, SERVICE, ctx.ids, CHUNK, async (k) => {
    // After a quarter of the burst: the rest is committed while the edges and the hub move.
    if (k === 4) {
      ctx.setup.cluster.kill(victim);
      killedAt = Date.now();
    }
    await sleep(20);
  });
  assert.is(head, before + BURST);
  const deadline = Date.now() + 150_000;
  while (!edges.every((e) => e.cache.appliedSeq === head && e.agent.connected)) {
    if (Date.now() > deadline) {
      const behind = edges.filter((e) => e.cache.appliedSeq !== head || !e.agent.connected);
      console.error(`--- hub:\n${hubLines.join('\n')}`);
      for (const e of behind.slice(0, 3)) console.error(`--- ${e.edgeId} (urls ${e.urls.join(' ')}):\n${e.log.join('\n')}`);
      assert.unreachable(`${behind.length} edges not at head ${head} and connected 150 s after the burst: ${behind.slice(0, 5).map((e) => `${e.edgeId}@${e.cache.appliedSeq}${e.agent.connected ? '' : ' (down)'}`).join(', ')}`);
    }
    await sleep(100);
  }
  const convergedAt = Date.now();
  // Entries announced after the cache check (the journal write) are in by now; nothing else may come.
  await sleep(500);
  const problems = edges.map((e) => [e.edgeId, appliedProblem(e, marks.get(e)!, head)] as const).filter(([, p]) => p);
  assert.equal(problems.slice(0, 5), [], `${problems.length} edges applied wrongly`);
  const moved = edges.filter((e) => e.agent.stats().connects > connects.get(e)!).length;
  const stats = edges.map((e) => e.agent.stats());
  const sum = (k: keyof (typeof stats)[number]) => stats.reduce((s, x) => s + x[k], 0);
  console.log(
    `failover (sessions settled in ${settleMs} ms): ${BURST} suspensions to ${EDGES} edges, node ${victim + 1} (first node of ${onVictim} edges and of the hub) killed after ${killedAt - t0} ms; ` +
      `every edge at seq ${head} ${convergedAt - killedAt} ms after the kill (${convergedAt - t0} ms after the burst began); ` +
      `${moved} edges reconnected; duplicates ignored ${sum('duplicates')}, gaps caught up ${sum('gaps')}, catch-ups ${sum('catchUps')}`,
  );
  // Those that had the killed node first moved (unless a first connection under load went elsewhere).
  assert.ok(moved > 0, `${moved} edges reconnected, ${onVictim} had the killed node first`);
  // The hub's publisher moved too: every entry was taken by a node.
  const left = () => (h.hub.db.prepare('SELECT COUNT(*) AS n FROM mqtt_outbox').get() as { n: number }).n;
  const end = Date.now() + 30_000;
  while (left() > 0 && Date.now() < end) await sleep(100);
  assert.is(left(), 0, 'the hub outbox drained');
});

// HUB REPLICA KILL (after the PostgreSQL store, hub/store): start two hubs on one shared store with
// startHubs({ count: 2, store: postgresStore }), run the same burst from hub 0, kill -9 hub 0's
// process (hubs then run as child processes, not in this one) after a quarter of it, and check the
// same convergence: hub 1's outbox publishes what hub 0 committed and did not hand to a node.

test.run();
