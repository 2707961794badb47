// The lifecycle runner: components start in order and stop in reverse, a failed start stops what had
// started, stop is idempotent, and every step is logged with its timing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLifecycle, type Component, type LifecycleLog } from '../../shared/lifecycle.ts';

/** Components that write what happens to them into one journal. */
function parts(names: string[], fail: { start?: string; stop?: string } = {}) {
  const journal: string[] = [];
  const components: Component[] = names.map((name) => ({
    name,
    async start() {
      await Promise.resolve();
      if (fail.start === name) throw new Error(`${name} cannot start`);
      journal.push(`start ${name}`);
    },
    async stop() {
      await Promise.resolve();
      journal.push(`stop ${name}`);
      if (fail.stop === name) throw new Error(`${name} cannot stop`);
    },
  }));
  return { journal, components };
}

function recordingLog() {
  const lines: { level: 'info' | 'error'; msg: string; meta?: Record<string, unknown> }[] = [];
  const log: LifecycleLog = {
    info: (msg, meta) => lines.push({ level: 'info', msg, meta }),
    error: (msg, meta) => lines.push({ level: 'error', msg, meta }),
  };
  return { log, lines };
}

test('starts components in the order listed and stops them in reverse', async () => {
  const { journal, components } = parts(['store', 'broker', 'http']);
  const life = createLifecycle(components, { log: recordingLog().log });
  await life.start();
  assert.equal(life.running, ['store', 'broker', 'http']);
  await life.stop();
  assert.equal(journal, ['start store', 'start broker', 'start http', 'stop http', 'stop broker', 'stop store']);
  assert.equal(life.running, []);
});

test('a start that fails half-way stops what had started, in reverse, and passes the error on', async () => {
  const { journal, components } = parts(['store', 'broker', 'http', 'metrics'], { start: 'http' });
  const { log, lines } = recordingLog();
  const life = createLifecycle(components, { log });
  await life.start().then(
    () => assert.unreachable('the start should fail'),
    (e: Error) => assert.is(e.message, 'http cannot start'),
  );
  // The failed component undoes its own half; metrics never starts.
  assert.equal(journal, ['start store', 'start broker', 'stop broker', 'stop store']);
  assert.equal(life.running, []);
  assert.ok(lines.some((l) => l.level === 'error' && l.meta?.component === 'http'));
  // Stopping afterwards stops nothing twice.
  await life.stop();
  assert.equal(journal, ['start store', 'start broker', 'stop broker', 'stop store']);
});

test('stop is idempotent: a second call stops nothing again and a call before start stops nothing', async () => {
  const never = parts(['a', 'b']);
  const idle = createLifecycle(never.components, { log: recordingLog().log });
  await idle.stop();
  await idle.stop();
  assert.equal(never.journal, []);

  const { journal, components } = parts(['a', 'b']);
  const life = createLifecycle(components, { log: recordingLog().log });
  await life.start();
  const first = life.stop();
  const second = life.stop();
  assert.is(first, second);
  await Promise.all([first, second, life.stop()]);
  assert.equal(journal, ['start a', 'start b', 'stop b', 'stop a']);
});

test('a stop that fails is logged, the other components still stop, and the first failure is passed on', async () => {
  const { journal, components } = parts(['a', 'b', 'c'], { stop: 'b' });
  const { log, lines } = recordingLog();
  const life = createLifecycle(components, { log });
  await life.start();
  await life.stop().then(
    () => assert.unreachable('the stop should fail'),
    (e: Error) => assert.is(e.message, 'b cannot stop'),
  );
  assert.equal(journal, ['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
  assert.ok(lines.some((l) => l.level === 'error' && l.meta?.component === 'b'));
});

test('a stop during the start lets the current component finish, starts no further one, and stops what started', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const journal: string[] = [];
  const slow: Component = {
    name: 'slow',
    start: async () => {
      await gate;
      journal.push('start slow');
    },
    stop: async () => void journal.push('stop slow'),
  };
  const later: Component = { name: 'later', start: async () => void journal.push('start later'), stop: async () => void journal.push('stop later') };
  const life = createLifecycle([slow, later], { log: recordingLog().log });
  const started = life.start();
  const stopped = life.stop();
  release();
  await started.then(
    () => assert.unreachable('the start should be cut short'),
    (e: Error) => assert.match(e.message, /stopped while starting/),
  );
  await stopped;
  assert.equal(journal, ['start slow', 'stop slow']);
  await life.start().then(
    () => assert.unreachable('a stopped lifecycle does not start again'),
    () => undefined,
  );
});

test('start is idempotent: a second call returns the first promise and starts nothing twice', async () => {
  const { journal, components } = parts(['a']);
  const life = createLifecycle(components, { log: recordingLog().log });
  const first = life.start();
  assert.is(life.start(), first);
  await first;
  assert.equal(journal, ['start a']);
  await life.stop();
});

test('each start and stop is logged with its component and timing', async () => {
  const { components } = parts(['store', 'http']);
  const { log, lines } = recordingLog();
  let t = 0;
  const life = createLifecycle(components, { log, now: () => (t += 5) });
  await life.start();
  await life.stop();
  assert.equal(
    lines.map((l) => [l.level, l.msg, l.meta?.component, l.meta?.ms]),
    [
      ['info', 'store started', 'store', 5],
      ['info', 'http started', 'http', 5],
      ['info', 'http stopped', 'http', 5],
      ['info', 'store stopped', 'store', 5],
    ],
  );
});

test('two components of one name are refused when the lifecycle is made', () => {
  const { components } = parts(['a', 'a']);
  assert.throws(() => createLifecycle(components, { log: recordingLog().log }), /two components are named a/);
});

test.run();
