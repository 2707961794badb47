// Secrets for the CLIs come from a prompt with the echo off or from standard input, never from argv.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { readSecretLine, refuseSecretArgument } from '../../provisioning/secret-input.ts';

test('reads the first line of a piped standard input and nothing more', async () => {
  assert.is(await readSecretLine('PIN: ', { input: Readable.from(['12', '34\nrest\n']), output: new PassThrough() }), '1234');
  assert.is(await readSecretLine('PIN: ', { input: Readable.from(['4321\r\n']), output: new PassThrough() }), '4321');
  assert.is(await readSecretLine('PIN: ', { input: Readable.from(['5678']), output: new PassThrough() }), '5678');
});

test('on a terminal it reads with the echo off: the prompt is shown, the PIN never is', async () => {
  const tty = Object.assign(new EventEmitter(), {
    isTTY: true,
    raw: false,
    setRawMode(v: boolean) {
      this.raw = v;
    },
    resume() {},
    pause() {},
  });
  const out = new PassThrough();
  let shown = '';
  out.on('data', (d) => (shown += d));
  const p = readSecretLine('PIN: ', { input: tty as never, output: out });
  assert.ok(tty.raw, 'raw mode: the terminal does not echo');
  tty.emit('data', Buffer.from('12'));
  tty.emit('data', Buffer.from('39\u007f4\r'));
  assert.is(await p, '1234');
  assert.not.ok(tty.raw, 'the terminal is restored');
  assert.is(shown, 'PIN: \n');
});

test('a secret option on the command line is refused with what to do instead', () => {
  assert.match(refuseSecretArgument(['register', '--pin', '1234'], ['--pin']) ?? '', /not accepted.*standard input/);
  assert.ok(refuseSecretArgument(['--pin=1234'], ['--pin']));
  assert.is(refuseSecretArgument(['--reader', 'any'], ['--pin']), undefined);
});

test.run();
