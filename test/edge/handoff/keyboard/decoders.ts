// Independent decoders for what the keyboard target writes, for the tests: HID boot reports and Linux
// input_event structs back into text. Their tables are written here from the published sources (USB
// HID Usage Tables 1.4 section 10; Linux input-event-codes.h; the JIS X 6002 / Windows kbd106 key
// legends), key -> character, NOT taken from the code under test (which maps character -> key).
import { existsSync, readFileSync } from 'node:fs';
import { loadEdgeConfig } from '../../../../edge/config.ts';
import { Handoff, targetsFromConfig } from '../../../../edge/handoff/handoff.ts';
import type { KeyboardTarget, KeyboardTargetOptions } from '../../../../edge/handoff/keyboard/keyboard-target.ts';
import type { TouchResult } from '../../../../edge/handoff/types.ts';

/** What a decoded named key looks like in the decoded text. */
export const ENTER = '\n';
export const TAB = '\t';
export const ESC = '\x1b';

type Legends = Record<number, readonly [plain: string, shifted: string]>;

// HUT 1.4 section 10 (Keyboard/Keypad page 0x07), US legends. 0x04..0x1D "Keyboard a and A" ..
// "Keyboard z and Z"; 0x1E "1 and !" .. 0x27 "0 and )"; 0x28 Return (ENTER); 0x29 ESCAPE;
// 0x2B Tab; 0x2C Spacebar; 0x2D "- and (underscore)"; 0x2E "= and +"; 0x2F "[ and {"; 0x30 "] and }";
// 0x31 "\ and |"; 0x32 "Non-US # and ~"; 0x33 "; and :"; 0x34 "' and \""; 0x35 "Grave Accent and
// Tilde"; 0x36 ", and <"; 0x37 ". and >"; 0x38 "/ and ?"; 0x87 International1; 0x89 International3.
const HUT_US: Legends = {
  0x28: [ENTER, ENTER],
  0x29: [ESC, ESC],
  0x2b: [TAB, TAB],
  0x2c: [' ', ' '],
  0x1e: ['1', '!'],
  0x1f: ['2', '@'],
  0x20: ['3', '#'],
  0x21: ['4', '$'],
  0x22: ['5', '%'],
  0x23: ['6', '^'],
  0x24: ['7', '&'],
  0x25: ['8', '*'],
  0x26: ['9', '('],
  0x27: ['0', ')'],
  0x2d: ['-', '_'],
  0x2e: ['=', '+'],
  0x2f: ['[', '{'],
  0x30: [']', '}'],
  0x31: ['\\', '|'],
  0x33: [';', ':'],
  0x34: ["'", '"'],
  0x35: ['`', '~'],
  0x36: [',', '<'],
  0x37: ['.', '>'],
  0x38: ['/', '?'],
};
'abcdefghijklmnopqrstuvwxyz'.split('').forEach((c, i) => {
  HUT_US[0x04 + i] = [c, c.toUpperCase()];
});

// The same key positions with the legends of a JIS 106/109 keyboard on a host set to Japanese
// (Windows kbd106, X11 `jp`). Keys whose legend is the same as US are not repeated.
const HUT_JIS: Legends = {
  ...HUT_US,
  0x1f: ['2', '"'],
  0x23: ['6', '&'],
  0x24: ['7', "'"],
  0x25: ['8', '('],
  0x26: ['9', ')'],
  0x27: ['0', ''],
  0x2d: ['-', '='],
  0x2e: ['^', '~'],
  0x2f: ['@', '`'],
  0x30: ['[', '{'],
  0x32: [']', '}'],
  0x33: [';', '+'],
  0x34: [':', '*'],
  0x87: ['\\', '_'],
  0x89: ['\\', '|'],
};
delete HUT_JIS[0x31]; // not on a JIS keyboard
delete HUT_JIS[0x35]; // 半角/全角: an input-method toggle, never wanted

export type HostLayout = 'jis' | 'us';
const HID_LEGENDS: Record<HostLayout, Legends> = { us: HUT_US, jis: HUT_JIS };

/**
 * Decodes boot-keyboard reports (HID 1.11 B.1) as a host with `layout` would, and checks the shape the
 * brief asks for: 8-byte reports, a zero reserved byte, one key at a time, an all-up report after each.
 */
export function decodeHidReports(bytes: Uint8Array, layout: HostLayout): string {
  if (bytes.length % 8 !== 0) throw new Error(`${bytes.length} bytes is not a whole number of 8-byte reports`);
  let out = '';
  let expectUp = false;
  for (let o = 0; o < bytes.length; o += 8) {
    const r = bytes.subarray(o, o + 8);
    if (r[1] !== 0) throw new Error(`report ${o / 8}: reserved byte is ${r[1]}`);
    const keys = [...r.subarray(2)].filter((k) => k !== 0);
    if (expectUp) {
      if (keys.length !== 0 || r[0] !== 0) throw new Error(`report ${o / 8}: expected all keys up after a key, got ${Buffer.from(r).toString('hex')}`);
      expectUp = false;
      continue;
    }
    if (keys.length !== 1) throw new Error(`report ${o / 8}: expected one key down, got ${keys.length}`);
    if ((r[0] & ~0x22) !== 0) throw new Error(`report ${o / 8}: modifier other than Shift: 0x${r[0].toString(16)}`);
    const shift = (r[0] & 0x22) !== 0; // bit 1 Left Shift, bit 5 Right Shift
    const legend = HID_LEGENDS[layout][keys[0]];
    const ch = legend?.[shift ? 1 : 0];
    if (!ch) throw new Error(`report ${o / 8}: usage 0x${keys[0].toString(16)}${shift ? ' with Shift' : ''} types nothing on ${layout}`);
    out += ch;
    expectUp = true;
  }
  if (expectUp) throw new Error('the last key was never released');
  return out;
}

