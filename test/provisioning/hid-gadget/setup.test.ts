import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BOOT_KEYBOARD_REPORT_DESCRIPTOR, BOOT_REPORT_LENGTH } from '../../../edge/handoff/keyboard/hid-report.ts';

// The scripts need a real configfs and a USB device controller (a Pi in OTG mode), which this machine
// does not have. What can be checked here: the syntax, and a run of setup.sh against a plain
// directory standing in for configfs, which shows every attribute it writes, the report descriptor
// bytes above all.
const root = resolve(import.meta.dirname, '../../../provisioning/hid-gadget');
const setup = join(root, 'setup.sh');
const teardown = join(root, 'teardown.sh');
const dir = mkdtempSync(join(tmpdir(), 'mykey-hid-gadget-'));

function run(script: string, env: Record<string, string>) {
  return spawnSync('bash', [script], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, encoding: 'utf8' });
}

test('both scripts parse (bash -n)', () => {
  for (const s of [setup, teardown]) {
    const r = spawnSync('bash', ['-n', s], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
  }
});

test('writes the report descriptor the TypeScript side documents, as a boot keyboard with 8-byte reports', () => {
  const configfs = join(dir, 'configfs');
  const udcDir = join(dir, 'udc');
  mkdirSync(join(configfs, 'usb_gadget'), { recursive: true });
  mkdirSync(join(udcDir, 'fe980000.usb'), { recursive: true });
  const env = { MYKEY_HID_CONFIGFS: configfs, MYKEY_HID_UDC_DIR: udcDir, MYKEY_HID_SERIAL: 'test-0001' };
  const r = run(setup, env);
  assert.is(r.status, 0, r.stderr);
  const g = join(configfs, 'usb_gadget', 'mykey-keyboard');
  const f = join(g, 'functions', 'hid.usb0');
  assert.equal(new Uint8Array(readFileSync(join(f, 'report_desc'))), BOOT_KEYBOARD_REPORT_DESCRIPTOR);
  assert.is(readFileSync(join(f, 'protocol'), 'utf8').trim(), '1'); // keyboard
  assert.is(readFileSync(join(f, 'subclass'), 'utf8').trim(), '1'); // boot interface
  assert.is(Number(readFileSync(join(f, 'report_length'), 'utf8')), BOOT_REPORT_LENGTH);
  assert.is(readlinkSync(join(g, 'configs', 'c.1', 'hid.usb0')), f);
  assert.is(readFileSync(join(g, 'strings', '0x409', 'serialnumber'), 'utf8').trim(), 'test-0001');
  assert.is(readFileSync(join(g, 'UDC'), 'utf8').trim(), 'fe980000.usb');

  // Idempotent: a second run sees the bound gadget and changes nothing.
  const again = run(setup, env);
  assert.is(again.status, 0, again.stderr);
  assert.match(again.stdout, 'already set up and bound to fe980000.usb');
});

test('says what to do when there is no USB device controller (no dwc2 overlay)', () => {
  const configfs = join(dir, 'configfs-no-udc');
  mkdirSync(join(configfs, 'usb_gadget'), { recursive: true });
  const r = run(setup, { MYKEY_HID_CONFIGFS: configfs, MYKEY_HID_UDC_DIR: join(dir, 'nothing-here'), MYKEY_HID_SERIAL: 'x' });
  assert.is.not(r.status, 0);
  assert.match(r.stderr, 'dtoverlay=dwc2');
});

test('teardown of a gadget that is not there is fine', () => {
  const configfs = join(dir, 'configfs-empty');
  mkdirSync(join(configfs, 'usb_gadget'), { recursive: true });
  const r = run(teardown, { MYKEY_HID_CONFIGFS: configfs });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, 'not set up');
  assert.not.ok(existsSync(join(configfs, 'usb_gadget', 'mykey-keyboard')));
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
