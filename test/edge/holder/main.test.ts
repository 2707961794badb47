// The companion's entry point: prints the loopback link with its token, refuses an insecure hub URL
// and bad arguments with a usage error.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';

function run(args: string[], untilLine?: RegExp): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'edge/holder/main.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let told = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const onData = (d: Buffer) => {
      out += d;
      if (untilLine && !told && untilLine.test(out)) {
        told = true;
        child.kill('SIGTERM');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test('prints the loopback link to open, with the session token, and stops on SIGTERM', async () => {
  const r = await run(['--hub', 'http://127.0.0.1:9'], /open http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{20,}/);
  assert.match(r.out, /open http:\/\/127\.0\.0\.1:\d+\/\?token=/);
  assert.is(r.code, 0, r.out);
});

test('refuses a hub over plain http beyond loopback, and a hub URL with credentials', async () => {
  const plain = await run(['--hub', 'http://hub.example.jp']);
  assert.is(plain.code, 1);
  assert.match(plain.out, 'insecure_transport');
  const creds = await run(['--hub', 'https://user:pw@hub.example.jp']);
  assert.is(creds.code, 1);
  assert.not.ok(creds.out.includes('pw@'), 'the credentials are not echoed');
});

test('bad arguments are a usage error (exit 2), and a PIN is not an argument', async () => {
  assert.is((await run([])).code, 2);
  assert.is((await run(['--hub', 'https://hub.example.jp', '--port', 'x'])).code, 2);
  assert.is((await run(['--hub', 'https://hub.example.jp', '--pin', '1234'])).code, 2);
});

test.run();
