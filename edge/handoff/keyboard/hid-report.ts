// Boot-keyboard reports for a USB HID gadget (/dev/hidg0): the descriptor the gadget announces and the
// 8-byte input reports written to type.
//
// HID 1.11 Appendix B.1 "Protocol 1 (Keyboard)": byte 0 modifiers (bit 0 LCtrl, 1 LShift, 2 LAlt,
// 3 LGUI, 4 RCtrl, 5 RShift, 6 RAlt, 7 RGUI), byte 1 reserved, bytes 2..7 up to six pressed keys
// (HID usages, page 0x07). A report with no key is "all keys up"; one follows every key so that the
// same character twice in a row is two presses.
import type { Stroke } from './layouts.ts';

/**
 * The report descriptor provisioning/hid-gadget/setup.sh writes to the gadget's report_desc (the
 * test compares the two). It is the boot keyboard of HID 1.11 Appendix E.6, except that the key
 * array's logical and usage maximum are 255 instead of 101: the JIS keys ろ (0x87) and ¥ (0x89)
 * lie above 101.
 */
// biome-ignore format: one HID item (its prefix byte and data) per line, as the specification lists them
export const BOOT_KEYBOARD_REPORT_DESCRIPTOR: Uint8Array = Uint8Array.of(
  0x05, 0x01, // Usage Page (Generic Desktop)
  0x09, 0x06, // Usage (Keyboard)
  0xa1, 0x01, // Collection (Application)
  0x05, 0x07, //   Usage Page (Keyboard/Keypad)
  0x19, 0xe0, //   Usage Minimum (Left Control)
  0x29, 0xe7, //   Usage Maximum (Right GUI)
  0x15, 0x00, //   Logical Minimum (0)
  0x25, 0x01, //   Logical Maximum (1)
  0x75, 0x01, //   Report Size (1)
  0x95, 0x08, //   Report Count (8)
  0x81, 0x02, //   Input (Data, Variable, Absolute): the modifier byte
  0x95, 0x01, //   Report Count (1)
  0x75, 0x08, //   Report Size (8)
  0x81, 0x03, //   Input (Constant): the reserved byte
  0x95, 0x05, //   Report Count (5)
  0x75, 0x01, //   Report Size (1)
  0x05, 0x08, //   Usage Page (LEDs)
  0x19, 0x01, //   Usage Minimum (Num Lock)
  0x29, 0x05, //   Usage Maximum (Kana)
  0x91, 0x02, //   Output (Data, Variable, Absolute): the LED byte from the host
  0x95, 0x01, //   Report Count (1)
  0x75, 0x03, //   Report Size (3)
  0x91, 0x03, //   Output (Constant): LED padding
  0x95, 0x06, //   Report Count (6)
  0x75, 0x08, //   Report Size (8)
  0x15, 0x00, //   Logical Minimum (0)
  0x26, 0xff, 0x00, //   Logical Maximum (255): two bytes, as one byte would be signed (-1)
  0x05, 0x07, //   Usage Page (Keyboard/Keypad)
  0x19, 0x00, //   Usage Minimum (0)
  0x29, 0xff, //   Usage Maximum (255)
  0x81, 0x00, //   Input (Data, Array): the six key slots
  0xc0, // End Collection
);

/** Length of one input report (the gadget's report_length). */
export const BOOT_REPORT_LENGTH = 8;

/** HID 1.11 B.1: Left Shift is bit 1 of the modifier byte. */
const MOD_LEFT_SHIFT = 0x02;

/** The report that holds one stroke's key down (with Left Shift when it needs it). */
export function keyDownReport(s: Stroke): Buffer {
  const r = Buffer.alloc(BOOT_REPORT_LENGTH);
  r[0] = s.shift ? MOD_LEFT_SHIFT : 0;
  r[2] = s.usage;
  return r;
}

/** The report with every key and modifier up. */
export function keyUpReport(): Buffer {
  return Buffer.alloc(BOOT_REPORT_LENGTH);
}

/** The reports that type the strokes in order: a key-down and a key-up for each. */
export function reportsOf(strokes: readonly Stroke[]): Buffer[] {
  return strokes.flatMap((s) => [keyDownReport(s), keyUpReport()]);
}
