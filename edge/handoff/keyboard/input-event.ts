// Linux input events for a uinput keyboard: what is written to /dev/uinput to type.
//
// <linux/input.h>:  struct input_event { struct timeval time; __u16 type; __u16 code; __s32 value; };
// timeval is two native longs (on 32-bit userspace with 64-bit time_t the kernel header spells them
// __kernel_ulong_t __sec/__usec: still two longs), so an event is 24 bytes on a 64-bit process
// (arm64, x64) and 16 on a 32-bit one (armhf). The kernel stamps injected events itself
// (uinput_inject_events -> input_event), so the time written is zero.
import { linuxKeyOf, LEFT_SHIFT_USAGE, type Stroke } from './layouts.ts';

// <linux/input-event-codes.h>
export const EV_SYN = 0x00;
export const EV_KEY = 0x01;
export const SYN_REPORT = 0;

/** One input event without its time. */
export interface InputEvent {
  type: number;
  code: number;
  value: number;
}

/** Bytes in a native long of this process (4 on armhf, 8 on arm64 and x64). */
export function nativeLongBytes(arch: string = process.arch): 4 | 8 {
  return arch === 'arm' || arch === 'ia32' || arch === 'mips' || arch === 'mipsel' || arch === 'ppc' ? 4 : 8;
}

/** Size of struct input_event for a long of `longBytes`. */
export function inputEventSize(longBytes: 4 | 8 = nativeLongBytes()): number {
  return 2 * longBytes + 8;
}

/** Encodes events as consecutive struct input_event (little-endian, as on every Pi and PC). */
export function encodeEvents(events: readonly InputEvent[], longBytes: 4 | 8 = nativeLongBytes()): Buffer {
  const size = inputEventSize(longBytes);
  const buf = Buffer.alloc(size * events.length); // zero time
  events.forEach((e, i) => {
    const o = i * size + 2 * longBytes;
    buf.writeUInt16LE(e.type, o);
    buf.writeUInt16LE(e.code, o + 2);
    buf.writeInt32LE(e.value, o + 4);
  });
  return buf;
}

const SYN: InputEvent = { type: EV_SYN, code: SYN_REPORT, value: 0 };

/** The events that press a stroke's key (Left Shift first when it needs it), ending in SYN_REPORT. */
export function keyDownEvents(s: Stroke): InputEvent[] {
  const out: InputEvent[] = [];
  if (s.shift) out.push({ type: EV_KEY, code: linuxKeyOf(LEFT_SHIFT_USAGE), value: 1 });
  out.push({ type: EV_KEY, code: linuxKeyOf(s.usage), value: 1 }, SYN);
  return out;
}

/** The events that release it (Left Shift last), ending in SYN_REPORT. */
export function keyUpEvents(s: Stroke): InputEvent[] {
  const out: InputEvent[] = [{ type: EV_KEY, code: linuxKeyOf(s.usage), value: 0 }];
  if (s.shift) out.push({ type: EV_KEY, code: linuxKeyOf(LEFT_SHIFT_USAGE), value: 0 });
  out.push(SYN);
  return out;
}
