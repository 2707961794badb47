// No usage history by default: an edge on the config the enrollment writes hands touches to the
// kiosk page (memory) only. A child process runs the agent and touches linked and unknown cards; its
// stdout and stderr (the journal under the systemd unit) and its state directory must hold nothing
// about any touch: no MyKey ID, no service ID handed over, no reader, no outcome line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEdgeConfig } from '../../../edge/config.ts';

const PER_TOUCH = ['B7NQ4KXW', 'Q9RT5HZC', 'LIB-778899', 'ACR1252', '"outcome"', '"transaction"'];

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

test('the default hand-off targets are none besides the kiosk page: stdout is opt-in', () => {
  const c = loadEdgeConfig({ env: {}, overrides: { edgeId: 'e-1', serviceId: 'library', hub: { url: 'https://h:1' }, broker: { url: 'mqtts://h:2' }, tls: { cert: 'c', key: 'k', ca: 'a' } } });
  assert.equal(c.handoff.targets, []);
  assert.ok(c.kiosk.enabled);
});

test('an enrolled edge with the default config leaves no per-touch record on stdout, stderr or in its state directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'default-targets-'));
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'helpers', 'default-edge-child.ts'), dir], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, MYKEY_LOG_LEVEL: '', MYKEY_LOG_FORMAT: '' },
    });
    assert.is(r.status, 0, r.stdout + r.stderr);
    // The touches happened (6 of them, all answered out of touch with the hub, 3 handed over), and stdout carries only the child's own summary.
    assert.equal(r.stdout.trim().split('\n'), [`done ${JSON.stringify({ touches: 6, handoffs: 3, notLinked: 3, refused: 0, errors: 0, degraded: 6 })}`]);
    for (const s of PER_TOUCH) assert.not.ok(r.stderr.includes(s), `stderr mentions ${s}:\n${r.stderr}`);
    for (const f of filesUnder(dir)) {
      const text = readFileSync(f, 'latin1');
      for (const s of PER_TOUCH.slice(0, 4)) assert.not.ok(text.includes(s), `${f} holds ${s}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
