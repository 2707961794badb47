// Creating a virtual keyboard with /dev/uinput (for a business application on the same machine).
// Node has no ioctl, so libc's is called through koffi (already a dependency). Everything that can be
// pure is: the ioctl request numbers and the uinput_setup struct are computed here and tested; the
// ioctl function comes in as a parameter so tests can record the calls.
import { createRequire } from 'node:module';
import { EV_KEY } from './input-event.ts';

// <asm-generic/ioctl.h>: request = dir << 30 | size << 16 | type << 8 | nr  (the same on x64, arm, arm64)
const IOC_WRITE = 1;
const ioc = (dir: number, type: string, nr: number, size: number) => ((dir << 30) | (size << 16) | (type.charCodeAt(0) << 8) | nr) >>> 0;

/** <linux/uinput.h> UINPUT_MAX_NAME_SIZE */
export const UINPUT_MAX_NAME_SIZE = 80;
/** sizeof(struct uinput_setup): struct input_id (4 x __u16) + name[80] + __u32 ff_effects_max. */
export const UINPUT_SETUP_SIZE = 8 + UINPUT_MAX_NAME_SIZE + 4;

/** <linux/uinput.h> request numbers. */
export const UI = {
  DEV_CREATE: ioc(0, 'U', 1, 0), //            _IO('U', 1)
  DEV_DESTROY: ioc(0, 'U', 2, 0), //           _IO('U', 2)
  DEV_SETUP: ioc(IOC_WRITE, 'U', 3, UINPUT_SETUP_SIZE), // _IOW('U', 3, struct uinput_setup)
  SET_EVBIT: ioc(IOC_WRITE, 'U', 100, 4), //   _IOW('U', 100, int)
  SET_KEYBIT: ioc(IOC_WRITE, 'U', 101, 4), //  _IOW('U', 101, int)
} as const;

/** <linux/input.h> BUS_VIRTUAL */
export const BUS_VIRTUAL = 0x06;

/** Encodes struct uinput_setup { struct input_id id; char name[80]; __u32 ff_effects_max; }. */
export function uinputSetup(opts: { name: string; vendor?: number; product?: number; version?: number; bustype?: number }): Buffer {
  const b = Buffer.alloc(UINPUT_SETUP_SIZE);
  b.writeUInt16LE(opts.bustype ?? BUS_VIRTUAL, 0);
  b.writeUInt16LE(opts.vendor ?? 0, 2);
  b.writeUInt16LE(opts.product ?? 0, 4);
  b.writeUInt16LE(opts.version ?? 1, 6);
  const name = Buffer.from(opts.name, 'utf8');
  if (name.length >= UINPUT_MAX_NAME_SIZE) throw new RangeError(`uinput device name longer than ${UINPUT_MAX_NAME_SIZE - 1} bytes`);
  name.copy(b, 8); // NUL-terminated by the zero fill
  return b; // ff_effects_max 0: no force feedback
}

/** ioctl(fd, request, arg): an int passed by value, or a struct passed by pointer. Throws on -1. */
export type Ioctl = (fd: number, request: number, arg: number | Buffer) => void;

/** The ioctl calls that declare a keyboard with `keys`, name it and create it, in order. */
export function uinputCreateCalls(keys: readonly number[], name: string): Array<[request: number, arg: number | Buffer]> {
  return [[UI.SET_EVBIT, EV_KEY], ...keys.map((k): [number, number] => [UI.SET_KEYBIT, k]), [UI.DEV_SETUP, uinputSetup({ name })], [UI.DEV_CREATE, 0]];
}

let libcIoctl: Ioctl | undefined;

/** libc's ioctl through koffi; an error names the request and errno. */
export function systemIoctl(): Ioctl {
  if (libcIoctl) return libcIoctl;
  if (process.platform !== 'linux') throw new Error(`uinput exists only on Linux (this is ${process.platform})`);
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as typeof import('koffi');
  const libc = koffi.load('libc.so.6');
  // int ioctl(int fd, unsigned long request, ...): variadic, so each call names its third argument's type.
  const raw = libc.func('int ioctl(int fd, unsigned long request, ...)') as (fd: number, request: number, ...rest: unknown[]) => number;
  libcIoctl = (fd, request, arg) => {
    const rc = typeof arg === 'number' ? raw(fd, request, 'int', arg) : raw(fd, request, 'uint8_t *', arg);
    if (rc < 0) {
      const errno = koffi.errno();
      const name = Object.entries(koffi.os.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
      throw Object.assign(new Error(`ioctl 0x${request.toString(16)} failed: ${name}`), { errno, code: name });
    }
  };
  return libcIoctl;
}
