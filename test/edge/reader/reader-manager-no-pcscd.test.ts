// The real pcsclite binding pointed at a PC/SC socket where no pcscd listens (libpcsclite reads
// PCSCLITE_CSOCK_NAME when the manager first loads it in start(), so this process never touches the
// machine's pcscd): the manager reports reader_unavailable, keeps retrying with back-off, and stop()
// ends everything so the process exits.
process.env.PCSCLITE_CSOCK_NAME = `/tmp/mykey-no-pcscd-${process.pid}.comm`;
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MyKeyError } from '../../../shared/errors.ts';
import { ReaderManager } from '../../../edge/reader/reader-manager.ts';
import { silentReaderLog } from '../../../edge/reader/log.ts';

test('without pcscd the manager says reader_unavailable and keeps trying until stopped', async () => {
  const m = new ReaderManager({ log: silentReaderLog, reconnectDelayMs: 10, maxReconnectDelayMs: 40 });
  const errors: MyKeyError[] = [];
  m.on('error', (e) => errors.push(e.error as MyKeyError));
  m.start();
  await new Promise((r) => setTimeout(r, 250));
  await m.stop();
  const seen = errors.length;
  assert.ok(seen >= 3, `${seen} attempts`);
  assert.ok(errors.every((e) => e.code === 'reader_unavailable'));
  assert.match(errors[0].message, /pcscd/);
  await new Promise((r) => setTimeout(r, 100));
  assert.is(errors.length, seen, 'no attempts after stop');
  assert.equal(m.readers(), []);
});

test.run();
