import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Handoff } from '../../../edge/handoff/handoff.ts';
import { SocketTarget, StreamTarget, removeStaleSocket } from '../../../edge/handoff/json-lines.ts';
import type { HandoffTarget, TouchResult } from '../../../edge/handoff/types.ts';
import { until } from '../../helpers/polling.ts';

const dir = mkdtempSync(join(tmpdir(), 'mykey-handoff-'));
const result = (i: number, extra: Partial<TouchResult> = {}): TouchResult => ({
  transaction: `t-${i}`,
  outcome: 'linked',
  serviceId: 'library',
  edgeId: 'counter-1',
  reader: 'r',
  at: new Date(0).toISOString(),
  serviceUserId: `LIB-${i}`,
  mykeyId: 'B7NQ4KXW',
  ...extra,
});

/** Connects to a Unix socket and collects its JSON lines. */
async function listener(path: string): Promise<{ lines: unknown[]; sock: Socket; next(n: number): Promise<void> }> {
  const lines: unknown[] = [];
  let buf = '';
  const sock = createConnection(path);
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  sock.on('data', (d) => {
    buf += d;
    let i: number;
    // biome-ignore lint/suspicious/noAssignInExpressions: the usual split-into-lines loop; the assignment is its condition
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  return {
    lines,
    sock,
    async next(n) {
      await until(() => lines.length >= n, { what: `${n} lines`, detail: () => `only ${lines.length} lines` });
    },
  };
}

test('writes one JSON line per touch to a stream, without the MyKey ID', () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d) => (text += d));
  const t = new StreamTarget({ out });
  t.deliver(result(1));
  t.deliver(result(2, { outcome: 'not_linked', serviceUserId: undefined }));
  const lines = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.is(lines.length, 2);
  assert.is(lines[0].serviceUserId, 'LIB-1');
  assert.is(lines[1].outcome, 'not_linked');
  assert.not.ok(text.includes('B7NQ4KXW'));
});

test('every program connected to the socket gets every line', async () => {
  const path = join(dir, 'handoff.sock');
  const t = new SocketTarget({ path });
  await t.start();
  try {
    assert.is(statSync(path).mode & 0o777, 0o660);
    const a = await listener(path);
    const b = await listener(path);
    await new Promise((r) => setTimeout(r, 20)); // the server has seen both connections
    t.deliver(result(1));
    t.deliver(result(2));
    await a.next(2);
    await b.next(2);
    assert.equal(
      (a.lines as TouchResult[]).map((l) => l.serviceUserId),
      ['LIB-1', 'LIB-2'],
    );
    assert.equal(a.lines, b.lines);
    assert.is((a.lines[0] as TouchResult).mykeyId, undefined);
    a.sock.destroy();
    b.sock.destroy();
  } finally {
    await t.stop();
  }
  assert.not.ok(existsSync(path), 'the socket file is removed on stop');
});

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable('expected a rejection');
}

test('takes over a socket file left by a killed process, but never a live socket or another file', async () => {
  const stale = join(dir, 'stale.sock');
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)})`], { stdio: 'ignore' });
  await until(() => existsSync(stale), { what: 'the child to listen' });
  await rejects(removeStaleSocket(stale), /served by another process/);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(existsSync(stale), 'a killed listener leaves its socket file');
  const t = new SocketTarget({ path: stale });
  await t.start();
  await t.stop();
  const plain = join(dir, 'plain.txt');
  writeFileSync(plain, 'x');
  await rejects(removeStaleSocket(plain), /not a socket/);
  await removeStaleSocket(join(dir, 'absent.sock'));
});

test('the fan-out sends each outcome only where it is wanted and survives a throwing target', async () => {
  const seen: string[] = [];
  const rec = (name: string): HandoffTarget => ({ name, deliver: (r) => void seen.push(`${name}:${r.outcome}`), stats: () => ({}) });
  const thrower: HandoffTarget = {
    name: 'bad',
    deliver: () => {
      throw new Error('boom');
    },
    stats: () => ({}),
  };
  const h = new Handoff([
    { target: thrower, outcomes: ['linked'] },
    { target: rec('business'), outcomes: ['linked', 'degraded'] },
    { target: rec('kiosk'), outcomes: ['linked', 'not_linked', 'refused', 'degraded'] },
  ]);
  h.dispatch(result(1));
  h.dispatch(result(2, { outcome: 'not_linked' }));
  h.dispatch(result(3, { outcome: 'degraded' }));
  assert.equal(seen, ['business:linked', 'kiosk:linked', 'kiosk:not_linked', 'business:degraded', 'kiosk:degraded']);
  assert.is(h.stats().handoff.targetErrors, 1);
  assert.is(h.stats().handoff.dispatched, 3);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
