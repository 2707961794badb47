// The one logger's privacy safety net: fields named after identifiers are redacted at every level,
// and a tap sees every record, even of a logger whose level drops it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createLogger, logFormatIsJson, silentLogger, tapLogs, type LogRecord } from '../../shared/log.ts';

test('redacts MyKey IDs, service IDs and serials passed as fields, at every level and in both formats', () => {
  for (const json of [false, true]) {
    const lines: string[] = [];
    const log = createLogger('t', { level: 'debug', json, write: (l) => void lines.push(l) });
    log.info('linked', { mykeyId: 'B7NQ4KXW', serviceUserId: 'LIB-000123', serialHex: '0a1b2c3d', seq: 7 });
    log.debug('bound', { serial: '12345678901', mykey_id: 'Q9RT5HZC', service_user_id: 'P-777' });
    for (const s of ['B7NQ4KXW', 'LIB-000123', '0a1b2c3d', '12345678901', 'Q9RT5HZC', 'P-777']) assert.not.ok(lines.join('\n').includes(s), `${s} in ${lines.join('\n')}`);
    assert.ok(lines[0].includes('7'), 'other fields are kept');
  }
});

test('a tap sees every record, whatever the logger level, until removed', () => {
  const seen: LogRecord[] = [];
  const off = tapLogs((r) => void seen.push(r));
  silentLogger.child('edge').info('snapshot applied', { seq: 3 });
  createLogger('hub', { level: 'error', write: () => {} }).debug('quiet');
  off();
  silentLogger.info('after');
  assert.equal(
    seen.map((r) => [r.level, r.name]),
    [
      ['info', 'silent.edge'],
      ['debug', 'hub'],
    ],
  );
  assert.match(seen[0].line, /snapshot applied/);
});

test('a JSON line is one pino record: level label, time, name, message, fields, identifiers and secrets redacted even one level down', () => {
  const lines: string[] = [];
  const log = createLogger('hub', { level: 'info', json: true, write: (l) => void lines.push(l) }).child('http');
  log.info('request', {
    mykeyId: 'B7NQ4KXW',
    serviceUserId: 'LIB-000123',
    serial: '0a1b2c3d',
    serialHex: '0a1b2c3d',
    pin: '1234',
    token: 'tok-SECRET',
    password: 'hunter22',
    nested: { mykeyId: 'Q9RT5HZC', serialHex: 'ffee01', kept: 1 },
    status: 200,
    error: new Error('boom'),
  });
  assert.is(lines.length, 1);
  const rec = JSON.parse(lines[0]) as Record<string, unknown>;
  assert.is(rec.level, 'info');
  assert.is(rec.name, 'hub.http');
  assert.is(rec.msg, 'request');
  assert.ok(!Number.isNaN(Date.parse(String(rec.time))), 'an ISO time');
  assert.is(rec.status, 200);
  for (const k of ['mykeyId', 'serviceUserId', 'serial', 'serialHex', 'pin', 'token', 'password']) assert.is(rec[k], '[redacted]', k);
  assert.equal(rec.nested, { mykeyId: '[redacted]', serialHex: '[redacted]', kept: 1 });
  assert.equal(rec.error, { error: 'boom' });
  for (const s of ['B7NQ4KXW', 'LIB-000123', '0a1b2c3d', '1234', 'tok-SECRET', 'hunter22', 'Q9RT5HZC', 'ffee01']) assert.not.ok(lines[0].includes(s), s);
});

test('the human form keeps the old shape: time, level, name: message and the fields', () => {
  const lines: string[] = [];
  createLogger('edge', { level: 'debug', json: false, write: (l) => void lines.push(l) })
    .child('sync')
    .warn('out of touch', { ageMs: 5, token: 'x-SECRET' });
  assert.match(lines[0], /^\d{4}-\d\d-\d\dT[\d:.]+Z warn {2}edge\.sync: out of touch \{"ageMs":5,"token":"\[redacted\]"\}$/);
});

test('JSON lines in production, the human form on a terminal or in development, MYKEY_LOG_FORMAT decides first', () => {
  const table: [NodeJS.ProcessEnv, boolean, boolean][] = [
    [{}, false, true],
    [{ NODE_ENV: 'production' }, false, true],
    [{}, true, false],
    [{ NODE_ENV: 'development' }, false, false],
    [{ MYKEY_LOG_FORMAT: 'json' }, true, true],
    [{ MYKEY_LOG_FORMAT: 'pretty' }, false, false],
  ];
  for (const [env, tty, json] of table) assert.is(logFormatIsJson(env, tty), json, JSON.stringify({ env, tty }));
});

// stderr gets the lines of one turn of the event loop in one write: none may be lost or reordered
// when the process ends in that very turn, by process.exit or by an uncaught exception.
for (const ending of ['exit', 'throw', 'return'] as const) {
  test(`every stderr line is written, in order, when the process ends (${ending}) right after logging`, () => {
    const logModule = fileURLToPath(new URL('../../shared/log.ts', import.meta.url));
    const script = `
      import { createLogger } from ${JSON.stringify(logModule)};
      const log = createLogger('t', { json: true, level: 'info' });
      for (let i = 0; i < 500; i++) log.info('line', { i });
      process.stderr.write('');
      ${ending === 'exit' ? 'process.exit(3);' : ending === 'throw' ? "throw new Error('boom');" : ''}
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('{'));
    assert.is(lines.length, 500, r.stderr.slice(-500));
    lines.forEach((l, i) => void assert.is((JSON.parse(l) as { i: number }).i, i));
    if (ending === 'exit') assert.is(r.status, 3);
    if (ending === 'throw') assert.ok(r.stderr.includes('boom'));
  });
}

test.run();