// <linux/input-event-codes.h> values of the names used below (checked against the system header
// when it is installed: linuxKeyCodes()).
const KEY_CODES: Record<string, number> = {
  KEY_ESC: 1,
  KEY_1: 2,
  KEY_2: 3,
  KEY_3: 4,
  KEY_4: 5,
  KEY_5: 6,
  KEY_6: 7,
  KEY_7: 8,
  KEY_8: 9,
  KEY_9: 10,
  KEY_0: 11,
  KEY_MINUS: 12,
  KEY_EQUAL: 13,
  KEY_TAB: 15,
  KEY_Q: 16,
  KEY_W: 17,
  KEY_E: 18,
  KEY_R: 19,
  KEY_T: 20,
  KEY_Y: 21,
  KEY_U: 22,
  KEY_I: 23,
  KEY_O: 24,
  KEY_P: 25,
  KEY_LEFTBRACE: 26,
  KEY_RIGHTBRACE: 27,
  KEY_ENTER: 28,
  KEY_A: 30,
  KEY_S: 31,
  KEY_D: 32,
  KEY_F: 33,
  KEY_G: 34,
  KEY_H: 35,
  KEY_J: 36,
  KEY_K: 37,
  KEY_L: 38,
  KEY_SEMICOLON: 39,
  KEY_APOSTROPHE: 40,
  KEY_GRAVE: 41,
  KEY_LEFTSHIFT: 42,
  KEY_BACKSLASH: 43,
  KEY_Z: 44,
  KEY_X: 45,
  KEY_C: 46,
  KEY_V: 47,
  KEY_B: 48,
  KEY_N: 49,
  KEY_M: 50,
  KEY_COMMA: 51,
  KEY_DOT: 52,
  KEY_SLASH: 53,
  KEY_SPACE: 57,
  KEY_RO: 89,
  KEY_YEN: 124,
};

/** The KEY_* numbers used here, and (when the system header is present) any that disagree with it. */
export function linuxKeyCodes(header = '/usr/include/linux/input-event-codes.h'): { codes: Record<string, number>; mismatches: string[]; checked: boolean } {
  if (!existsSync(header)) return { codes: KEY_CODES, mismatches: [], checked: false };
  const text = readFileSync(header, 'utf8');
  const mismatches: string[] = [];
  for (const [name, code] of Object.entries(KEY_CODES)) {
    const m = new RegExp(`^#define\\s+${name}\\s+(\\d+)\\s*$`, 'm').exec(text);
    if (!m || Number(m[1]) !== code) mismatches.push(`${name}: header ${m?.[1]}, table ${code}`);
  }
  return { codes: KEY_CODES, mismatches, checked: true };
}

// The X11 `us` and `jp` symbol maps (xkeyboard-config symbols/us, symbols/jp), by evdev key name.
const XKB_US: Record<string, readonly [string, string]> = {
  KEY_ENTER: [ENTER, ENTER],
  KEY_ESC: [ESC, ESC],
  KEY_TAB: [TAB, TAB],
  KEY_SPACE: [' ', ' '],
  KEY_1: ['1', '!'],
  KEY_2: ['2', '@'],
  KEY_3: ['3', '#'],
  KEY_4: ['4', '$'],
  KEY_5: ['5', '%'],
  KEY_6: ['6', '^'],
  KEY_7: ['7', '&'],
  KEY_8: ['8', '*'],
  KEY_9: ['9', '('],
  KEY_0: ['0', ')'],
  KEY_MINUS: ['-', '_'],
  KEY_EQUAL: ['=', '+'],
  KEY_LEFTBRACE: ['[', '{'],
  KEY_RIGHTBRACE: [']', '}'],
  KEY_BACKSLASH: ['\\', '|'],
  KEY_SEMICOLON: [';', ':'],
  KEY_APOSTROPHE: ["'", '"'],
  KEY_GRAVE: ['`', '~'],
  KEY_COMMA: [',', '<'],
  KEY_DOT: ['.', '>'],
  KEY_SLASH: ['/', '?'],
};
for (const c of 'abcdefghijklmnopqrstuvwxyz') XKB_US[`KEY_${c.toUpperCase()}`] = [c, c.toUpperCase()];
const XKB_JP: Record<string, readonly [string, string]> = {
  ...XKB_US,
  KEY_2: ['2', '"'],
  KEY_6: ['6', '&'],
  KEY_7: ['7', "'"],
  KEY_8: ['8', '('],
  KEY_9: ['9', ')'],
  KEY_0: ['0', ''],
  KEY_MINUS: ['-', '='],
  KEY_EQUAL: ['^', '~'],
  KEY_LEFTBRACE: ['@', '`'],
  KEY_RIGHTBRACE: ['[', '{'],
  KEY_BACKSLASH: [']', '}'],
  KEY_SEMICOLON: [';', '+'],
  KEY_APOSTROPHE: [':', '*'],
  KEY_RO: ['\\', '_'],
  KEY_YEN: ['\\', '|'],
};
delete XKB_JP.KEY_GRAVE; // Zenkaku_Hankaku

