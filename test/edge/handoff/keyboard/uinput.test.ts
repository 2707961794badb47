import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeEvents, inputEventSize, keyDownEvents } from '../../../../edge/handoff/keyboard/input-event.ts';
import { strokeOf } from '../../../../edge/handoff/keyboard/layouts.ts';
import { charactersAllowedBy } from '../../../../edge/handoff/keyboard/plan.ts';
import { systemIoctl, UI, uinputSetup, type Ioctl } from '../../../../edge/handoff/keyboard/uinput.ts';
import { SERVICE_USER_ID_PATTERN } from '../../../../shared/ids.ts';
import { decodeInputEvents, ENTER, linuxKeyCodes, TAB, throughHandoff, touch, UINPUT_REQUESTS } from './decoders.ts';

const dir = mkdtempSync(join(tmpdir(), 'mykey-uinput-'));
let n = 0;
/** A regular file standing in for /dev/uinput, and an ioctl that records what it is asked. */
function fakeUinput(): { device: string; calls: Array<[fd: number, request: number, arg: number | Buffer]>; ioctl: Ioctl } {
  const device = join(dir, `uinput${n++}`);
  writeFileSync(device, '');
  const calls: Array<[number, number, number | Buffer]> = [];
  return { device, calls, ioctl: (fd, request, arg) => void calls.push([fd, request, Buffer.isBuffer(arg) ? Buffer.from(arg) : arg]) };
}

const ALLOWED = charactersAllowedBy(SERVICE_USER_ID_PATTERN);
const IDS = [ALLOWED.slice(0, 47).join(''), ALLOWED.slice(47).join('')];

test('the test decoder key codes are those of the installed input-event-codes.h', () => {
  const { mismatches, checked } = linuxKeyCodes();
  assert.equal(mismatches, []);
  if (!checked) console.log('  (no /usr/include/linux/input-event-codes.h here: the table was not cross-checked)');
});

test('the ioctl request numbers and uinput_setup are those of <linux/uinput.h>', () => {
  assert.is(UI.DEV_CREATE, UINPUT_REQUESTS.UI_DEV_CREATE);
  assert.is(UI.DEV_DESTROY, UINPUT_REQUESTS.UI_DEV_DESTROY);
  assert.is(UI.DEV_SETUP, UINPUT_REQUESTS.UI_DEV_SETUP);
  assert.is(UI.SET_EVBIT, UINPUT_REQUESTS.UI_SET_EVBIT);
  assert.is(UI.SET_KEYBIT, UINPUT_REQUESTS.UI_SET_KEYBIT);
  const s = uinputSetup({ name: 'MyKey hand-off keyboard' });
  assert.is(s.length, 92); // 4 x __u16 + char[80] + __u32
  assert.is(s.readUInt16LE(0), 0x06); // BUS_VIRTUAL
  assert.is(s.subarray(8, 8 + 23).toString(), 'MyKey hand-off keyboard');
  assert.is(s[8 + 23], 0);
  assert.throws(() => uinputSetup({ name: 'x'.repeat(80) }), /longer than 79/);
});

test('a 64-bit process writes 24-byte input_event structs, a 32-bit one 16-byte ones', () => {
  const ev = keyDownEvents(strokeOf('us', 'A')!);
  const wide = encodeEvents(ev, 8);
  const narrow = encodeEvents(ev, 4);
  assert.is(wide.length, 3 * 24);
  assert.is(narrow.length, 3 * 16);
  assert.is(inputEventSize(8), 24);
  // struct input_event { timeval (zero); __u16 type; __u16 code; __s32 value }: Left Shift down first
  assert.equal([wide.readUInt16LE(16), wide.readUInt16LE(18), wide.readInt32LE(20)], [1, 42, 1]);
  assert.equal([narrow.readUInt16LE(8), narrow.readUInt16LE(10), narrow.readInt32LE(12)], [1, 42, 1]);
});

for (const layout of ['jis', 'us'] as const) {
  test(`types every character a service user ID may hold on a ${layout} desktop through uinput, via the hand-off`, async () => {
    const u = fakeUinput();
    const kb = await throughHandoff(
      { type: 'keyboard', backend: 'uinput', device: u.device, layout, keyDelayMs: 0 },
      IDS.map((id) => touch(id)),
      { ioctl: u.ioctl, settleMs: 0 },
    );
    assert.is(kb.stats().typed, 2);
    assert.is(decodeInputEvents(readFileSync(u.device), layout, inputEventSize()), IDS.map((id) => id + ENTER).join(''));
  });
}

