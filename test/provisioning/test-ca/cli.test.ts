import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../../provisioning/test-ca/cli.ts';

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'test-ca-cli-'));
const dir = join(tmp, 'ca');
const cliPath = fileURLToPath(new URL('../../../provisioning/test-ca/cli.ts', import.meta.url));

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('init, issue, revoke and crl work end to end', async () => {
  const init = await cli('init', dir);
  assert.is(init.code, 0, init.err);
  assert.ok(statSync(join(dir, 'ca.pem')).isFile());

  const certFile = join(tmp, 'out', 'user.pem');
  const keyFile = join(tmp, 'out', 'user.key');
  const issue = await cli('issue', dir, '--out-cert', certFile, '--out-key', keyFile);
  assert.is(issue.code, 0, issue.err);
  const serial = /issued serial ([0-9a-f]+)/.exec(issue.out)![1];
  const x = new X509Certificate(readFileSync(certFile));
  assert.is(x.serialNumber.toLowerCase().replace(/^0+/, ''), serial.replace(/^0+/, ''));
  assert.is(statSync(keyFile).mode & 0o777, 0o600);
  const { stdout } = await run('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), certFile]);
  assert.match(stdout, /: OK/);

  const second = await cli('issue', dir, '--sign', '--days', '30');
  assert.is(second.code, 0, second.err);
  assert.is(readdirSync(join(dir, 'issued')).length, 2); // default paths: <dir>/issued/<serial>.pem and .key

  const revoke = await cli('revoke', dir, serial, '--reason', 'keyCompromise');
  assert.is(revoke.code, 0, revoke.err);

  const crlFile = join(tmp, 'out', 'ca.crl');
  const crl = await cli('crl', dir, '--random', '10', '--out', crlFile);
  assert.is(crl.code, 0, crl.err);
  assert.match(crl.out, /CRL number 1 with 11 entries/);
  const text = (await run('openssl', ['crl', '-inform', 'DER', '-in', crlFile, '-text', '-noout'])).stdout;
  assert.ok(text.includes(`Serial Number: ${serial.toUpperCase()}`));
  assert.match(text, /Key Compromise/);
});

test('usage mistakes print the usage and exit 2', async () => {
  for (const argv of [[], ['frobnicate', dir], ['init'], ['crl', dir], ['crl', dir, '--out', 'x', '--random', '-1'], ['issue', dir, '--bogus'], ['revoke', dir, '01', '--reason', 'nope']]) {
    const r = await cli(...argv);
    assert.is(r.code, 2, argv.join(' '));
    assert.match(r.out + r.err, /Usage: tsx provisioning\/test-ca\/cli.ts/);
  }
  assert.is((await cli('--help')).code, 0);
});

test('operational errors name the problem and exit 1', async () => {
  const missing = await cli('issue', join(tmp, 'missing'));
  assert.is(missing.code, 1);
  assert.match(missing.err, /not_found.*run init first/);
  const bad = await cli('revoke', dir, 'not-hex');
  assert.is(bad.code, 1);
  assert.match(bad.err, /bad_request/);
  const again = await cli('init', dir);
  assert.is(again.code, 1);
  assert.match(again.err, /already exists/);
});

test('ocsp serves the directory until it is stopped', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', cliPath, 'ocsp', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const killTimer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const m = /at (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}`)));
    });
    const cert = readdirSync(join(dir, 'issued')).find((f) => f.endsWith('.pem'))!;
    const { stdout } = await run('openssl', ['ocsp', '-issuer', join(dir, 'ca.pem'), '-cert', join(dir, 'issued', cert), '-url', url, '-CAfile', join(dir, 'ca.pem'), '-timeout', '10'], {
      timeout: 20_000,
    });
    assert.match(stdout, /: (good|revoked)/);
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    clearTimeout(killTimer);
  }
  assert.is(child.exitCode, 0);
});

test.run();
