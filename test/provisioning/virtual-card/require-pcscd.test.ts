import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requirePcscd, vpcdReaderName } from '../../helpers/pcsc.ts';

test('requirePcscd says what to install and start when pcscd is not there, without waiting', async () => {
  const saved = process.env.PCSCLITE_CSOCK_NAME;
  process.env.PCSCLITE_CSOCK_NAME = '/nonexistent/pcscd.comm';
  const t0 = Date.now();
  try {
    await requirePcscd({ lock: false }).then(
      () => assert.unreachable('should throw'),
      (err: Error) => {
        assert.match(err.message, /pcscd is not running/);
        assert.match(err.message, /apt-get install pcscd vsmartcard-vpcd/);
      },
    );
    assert.ok(Date.now() - t0 < 1000);
  } finally {
    if (saved === undefined) delete process.env.PCSCLITE_CSOCK_NAME;
    else process.env.PCSCLITE_CSOCK_NAME = saved;
  }
});

test('the vpcd slots have the reader names pcscd gives them', () => {
  assert.is(vpcdReaderName(0), 'Virtual PCD 00 00');
  assert.is(vpcdReaderName(1), 'Virtual PCD 00 01');
});

test.run();
