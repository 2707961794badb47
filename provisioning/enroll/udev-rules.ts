// The udev rule that lets the edge agent's user reset a hung contactless reader. The reader healer
// (edge/reader/usb-reset.ts) sends USBDEVFS_RESET to /dev/bus/usb/BBB/DDD, which needs the device node
// open for writing; udev makes those nodes root:root 0664, and the agent runs as `mykey-edge` without
// capabilities, so without this rule every reset fails with EACCES. The rule is rendered from the
// table of known readers (edge/reader/usb-readers.ts), so the two cannot drift: the committed copy in
// provisioning/edge-service is checked against this rendering (test/build/edge-service.test.ts), and
// enrollment installs the rendering itself (it runs from a bundle that has no copy of the file).
//
// Regenerate the committed copy after changing the table:
//   npx tsx provisioning/enroll/udev-rules.ts --write
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KNOWN_READERS, type KnownReader } from '../../edge/reader/usb-readers.ts';
import { MyKeyError } from '../../shared/errors.ts';

/** The rules file name: after the distribution's 50-udev-default.rules (which sets 0664 root:root). */
export const UDEV_RULES_NAME = '61-mykey-edge-readers.rules';
/** Where local udev rules go (udev(7): /etc/udev/rules.d overrides /usr/lib/udev/rules.d). */
export const UDEV_RULES_DIR = '/etc/udev/rules.d';
/** The group the device nodes go to (the agent's own user group, created at enrollment). */
const GROUP = 'mykey-edge';

/** udevadm invocations that apply new rules to readers already plugged in (udevadm(8)). */
export function udevReloadCommands(): string[][] {
  return [
    ['udevadm', 'control', '--reload-rules'],
    // "change" re-runs the rules on every USB device now present: the group and mode apply at once,
    // without a replug or a reboot.
    ['udevadm', 'trigger', '--subsystem-match=usb', '--action=change'],
  ];
}

const HEX4 = /^[0-9a-f]{4}$/;

/** The udev(7) rules text granting `mykey-edge` read/write on the device node of each known reader. */
export function renderReaderUdevRules(table: readonly KnownReader[] = KNOWN_READERS): string {
  const lines = [
    '# Generated from edge/reader/usb-readers.ts by provisioning/enroll/udev-rules.ts: do not edit by hand',
    '# (`npx tsx provisioning/enroll/udev-rules.ts --write` after changing the table).',
    '# The edge agent (user mykey-edge, no capabilities) may open the USB device node of a known contactless',
    '# reader, /dev/bus/usb/BBB/DDD, for writing, so the reader healer can reset a hung reader',
    '# (USBDEVFS_RESET). Nothing else: no other USB device, no sysfs. Enrollment installs it into',
    `# ${UDEV_RULES_DIR}/${UDEV_RULES_NAME} and runs \`udevadm control --reload-rules\` and`,
    '# `udevadm trigger --subsystem-match=usb --action=change`.',
  ];
  for (const r of table) {
    // The ids go into the rules verbatim: anything but four lower-case hex digits would be a broken
    // (or, with a quote, a different) rule.
    if (!HEX4.test(r.vendorId) || !HEX4.test(r.productId)) {
      throw new MyKeyError('validation_failed', `the known reader ${JSON.stringify(r.model)} has ids ${JSON.stringify(`${r.vendorId}:${r.productId}`)}, not four lower-case hex digits each`);
    }
    lines.push(`# ${r.model.replace(/[\r\n]/g, ' ')}`);
    lines.push(`SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="${r.vendorId}", ATTR{idProduct}=="${r.productId}", GROUP="${GROUP}", MODE="0660"`);
  }
  return `${lines.join('\n')}\n`;
}

// Run as a script (not when bundled into enroll.js, whose own argv[1] would match import.meta.url):
// print the rules, or with --write refresh the committed copy.
const self = fileURLToPath(import.meta.url);
if (self.endsWith('udev-rules.ts') && process.argv[1] === self) {
  const text = renderReaderUdevRules();
  if (process.argv.includes('--write')) {
    const path = join(dirname(self), '..', 'edge-service', UDEV_RULES_NAME);
    writeFileSync(path, text);
    console.log(`wrote ${path}`);
  } else {
    process.stdout.write(text);
  }
}
