// Ways to revive a hung USB reader without a hand on the cable:
// - `usb-reset`: USBDEVFS_RESET on /dev/bus/usb/BBB/DDD (the device re-enumerates, keeps its address);
//   when the node cannot be opened for writing, de-authorize and re-authorize the device in sysfs
//   (`authorized` 0 then 1: the kernel unbinds and rebinds every interface).
// - `port-power`: the hub port's sysfs `disable` 1 then 0 (a software unplug; what uhubctl does where
//   the hub can switch port power). The only thing that brings back the ACR122U family.
// Every path comes from UsbRoots and the ioctl is a parameter, so tests record calls in a temp dir.
import { closeSync, constants, existsSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemIoctl, type Ioctl } from '../handoff/keyboard/uinput.ts';
import { portDisablePath, usbDevicePath, type UsbReader, type UsbRoots } from './usb-readers.ts';

/** How a reader is revived. */
export type ResetMethod = 'usb-reset' | 'port-power';

/** Revives one reader; rejects when it could not even try (no permission, device gone). */
export type UsbResetter = (reader: UsbReader, method: ResetMethod) => Promise<void>;

/** <linux/usbdevice_fs.h>: #define USBDEVFS_RESET _IO('U', 20); _IO(type, nr) = type << 8 | nr. */
export const USBDEVFS_RESET = (0x55 << 8) | 20;

export interface SysfsResetterOptions {
  roots?: UsbRoots;
  /** libc's ioctl by default. */
  ioctl?: Ioctl;
  /** How long a device stays de-authorized or its port disabled, ms (default 1000). */
  offMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The resetter the edge uses on a real machine (and tests with temp roots and a recorded ioctl). */
export function sysfsResetter(opts: SysfsResetterOptions = {}): UsbResetter {
  const roots = opts.roots ?? {};
  const offMs = opts.offMs ?? 1000;
  const sleep = opts.sleep ?? defaultSleep;
  return async (reader, method) => {
    if (method === 'port-power') {
      const path = portDisablePath(reader.sysName, roots);
      if (!path || !existsSync(path)) throw new Error(`${reader.sysName}: its hub port has no disable switch`);
      writeFileSync(path, '1', { flag: 'r+' });
      await sleep(offMs);
      writeFileSync(path, '0', { flag: 'r+' });
      return;
    }
    const node = usbDevicePath(reader, roots);
    let ioctlError: unknown;
    try {
      // O_WRONLY without O_CREAT or O_TRUNC: usbfs wants write access; a missing node must stay missing.
      const fd = openSync(node, constants.O_WRONLY);
      try {
        (opts.ioctl ?? systemIoctl())(fd, USBDEVFS_RESET, 0);
        return;
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      ioctlError = e;
    }
    const authorized = join(roots.sys ?? '/sys', 'bus/usb/devices', reader.sysName, 'authorized');
    try {
      writeFileSync(authorized, '0', { flag: 'r+' }); // r+: never create a file where sysfs has none
      await sleep(offMs);
      writeFileSync(authorized, '1', { flag: 'r+' });
    } catch (e) {
      throw new Error(`${reader.sysName}: USB reset failed (${(ioctlError as Error).message}; ${(e as Error).message})`, { cause: e });
    }
  };
}

/** True when the reader's hub port has a sysfs disable switch. */
export function hasPortSwitch(reader: UsbReader, roots: UsbRoots = {}): boolean {
  const path = portDisablePath(reader.sysName, roots);
  return path !== undefined && existsSync(path);
}

/**
 * The method of the `attempt`-th reset (0-based) of a reader, or undefined when nothing we can do
 * revives it. A model that a USB reset revives gets USB resets, and a port power cycle as the last
 * try when its port has a switch; one that it does not (ACR122U) gets port power cycles only.
 */
export function resetMethod(reader: UsbReader, attempt: number, maxResets: number, portSwitch: boolean): ResetMethod | undefined {
  if (!reader.known.resetRevives) return portSwitch ? 'port-power' : undefined;
  return portSwitch && attempt === maxResets - 1 && maxResets > 1 ? 'port-power' : 'usb-reset';
}
