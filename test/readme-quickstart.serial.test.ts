// The README's Quick start, run exactly as written: its commands are read from README.md itself (not
// copied here), in a fresh copy of the working tree, so a newcomer's first commands cannot break while
// every other test stays green. `bash .ci/run` is the command that runs this very test, so it is the
// one line left out. Serial: `npm start` listens on the README's fixed ports (8080, 8443, 8883).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** The shell commands of the README's code blocks between two headings, without comments and outputs. */
function commandsBetween(from: string, to: string): string[] {
  const start = readme.indexOf(from);
  const end = readme.indexOf(to, start + from.length);
  assert.ok(start >= 0 && end > start, `README sections "${from}" .. "${to}"`);
  const blocks = [...readme.slice(start, end).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks
    .flatMap((b) => b.split('\n'))
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

const commands = commandsBetween('## Quick start', '### The whole story');

/** A fresh copy of the working tree (tracked and new files, as a clone would have them), sharing node_modules. */
function freshTree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-quickstart-'));
  const files = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: root, encoding: 'utf8' });
  assert.is(files.status, 0, files.stderr);
  const list = files.stdout.split('\0').filter((f) => f !== '' && !f.startsWith('node_modules'));
  const cp = spawnSync('cp', ['--parents', '-t', dir, ...list], { cwd: root, encoding: 'utf8' });
  assert.is(cp.status, 0, cp.stderr);
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

function run(cmd: string, cwd: string): { code: number | null; out: string } {
  const r = spawnSync('bash', ['-c', cmd], { cwd, encoding: 'utf8', timeout: 120_000, env: cleanEnv() });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The newcomer's environment: none of the project's overrides a developer may have set. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MYKEY_')));
}

let dir = '';
let hub: ChildProcess | undefined;
let hubOut = '';

test.after(() => {
  if (hub?.pid) {
    try {
      process.kill(-hub.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the README Quick start names npm start, then the register, status, revoke, crl-fetch and status commands', () => {
  assert.ok(commands.includes('npm start'), commands.join('\n'));
  const tools = commands.filter((c) => c.startsWith('npx ')).map((c) => c.split(' ').slice(0, 4).join(' '));
  assert.equal(tools, [
    'npx tsx provisioning/register-cli.ts register',
    'npx tsx provisioning/register-cli.ts status',
    'npx tsx provisioning/test-ca/cli.ts revoke',
    'npx tsx hub/cli.ts crl-fetch',
    'npx tsx provisioning/register-cli.ts status',
  ]);
});

test('npm start comes up in a fresh tree, and the walk-through works as written: register, status, revoke, crl-fetch, refused', async () => {
  dir = freshTree();
  hub = spawn('bash', ['-c', 'npm start'], { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  hub.stdout!.on('data', (d) => (hubOut += d));
  hub.stderr!.on('data', (d) => (hubOut += d));
  const deadline = Date.now() + 90_000;
  while (!/hub listening/.test(hubOut)) {
    assert.ok(hub.exitCode === null, `npm start exited:\n${hubOut}`);
    assert.ok(Date.now() < deadline, `npm start did not come up in 90 s:\n${hubOut}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const crlPort = /CRL: http:\/\/127\.0\.0\.1:(\d+)\/crl/.exec(hubOut)?.[1];
  assert.ok(crlPort, `the banner names the CRL port:\n${hubOut}`);

  let serial = '';
  let step = 0;
  for (const line of commands) {
    if (line === 'npm start' || line.startsWith('bash .ci/run')) continue;
    const cmd = line.replace('<serial>', serial).replace('<crl port>', crlPort!);
    assert.not.match(cmd, /<[^>]+>/, `every placeholder is filled: ${cmd}`);
    const r = run(cmd, dir);
    step++;
    const where = `step ${step}: ${cmd}\n${r.out}`;
    if (step === 1) {
      assert.is(r.code, 0, where);
      assert.match(r.out, /MyKey ID: [0-9A-Z]{4}-[0-9A-Z]{4}\s+status: active/, where);
      serial = /certificate ([0-9a-f]+)/.exec(r.out)?.[1] ?? '';
      assert.ok(serial, where);
    } else if (step === 2) {
      assert.is(r.code, 0, where);
      assert.match(r.out, /status: active/, where);
    } else if (step === 3) {
      assert.is(r.code, 0, where);
      assert.match(r.out, /revoked/, where);
    } else if (step === 4) {
      assert.is(r.code, 0, where);
      assert.match(r.out, /MyKey IDs suspended\s+1/, where);
    } else if (step === 5) {
      assert.is.not(r.code, 0, where);
      assert.match(r.out, /cert_revoked/, where);
    }
  }
  assert.is(step, 5, 'five walk-through commands ran');
  assert.ok(hub.exitCode === null, `the hub still runs:\n${hubOut}`);
});

test.run();
