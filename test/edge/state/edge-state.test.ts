import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, appendFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EdgeCache } from '../../../edge/cache/edge-cache.ts';
import { KeyIndex } from '../../../edge/cache/key-index.ts';
import { EdgeState } from '../../../edge/state/edge-state.ts';
import { createLogger } from '../../../shared/log.ts';
import { entryFor, modelAt } from './helpers/workload.ts';
import { until } from '../../helpers/polling.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'edge-state-'));
  dirs.push(d);
  return d;
};
const identity = { edgeId: 'edge-1', serviceId: 'library', syncSecret: Buffer.alloc(32, 7).toString('base64url') };

function capture() {
  const lines: string[] = [];
  return { lines, log: createLogger('test', { level: 'debug', write: (l) => lines.push(l) }) };
}

async function seeded(dir: string, upTo: number, opts: { compactEveryEntries?: number } = {}) {
  const cache = new EdgeCache();
  const state = new EdgeState({ dir, ...opts });
  await state.open(cache);
  await state.setIdentity(identity);
  cache.replace(new KeyIndex(), 0);
  await state.checkpoint();
  for (let s = 1; s <= upTo; s++) {
    cache.apply(entryFor(s));
    await state.recordApplied([entryFor(s)]);
  }
  return { cache, state };
}

async function reopen(dir: string, log = capture().log) {
  const cache = new EdgeCache();
  const state = new EdgeState({ dir, log });
  const report = await state.open(cache);
  return { cache, state, report };
}

test('starts empty and unsynced in a new directory', async () => {
  const { cache, state, report } = await reopen(tmp());
  assert.is(report.checkpoint, 'missing');
  assert.is(cache.synced, false);
  assert.is(cache.appliedSeq, 0);
  await state.close();
});

test('restores checkpoint plus journal to the same mappings and seq', async () => {
  const dir = tmp();
  const a = await seeded(dir, 230, { compactEveryEntries: 100 });
  assert.is(a.state.journalCount, 30); // two checkpoints folded 200 records
  await a.state.close();
  const b = await reopen(dir);
  assert.is(b.report.checkpoint, 'ok');
  assert.is(b.report.replayed, 30);
  assert.is(b.cache.appliedSeq, 230);
  assert.equal(new Map(b.cache.index.entries()), modelAt(230));
  assert.is(b.state.identity()?.serviceId, 'library');
  assert.ok(b.cache.hasSecret);
  await b.state.close();
});

test('drops a torn journal tail and keeps every intact record before it', async () => {
  const dir = tmp();
  const a = await seeded(dir, 20);
  await a.state.close();
  const jp = join(dir, 'journal.log');
  const intact = readFileSync(jp);
  const cases: [string, Buffer][] = [
    ['half a record', Buffer.from('0badc0de {"g":1,"s":21,"r":[')],
    ['a record with a wrong CRC', Buffer.from('00000000 {"g":1,"s":21,"r":[]}\n')],
    ['garbage bytes', Buffer.from([0xff, 0x00, 0x13, 0x37, 0x0a, 0x41])],
  ];
  for (const [name, tail] of cases) {
    writeFileSync(jp, intact);
    appendFileSync(jp, tail);
    const { lines, log } = capture();
    const b = await reopen(dir, log);
    assert.is(b.cache.appliedSeq, 20, name);
    assert.ok(b.report.droppedBytes > 0, name);
    assert.ok(
      lines.some((l) => l.includes('journal tail was torn')),
      name,
    );
    assert.equal(new Map(b.cache.index.entries()), modelAt(20), name);
    await b.state.close();
    assert.is(statSync(jp).size, intact.length, `${name}: truncated back`);
  }
});

test('detects a corrupt checkpoint, says so, sets it aside and asks for a snapshot', async () => {
  const dir = tmp();
  const a = await seeded(dir, 50, { compactEveryEntries: 10 });
  await a.state.close();
  const cp = join(dir, 'checkpoint.json');
  const buf = readFileSync(cp);
  buf[buf.length - 10] ^= 0x01; // one flipped bit in the body
  writeFileSync(cp, buf);
  const { lines, log } = capture();
  const b = await reopen(dir, log);
  assert.is(b.report.checkpoint, 'corrupt');
  assert.is(b.cache.synced, false);
  assert.is(b.cache.size, 0);
  assert.ok(lines.some((l) => l.includes('checkpoint is corrupt') && l.includes('state_corrupt')));
  assert.ok(readdirSync(dir).includes('checkpoint.json.corrupt'));
  assert.is(b.state.journalCount, 0, 'journal without its checkpoint is emptied');
  await b.state.close();
});