/** The uinput ioctl request numbers as <linux/uinput.h> expands them on Linux (asm-generic/ioctl.h). */
export const UINPUT_REQUESTS = { UI_DEV_CREATE: 0x5501, UI_DEV_DESTROY: 0x5502, UI_DEV_SETUP: 0x405c5503, UI_SET_EVBIT: 0x40045564, UI_SET_KEYBIT: 0x40045565 };

/**
 * Decodes struct input_event records (24 bytes: 64-bit timeval, u16 type, u16 code, s32 value) as a
 * desktop with `layout` would; checks each press is released before the next and each group ends in
 * SYN_REPORT.
 */
export function decodeInputEvents(bytes: Uint8Array, layout: HostLayout, eventSize = 24): string {
  if (bytes.length % eventSize !== 0) throw new Error(`${bytes.length} bytes is not a whole number of ${eventSize}-byte events`);
  const names = Object.fromEntries(Object.entries(KEY_CODES).map(([n, c]) => [c, n]));
  const map = layout === 'us' ? XKB_US : XKB_JP;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let out = '';
  let shift = false;
  let down: string | undefined;
  let unsynced = false;
  for (let o = 0; o < buf.length; o += eventSize) {
    const t = o + eventSize - 8;
    const type = buf.readUInt16LE(t);
    const code = buf.readUInt16LE(t + 2);
    const value = buf.readInt32LE(t + 4);
    if (type === 0x00 && code === 0) {
      unsynced = false; // EV_SYN / SYN_REPORT
      continue;
    }
    if (type !== 0x01) throw new Error(`event ${o / eventSize}: type ${type} is not EV_KEY`);
    unsynced = true;
    const name = names[code];
    if (name === 'KEY_LEFTSHIFT') {
      shift = value === 1;
      continue;
    }
    if (value === 1) {
      if (down) throw new Error(`event ${o / eventSize}: ${name} pressed while ${down} is still down`);
      const legend = name ? map[name] : undefined;
      const ch = legend?.[shift ? 1 : 0];
      if (!ch) throw new Error(`event ${o / eventSize}: key ${code}${shift ? ' with Shift' : ''} types nothing on ${layout}`);
      out += ch;
      down = name;
    } else if (value === 0) {
      if (down !== name) throw new Error(`event ${o / eventSize}: ${name} released but ${down} was down`);
      down = undefined;
    } else throw new Error(`event ${o / eventSize}: value ${value} (autorepeat) not expected`);
  }
  if (down || shift || unsynced) throw new Error('the events end with a key down or without SYN_REPORT');
  return out;
}

/** A touch result as the lookup hands it over. */
export function touch(serviceUserId: string | undefined, outcome: TouchResult['outcome'] = 'linked'): TouchResult {
  return { transaction: 'tx', outcome, serviceId: 'library', edgeId: 'counter-1', reader: 'r', at: new Date(0).toISOString(), serviceUserId, mykeyId: 'B7NQ4KXW' };
}

export const MINIMAL_CONFIG = {
  edgeId: 'lib-counter-1',
  serviceId: 'library',
  hub: { url: 'https://hub.example:8443' },
  broker: { url: 'mqtts://hub.example:8883' },
  tls: { cert: '/nonexistent/device.pem', key: '/nonexistent/device.key', ca: '/nonexistent/ca.pem' },
};

/**
 * The edge's own hand-off path: the keyboard target as the config file describes it, loaded and
 * validated by loadEdgeConfig, built by targetsFromConfig, fed through Handoff.dispatch.
 */
export async function throughHandoff(target: Record<string, unknown>, touches: readonly TouchResult[], keyboard?: Pick<KeyboardTargetOptions, 'ioctl' | 'settleMs'>): Promise<KeyboardTarget> {
  const config = loadEdgeConfig({ overrides: { ...MINIMAL_CONFIG, handoff: { targets: [target] } }, env: {} });
  const handoff = new Handoff(targetsFromConfig(config.handoff.targets, { keyboard: { ...keyboard, anyFile: true } }));
  const kb = handoff.targets[0] as KeyboardTarget;
  await handoff.start();
  for (const t of touches) {
    handoff.dispatch(t);
    await kb.idle(); // one touch after another, as at the counter
  }
  await handoff.stop();
  return kb;
}
