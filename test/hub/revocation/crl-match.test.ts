// Writing a CRL run's revocations (crl-match.ts writeRevocations): chunks of short transactions, and
// the outboxes told of the suspensions in rounds (at most every 250 ms, and at the end), not after
// every chunk, where a publishing round per chunk competed with requests for the run's free turns.
// What committed before a failing chunk is still told.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Emitter } from '../../../shared/typed-events.ts';
import type { FanoutEvents } from '../../../hub/fanout.ts';
import { createSlicer, writeRevocations, type Hit } from '../../../hub/revocation/crl-match.ts';
import type { MyKeyRepo } from '../../../hub/store/mykey-repo.ts';

const hits: Hit[] = Array.from({ length: 20_000 }, (_, i) => ({ bindingId: i + 1, mykeyId: `M${i}`, state: 'current', revokedAt: 1000, reason: 'keyCompromise' }));

/** A store whose applyRevocations suspends every hit of a chunk (taking `ms` each), and fails at chunk `failAt` (if given). */
function store(failAt?: number, ms = 0) {
  const chunks: number[] = [];
  const repo = {
    async applyRevocations(chunk: readonly Hit[]): Promise<number> {
      if (ms > 0) await new Promise((r) => setTimeout(r, ms));
      if (chunks.length === failAt) throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
      chunks.push(chunk.length);
      return chunk.length;
    },
  };
  return { chunks, mykeys: repo as unknown as MyKeyRepo };
}

function events() {
  const told: number[] = [];
  /** Whether each event said more was coming. */
  const more: boolean[] = [];
  const bus: Emitter<FanoutEvents> = {
    emit: (e, payload) => {
      if (e !== 'suspended') return;
      told.push(performance.now());
      more.push((payload as FanoutEvents['suspended']).more === true);
    },
  };
  return { told, more, bus };
}

async function drive(it: AsyncGenerator<void, number>): Promise<number> {
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}

test('every hit is written, in several chunks, and the outboxes are told in rounds and once at the end', async () => {
  const { chunks, mykeys } = store();
  const { told, bus } = events();
  /** Suspensions written when each event came. */
  const written: number[] = [];
  const count = bus.emit;
  bus.emit = (e, payload) => {
    if (e === 'suspended') written.push(chunks.reduce((a, b) => a + b, 0));
    count(e, payload);
  };
  const n = await drive(writeRevocations(mykeys, hits, { now: () => 2000, slicer: createSlicer(5), report: () => {}, events: bus }));
  assert.is(n, hits.length);
  assert.is(
    chunks.reduce((a, b) => a + b, 0),
    hits.length,
  );
  assert.ok(chunks.length > 1, `${chunks.length} chunks`);
  assert.ok(told.length >= 1 && told.length < chunks.length, `told ${told.length} times for ${chunks.length} chunks`);
  // Rounds at least 250 ms or about a whole batch of suspensions (1,300) apart, never per chunk.
  for (let i = 1; i < told.length - 1; i++) assert.ok(told[i] - told[i - 1] >= 240 || written[i] - written[i - 1] >= 1300, `round ${i}: ${written[i] - written[i - 1]} suspensions after the last`);
});

test('a failing chunk fails the run, and what committed before it is still told', async () => {
  const { chunks, mykeys } = store(3);
  const { told, more, bus } = events();
  let code: unknown;
  try {
    await drive(writeRevocations(mykeys, hits, { now: () => 2000, slicer: createSlicer(5), report: () => {}, events: bus }));
  } catch (e) {
    code = (e as { code?: unknown }).code;
  }
  assert.is(code, 'SQLITE_IOERR');
  assert.is(chunks.length, 3);
  // Told at least once after the failure, and that last event releases whatever the outboxes held.
  assert.ok(told.length >= 1 && told.at(-1)! >= performance.now() - 1000);
  assert.is(more.at(-1), false);
});

test('events while the run goes on writing say more is coming; the last one, at the end or after a failing chunk, does not', async () => {
  const slow = store(undefined, 20);
  const a = events();
  await drive(writeRevocations(slow.mykeys, hits.slice(0, 600), { now: () => 2000, slicer: createSlicer(5), report: () => {}, events: a.bus }));
  assert.ok(a.more.length >= 2, `told ${a.more.length} times`);
  assert.equal(a.more, [...a.more.slice(0, -1).map(() => true), false]);
  const failing = store(40, 20);
  const b = events();
  await drive(writeRevocations(failing.mykeys, hits.slice(0, 600), { now: () => 2000, slicer: createSlicer(5), report: () => {}, events: b.bus })).catch(() => undefined);
  assert.ok(b.more.length >= 2 && b.more[0], `told ${b.more.length} times`);
  assert.is(b.more.at(-1), false, 'what the outboxes held back goes after the failure');
});

test('a run that suspends nothing tells nobody', async () => {
  const { told, bus } = events();
  const none = { applyRevocations: async () => 0 } as unknown as MyKeyRepo;
  assert.is(await drive(writeRevocations(none, hits.slice(0, 50), { now: () => 2000, slicer: createSlicer(5), report: () => {}, events: bus })), 0);
  assert.is(told.length, 0);
});

test.run();
