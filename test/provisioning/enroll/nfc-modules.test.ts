// Enrollment's check for the kernel NFC modules that grab contactless readers before pcscd, against a
// temp directory as the system root (proc/modules, sys/bus/usb/drivers, etc/modprobe.d) and a
// stand-in modprobe; and the --fix-nfc-modules flag through the enrollment command.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../provisioning/enroll/cli.ts';
import { checkNfcModules, NFC_BLACKLIST_PATH, type NfcModuleEnv } from '../../../provisioning/enroll/prerequisites.ts';
import type { Exec } from '../../../provisioning/enroll/systemd.ts';

const PROC_PN533 = ['pn533_usb 20480 0 - Live 0x0000000000000000', 'pn533 45056 1 pn533_usb, Live 0x0000000000000000', 'nfc 118784 1 pn533, Live 0x0000000000000000', 'snd 90112 0 - Live 0x0'].join(
  '\n',
);

function root(opts: { modules?: string; heldBy?: string } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-nfc-root-'));
  mkdirSync(join(dir, 'proc'));
  writeFileSync(join(dir, 'proc/modules'), opts.modules ?? 'snd 90112 0 - Live 0x0\n');
  if (opts.heldBy) {
    const dev = join(dir, 'sys/bus/usb/devices/1-1.2');
    mkdirSync(dev, { recursive: true });
    writeFileSync(join(dev, 'idVendor'), '072f\n');
    writeFileSync(join(dev, 'idProduct'), '2200\n');
    mkdirSync(join(dir, 'sys/bus/usb/drivers', opts.heldBy, '1-1.2:1.0'), { recursive: true });
    writeFileSync(join(dir, 'sys/bus/usb/drivers', opts.heldBy, 'unbind'), '');
  }
  return dir;
}

/** A modprobe stand-in: records the call; `-r` empties proc/modules of the conflicting modules unless told to fail. */
function modprobe(dir: string, fail = false): Exec & { calls: string[] } {
  const calls: string[] = [];
  const exec = async (cmd: string, args: string[]) => {
    calls.push([cmd, ...args].join(' '));
    if (fail) return { code: 1, stdout: '', stderr: 'modprobe: FATAL: Module pn533_usb is in use.' };
    writeFileSync(join(dir, 'proc/modules'), 'snd 90112 0 - Live 0x0\n');
    return { code: 0, stdout: '', stderr: '' };
  };
  return Object.assign(exec, { calls });
}

test('no kernel NFC module loaded: the check passes', async () => {
  const dir = root();
  try {
    const r = await checkNfcModules({ root: dir });
    assert.equal(r, { ok: true, detail: 'kernel NFC modules: none loaded' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('modules loaded but holding no reader: passes with a warning that names the flag', async () => {
  const dir = root({ modules: PROC_PN533 });
  try {
    const r = await checkNfcModules({ root: dir });
    assert.ok(r.ok);
    assert.match(r.detail, /pn533_usb, pn533, nfc/);
    assert.match((r as { warn?: string }).warn ?? '', /--fix-nfc-modules/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an ACR122U held by pn533_usb fails the check without consent, and nothing is written or run', async () => {
  const dir = root({ modules: PROC_PN533, heldBy: 'pn533_usb' });
  const exec = modprobe(dir);
  try {
    const r = await checkNfcModules({ root: dir, exec });
    assert.is(r.ok, false);
    assert.match(r.detail, /ACS ACR122U \(pn533_usb\)/);
    assert.match((r as { fix: string }).fix, /--fix-nfc-modules/);
    assert.equal(exec.calls, []);
    assert.not.ok(existsSync(join(dir, NFC_BLACKLIST_PATH)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with consent: the blacklist is written to etc/modprobe.d and the loaded modules are unloaded with modprobe -r', async () => {
  const dir = root({ modules: PROC_PN533, heldBy: 'pn533_usb' });
  const exec = modprobe(dir);
  try {
    const r = await checkNfcModules({ root: dir, exec, fix: true });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(exec.calls, ['modprobe -r pn533_usb pn533 nfc']);
    const text = readFileSync(join(dir, 'etc/modprobe.d/mykey-edge-nfc-blacklist.conf'), 'utf8');
    for (const m of ['pn533_usb', 'port100', 'pn533', 'nfc']) assert.match(text, new RegExp(`^blacklist ${m}$`, 'm'));
    assert.match((r as { warn?: string }).warn ?? '', /unplug the reader and plug it back in/);
    // Run again: already blacklisted, nothing loaded.
    const again = await checkNfcModules({ root: dir, exec, fix: true });
    assert.ok(again.ok);
    assert.equal(exec.calls.length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with consent but a module in use: fails and asks for a reboot (the blacklist is in place for it)', async () => {
  const dir = root({ modules: PROC_PN533, heldBy: 'pn533_usb' });
  try {
    const r = await checkNfcModules({ root: dir, exec: modprobe(dir, true), fix: true });
    assert.is(r.ok, false);
    assert.match(r.detail, /in use/);
    assert.match((r as { fix: string }).fix, /reboot/);
    assert.ok(existsSync(join(dir, NFC_BLACKLIST_PATH)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function enrollWith(flags: string[], nfc: NfcModuleEnv): Promise<{ code: number; out: string }> {
  const state = mkdtempSync(join(tmpdir(), 'mykey-nfc-state-'));
  const lines: string[] = [];
  try {
    // Port 9 on loopback: nothing answers, so enrollment stops after the prerequisites step.
    const code = await main(
      ['enroll', '--hub', 'http://127.0.0.1:9', '--edge-id', 'kiosk-7', '--state-dir', state, '--token', 'x'.repeat(32), ...flags],
      {
        write: (l) => lines.push(l),
        listReaders: async () => ['ACS ACR122U PICC Interface 00 00'],
        nfc,
        timeoutMs: 2000,
      },
      {},
    );
    return { code, out: lines.join('\n') };
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

test('enroll stops at the prerequisites while pn533_usb holds the reader, and says to pass --fix-nfc-modules', async () => {
  const dir = root({ modules: PROC_PN533, heldBy: 'pn533_usb' });
  const exec = modprobe(dir);
  try {
    const r = await enrollWith([], { root: dir, exec });
    assert.is.not(r.code, 0);
    assert.match(r.out, /ACS ACR122U \(pn533_usb\)/);
    assert.match(r.out, /--fix-nfc-modules/);
    assert.equal(exec.calls, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('enroll --fix-nfc-modules blacklists and unloads them in the prerequisites step', async () => {
  const dir = root({ modules: PROC_PN533, heldBy: 'pn533_usb' });
  const exec = modprobe(dir);
  try {
    const r = await enrollWith(['--fix-nfc-modules'], { root: dir, exec });
    assert.equal(exec.calls, ['modprobe -r pn533_usb pn533 nfc']);
    assert.ok(existsSync(join(dir, NFC_BLACKLIST_PATH)));
    assert.match(r.out, /kernel NFC modules blacklisted/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
