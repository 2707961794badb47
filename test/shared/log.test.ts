// The one logger's privacy safety net: fields named after identifiers are redacted at every level,
// and a tap sees every record, even of a logger whose level drops it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger, silentLogger, tapLogs, type LogRecord } from '../../shared/log.ts';

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
  assert.equal(seen.map((r) => [r.level, r.name]), [['info', 'silent.edge'], ['debug', 'hub']]);
  assert.match(seen[0].line, /snapshot applied/);
});

test.run();