test('creates the device with the uinput ioctls in order, declaring every key it may press, and destroys it on stop', async () => {
  const u = fakeUinput();
  await throughHandoff({ type: 'keyboard', backend: 'uinput', device: u.device, layout: 'jis', prefix: ['tab'], keyDelayMs: 0 }, [touch('Q_1|2')], { ioctl: u.ioctl, settleMs: 0 });
  const requests = u.calls.map(([, r]) => r);
  assert.is(requests[0], UINPUT_REQUESTS.UI_SET_EVBIT);
  assert.is(u.calls[0][2], 1); // EV_KEY
  const keybits = u.calls.filter(([, r]) => r === UINPUT_REQUESTS.UI_SET_KEYBIT).map(([, , a]) => a as number);
  const { codes } = linuxKeyCodes();
  for (const name of ['KEY_LEFTSHIFT', 'KEY_ENTER', 'KEY_TAB', 'KEY_ESC', 'KEY_RO', 'KEY_YEN', 'KEY_A', 'KEY_0', 'KEY_SPACE', 'KEY_BACKSLASH']) {
    assert.ok(keybits.includes(codes[name]), `${name} declared`);
  }
  assert.equal(requests.slice(-3), [UINPUT_REQUESTS.UI_DEV_SETUP, UINPUT_REQUESTS.UI_DEV_CREATE, UINPUT_REQUESTS.UI_DEV_DESTROY]);
  const setup = u.calls.at(-3)![2] as Buffer;
  assert.is(setup.length, 92);
  assert.is(decodeInputEvents(readFileSync(u.device), 'jis'), `${TAB}Q_1|2${ENTER}`);
});

test('the JIS and US desktops get different keys for the characters that moved', async () => {
  const id = `@"':_=+()*~^`;
  for (const layout of ['jis', 'us'] as const) {
    const u = fakeUinput();
    await throughHandoff({ type: 'keyboard', backend: 'uinput', device: u.device, layout, suffix: [], keyDelayMs: 0 }, [touch(id)], { ioctl: u.ioctl, settleMs: 0 });
    const bytes = readFileSync(u.device);
    assert.is(decodeInputEvents(bytes, layout), id);
    // decoded on the other layout, the same events are other characters (or nothing at all)
    let other: string;
    try {
      other = decodeInputEvents(bytes, layout === 'jis' ? 'us' : 'jis');
    } catch {
      other = '';
    }
    assert.not.equal(other, id);
  }
});

test('a device that fails its ioctls is reported and retried at the next touch', async () => {
  const u = fakeUinput();
  let fail = true;
  const ioctl: Ioctl = (fd, r, a) => {
    if (fail) throw Object.assign(new Error('ioctl failed: EPERM'), { code: 'EPERM' });
    u.ioctl(fd, r, a);
  };
  const { KeyboardTarget } = await import('../../../../edge/handoff/keyboard/keyboard-target.ts');
  const kb = new KeyboardTarget({ anyFile: true, backend: 'uinput', device: u.device, layout: 'us', keyDelayMs: 0, ioctl, settleMs: 0 });
  await kb.start();
  kb.deliver(touch('A'));
  await kb.idle();
  assert.is(kb.stats().failed, 1);
  assert.is(readFileSync(u.device).length, 0); // nothing typed on a device that was never created
  fail = false;
  kb.deliver(touch('B'));
  await kb.idle();
  await kb.stop();
  assert.is(decodeInputEvents(readFileSync(u.device), 'us'), `B${ENTER}`);
});

test("libc's ioctl is reached through koffi (here on a file that is not uinput: ENOTTY)", () => {
  // /dev/uinput is not available on this machine (and creating a real virtual keyboard here would
  // type into the host), so this checks only that the FFI call is made and its errno reported.
  const path = join(dir, 'not-uinput');
  writeFileSync(path, '');
  const fd = openSync(path, 'r');
  try {
    assert.throws(
      () => systemIoctl()(fd, UI.SET_EVBIT, 1),
      (e: Error & { code?: string }) => e.code === 'ENOTTY' && /0x40045564/.test(e.message),
    );
    assert.throws(
      () => systemIoctl()(fd, UI.DEV_SETUP, uinputSetup({ name: 't' })),
      (e: Error & { code?: string }) => e.code === 'ENOTTY',
    );
  } finally {
    closeSync(fd);
  }
  if (existsSync('/dev/uinput')) console.log('  (/dev/uinput exists here but is deliberately not used by the tests)');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
