// The enrollment command as a technician runs it: a separate process, the readers listed through the
// real pcscd, a real hub, systemd as a dry run; then the edge agent started exactly as the printed
// unit's ExecStart says comes online at the hub with the files enrollment wrote.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePcscd } from '../../helpers/pcsc.ts';
import { startEnrollHub } from './helpers/enroll-hub.ts';

await requirePcscd({ lock: false }); // only lists readers; never touches a card or a slot

function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'provisioning/enroll/cli.ts', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.resume();
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stderr });
    });
  });
}

test('enroll --dry-run in its own process finds the vpcd readers, passes the self-test, and the unit command runs the agent online', async () => {
  const h = await startEnrollHub();
  const dir = mkdtempSync(join(tmpdir(), 'mykey-enroll-cli-'));
  try {
    const r = await runCli(['enroll', ...h.hubArgs, '--edge-id', 'kiosk-7', '--state-dir', join(dir, 'state'), '--readers', 'Virtual PCD*', '--dry-run'], {
      MYKEY_ENROLL_TOKEN: await h.issueToken('kiosk-7'),
    });
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, /ok {4}readers?: Virtual PCD 00 0[01]/);
    assert.match(r.stderr, /first snapshot of library/);
    assert.match(r.stderr, /enrolled: edge kiosk-7, service library/);
    const st = await runCli(['status', '--state-dir', join(dir, 'state')]);
    assert.is(st.code, 0, st.stderr);

    // ExecStart=<node> --import tsx <repo>/edge/main.ts --config <state>/edge.json, from WorkingDirectory.
    const exec = /\| ExecStart=(.*)/.exec(r.stderr)![1].split(' ');
    const cwd = /\| WorkingDirectory=(.*)/.exec(r.stderr)![1];
    const agent = spawn(exec[0], exec.slice(1), {
      cwd,
      // No reader (it would take cards from other tests' slots) and no kiosk port; the rest as enrolled.
      env: { ...process.env, MYKEY_EDGE_READERS_INCLUDE: 'none-such-reader', MYKEY_EDGE_KIOSK_ENABLED: 'false', MYKEY_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let agentErr = '';
    agent.stderr.on('data', (d) => (agentErr += d));
    const exited = new Promise<number | null>((res) => agent.on('close', (c) => res(c)));
    try {
      const until = Date.now() + 30_000;
      for (;;) {
        const row = await h.th.hub.devices.get('kiosk-7');
        if (row?.online === 1 && row.version) break;
        if (Date.now() > until || agent.exitCode !== null) throw new Error(`the agent did not come online: ${agentErr.slice(-2000)}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    } finally {
      agent.kill('SIGTERM');
      const killer = setTimeout(() => agent.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
  } finally {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
