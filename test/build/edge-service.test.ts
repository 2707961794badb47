// The files that make the edge a service of its own user (provisioning/edge-service): the polkit rule
// gives `mykey-edge`, and only it, the two pcsc-lite actions and nothing else; the reference unit runs
// the built agent as that user and passes `systemd-analyze verify`; the reader udev rule is exactly the
// rendering of the known-readers table (so they never drift) and passes `udevadm verify`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGES, ROOT } from '../../scripts/build.ts';
import { testIf } from '../helpers/requires.ts';
import { KNOWN_READERS } from '../../edge/reader/usb-readers.ts';
import { renderReaderUdevRules, UDEV_RULES_NAME } from '../../provisioning/enroll/udev-rules.ts';
import { unitForVerify } from '../helpers/systemd.ts';

const HERE = join(ROOT, 'provisioning', 'edge-service');
const YES = { yes: true };

/** Runs the rule file as polkitd does: it calls polkit.addRule(fn); fn(action, subject) answers. */
function loadRule(): (actionId: string, user: string) => unknown {
  const rules: ((action: { id: string; lookup(k: string): string }, subject: { user: string }) => unknown)[] = [];
  const polkit = { Result: { YES, NO: { no: true } }, addRule: (fn: (typeof rules)[number]) => rules.push(fn) };
  new Function('polkit', readFileSync(join(HERE, '50-mykey-edge-pcscd.rules'), 'utf8'))(polkit);
  assert.is(rules.length, 1);
  return (id, user) => rules[0]({ id, lookup: () => 'Virtual PCD 00 00' }, { user });
}

test('the polkit rule allows mykey-edge to reach pcscd and its cards', () => {
  const rule = loadRule();
  assert.is(rule('org.debian.pcsc-lite.access_pcsc', 'mykey-edge'), YES);
  assert.is(rule('org.debian.pcsc-lite.access_card', 'mykey-edge'), YES);
});

test('the polkit rule says nothing for other users or other actions (polkit then applies its defaults)', () => {
  const rule = loadRule();
  for (const [id, user] of [
    ['org.debian.pcsc-lite.access_pcsc', 'www-data'],
    ['org.debian.pcsc-lite.access_card', 'mykey-hub'],
    ['org.freedesktop.systemd1.manage-units', 'mykey-edge'],
    ['org.freedesktop.login1.reboot', 'mykey-edge'],
  ]) {
    assert.is(rule(id, user), undefined, `${id} for ${user}`);
  }
});

test('the polkit rule is ES5, as polkit runs it (no let, const or arrow functions)', () => {
  const code = readFileSync(join(HERE, '50-mykey-edge-pcscd.rules'), 'utf8').replace(/\/\/.*$/gm, '');
  assert.not.match(code, /\b(let|const|class)\b|=>|`/);
});

test('the unit runs the built agent as mykey-edge with its state directory', () => {
  const unit = readFileSync(join(HERE, 'mykey-edge.service'), 'utf8');
  const edge = PACKAGES.find((p) => p.dir === 'edge')!;
  assert.ok('main' in edge.entries, 'the edge package has main.js');
  assert.ok('boot' in edge.entries, 'the edge package has boot.js (the update launcher)');
  assert.match(unit, /^ExecStart=\/usr\/bin\/node \/opt\/mykey-edge\/boot\.js --updates-dir \/var\/lib\/mykey-edge\/updates --config \/etc\/mykey-edge\/edge\.json$/m);
  assert.match(unit, /^User=mykey-edge$/m);
  assert.match(unit, /^StateDirectory=mykey-edge$/m);
  assert.match(unit, /^NoNewPrivileges=yes$/m);
  assert.match(unit, /^CapabilityBoundingSet=$/m);
  assert.not.match(unit, /tsx/);
});

testIf(existsSync('/usr/bin/systemd-analyze'), 'needs systemd-analyze')('systemd-analyze verify accepts mykey-edge.service', () => {
  const r = spawnSync('systemd-analyze', ['verify', unitForVerify(join(HERE, 'mykey-edge.service'))], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr.trim(), '', r.stderr);
});

test('the reader udev rule is the rendering of the known-readers table, one rule per reader', () => {
  const committed = readFileSync(join(HERE, UDEV_RULES_NAME), 'utf8');
  assert.is(committed, renderReaderUdevRules(), 'regenerate it: npx tsx provisioning/enroll/udev-rules.ts --write');
  const rules = committed.split('\n').filter((l) => l && !l.startsWith('#'));
  assert.is(rules.length, KNOWN_READERS.length);
  for (const r of KNOWN_READERS) {
    assert.ok(rules.includes(`SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="${r.vendorId}", ATTR{idProduct}=="${r.productId}", GROUP="mykey-edge", MODE="0660"`), r.model);
  }
  // Only device nodes: no RUN+=, no OWNER, no world write.
  for (const l of rules) assert.not.match(l, /RUN|OWNER|MODE="0[0-7][0-7][2367]"/);
});

/** True when the installed udevadm has the `verify` command (systemd 254 and later). */
const udevadmVerify = spawnSync('udevadm', ['verify', '--help'], { encoding: 'utf8' }).status === 0;

testIf(udevadmVerify, 'needs udevadm verify (systemd 254+)')('udevadm verify accepts the reader udev rule', () => {
  const r = spawnSync('udevadm', ['verify', '--resolve-names=never', join(HERE, UDEV_RULES_NAME)], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stdout + r.stderr);
});

test.run();
