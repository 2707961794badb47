// The reader udev rule enrollment installs (provisioning/enroll/udev-rules.ts, systemd.ts): rendered from
// the known-readers table, refusing an id that would break (or change) the rule, written world-readable
// into the rules directory, and a failing udevadm says where to look.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KNOWN_READERS } from '../../../edge/reader/usb-readers.ts';
import { installReaderUdevRules } from '../../../provisioning/enroll/systemd.ts';
import { modeOf } from '../../../provisioning/enroll/state-dir.ts';
import { renderReaderUdevRules, UDEV_RULES_NAME } from '../../../provisioning/enroll/udev-rules.ts';
import { MyKeyError } from '../../../shared/errors.ts';

test('a table entry whose ids are not four lower-case hex digits is refused, not written into the rule', () => {
  const good = KNOWN_READERS[0];
  for (const bad of [
    { ...good, vendorId: '072F' },
    { ...good, productId: '2200", MODE="0666' },
    { ...good, productId: '220' },
  ]) {
    try {
      renderReaderUdevRules([bad]);
      assert.unreachable(`${bad.vendorId}:${bad.productId} was rendered`);
    } catch (e) {
      assert.instance(e, MyKeyError);
      assert.is((e as MyKeyError).code, 'validation_failed');
    }
  }
});

test('the rule is written 0644 into the rules directory, then udev reloads and re-applies it to USB devices', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-udev-'));
  try {
    const ran: string[] = [];
    const path = await installReaderUdevRules({ udevRulesDir: dir, exec: async (cmd, args) => (ran.push([cmd, ...args].join(' ')), { code: 0, stdout: '', stderr: '' }) });
    assert.is(path, join(dir, UDEV_RULES_NAME));
    assert.is(readFileSync(path, 'utf8'), renderReaderUdevRules());
    assert.is(modeOf(path), 0o644);
    assert.equal(ran, ['udevadm control --reload-rules', 'udevadm trigger --subsystem-match=usb --action=change']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failing or missing udevadm is an unavailable error that says where to look', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-udev-'));
  try {
    for (const [code, fix] of [
      [1, /journalctl -u systemd-udevd/],
      [127, /this machine has no udevadm/],
    ] as const) {
      try {
        await installReaderUdevRules({ udevRulesDir: dir, exec: async () => ({ code, stdout: '', stderr: 'Failed to send reload request' }) });
        assert.unreachable('installed');
      } catch (e) {
        assert.instance(e, MyKeyError);
        assert.is((e as MyKeyError).code, 'unavailable');
        assert.match((e as MyKeyError).message, /udevadm control --reload-rules failed/);
        assert.match(JSON.stringify((e as MyKeyError).details), fix);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