test('resets counters when meta is corrupt, and keeps counters across restarts otherwise', async () => {
  const dir = tmp();
  const a = await seeded(dir, 1);
  a.state.count('touches', 3);
  a.state.count('handoffs');
  await a.state.close();
  const b = await reopen(dir);
  assert.equal(b.state.counters(), { touches: 3, handoffs: 1, notLinked: 0, refused: 0, errors: 0 });
  await b.state.close();
  writeFileSync(join(dir, 'meta.json'), 'MYKEY-STATE 1 nonsense\n{}');
  const { lines, log } = capture();
  const c = await reopen(dir, log);
  assert.equal(c.state.counters().touches, 0);
  assert.is(c.state.identity(), undefined);
  assert.ok(lines.some((l) => l.includes('meta.json is corrupt')));
  await c.state.close();
});

test('drops the cache when the hub gives another service or a new secret', async () => {
  const dir = tmp();
  const a = await seeded(dir, 10);
  const r = await a.state.setIdentity({ ...identity, syncSecret: Buffer.alloc(32, 9).toString('base64url') });
  assert.equal(r, { changed: true, resync: true });
  assert.is(a.cache.synced, false);
  assert.equal(await a.state.setIdentity({ ...identity, syncSecret: Buffer.alloc(32, 9).toString('base64url') }), { changed: false, resync: false });
  await a.state.close();
});

test('folds the journal into a checkpoint after a while even below the entry count', async () => {
  const dir = tmp();
  const cache = new EdgeCache();
  const state = new EdgeState({ dir, compactEveryEntries: 1000, compactEveryMs: 100 });
  await state.open(cache);
  cache.replace(new KeyIndex(), 0);
  await state.checkpoint();
  for (let s = 1; s <= 5; s++) {
    cache.apply(entryFor(s));
    await state.recordApplied([entryFor(s)]);
  }
  assert.is(state.journalCount, 5);
  await until(() => state.journalCount === 0, { what: 'the journal to be checkpointed away' });
  await state.close();
  const b = await reopen(dir);
  assert.is(b.report.replayed, 0);
  assert.is(b.cache.appliedSeq, 5);
  await b.state.close();
});

test('keeps no record of touches: only mappings, counters, identity and last contact are on disk', async () => {
  const dir = tmp();
  const a = await seeded(dir, 30, { compactEveryEntries: 10 });
  for (let i = 0; i < 100; i++) a.state.count('touches');
  a.state.recordContact(Date.parse('2026-05-01T00:00:00Z'));
  await a.state.close();
  assert.equal(readdirSync(dir).sort(), ['checkpoint.json', 'journal.log', 'meta.json']);
  const meta = readFileSync(join(dir, 'meta.json'), 'utf8').split('\n')[1];
  assert.equal(Object.keys(JSON.parse(meta)).sort(), ['counters', 'identity', 'lastContactWall', 'v']);
});

test('survives kill -9 at random moments: reopens consistent every time, never losing an acknowledged entry', async () => {
  const dir = tmp();
  const child = fileURLToPath(new URL('./helpers/state-writer.ts', import.meta.url));
  let lastSeq = 0;
  const rounds = Number(process.env.KILL_ROUNDS ?? 25);
  let seed = 99;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  for (let round = 0; round < rounds; round++) {
    const p = spawn(process.execPath, ['--import', 'tsx', child, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((res) => p.on('exit', (code) => res(code)));
    const ready = await new Promise<number>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`child not ready: ${err}`)), 20_000);
      p.stdout.on('data', () => {
        const m = /ready (\d+)/.exec(out);
        if (m) {
          clearTimeout(t);
          res(Number(m[1]));
        }
      });
      p.on('exit', () => rej(new Error(`child exited early: ${err}`)));
    });
    // What the child loaded is what the last round left: nothing acknowledged was lost.
    assert.ok(ready >= lastSeq, `round ${round}: child loaded ${ready} after ${lastSeq}`);
    await new Promise((r) => setTimeout(r, 20 + rnd(250)));
    p.kill('SIGKILL');
    await exited;
    const { lines, log } = capture();
    const b = await reopen(dir, log);
    assert.is(b.report.checkpoint, 'ok', `round ${round}: ${lines.join('\n')}`);
    assert.ok(b.cache.appliedSeq >= ready, `round ${round}: seq went back`);
    assert.equal(new Map(b.cache.index.entries()), modelAt(b.cache.appliedSeq), `round ${round}: mappings at seq ${b.cache.appliedSeq}`);
    assert.ok(b.state.counters().touches >= 0);
    await b.state.close();
    lastSeq = b.cache.appliedSeq;
  }
  assert.ok(lastSeq > rounds, `progress was made (${lastSeq})`);
});

test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test.run();
