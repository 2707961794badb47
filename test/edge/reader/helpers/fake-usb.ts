// A stand-in for the USB side of a Raspberry Pi: a temp directory with sysfs
// (sys/bus/usb/devices/<dev>/{idVendor,idProduct,product,busnum,devnum,authorized}, interfaces with
// their driver, hub port `disable` switches) and /dev/bus/usb/BBB/DDD nodes as plain files, plus an
// ioctl recorder.
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Ioctl } from '../../../../edge/handoff/keyboard/uinput.ts';
import { portDisablePath, type UsbRoots } from '../../../../edge/reader/usb-readers.ts';

export interface FakeDevice {
  sysName: string;
  vendorId: string;
  productId: string;
  product?: string;
  busnum?: number;
  devnum?: number;
  /** Kernel driver bound to interface :1.0 (e.g. pn533_usb). */
  driver?: string;
  /** Give its hub port a sysfs `disable` switch. */
  portSwitch?: boolean;
}

export class FakeUsb {
  readonly dir = mkdtempSync(join(tmpdir(), 'mykey-fake-usb-'));
  readonly roots: Required<UsbRoots> = { sys: join(this.dir, 'sys'), dev: join(this.dir, 'dev') };
  readonly ioctls: Array<{ path: string; request: number }> = [];
  /** Records each ioctl with the file its fd is open on (/proc/self/fd). */
  readonly ioctl: Ioctl = (fd, request) => {
    this.ioctls.push({ path: readlinkSync(`/proc/self/fd/${fd}`), request });
  };

  constructor() {
    mkdirSync(join(this.roots.sys, 'bus/usb/devices'), { recursive: true });
    mkdirSync(join(this.roots.dev, 'bus/usb'), { recursive: true });
  }

  plug(d: FakeDevice): void {
    const dev = join(this.roots.sys, 'bus/usb/devices', d.sysName);
    mkdirSync(dev, { recursive: true });
    const bus = d.busnum ?? Number(d.sysName.split('-')[0]);
    const num = d.devnum ?? 5;
    for (const [f, v] of Object.entries({ idVendor: d.vendorId, idProduct: d.productId, product: d.product ?? 'Reader', busnum: String(bus), devnum: String(num), authorized: '1' })) {
      writeFileSync(join(dev, f), `${v}\n`);
    }
    const intf = join(this.roots.sys, 'bus/usb/devices', `${d.sysName}:1.0`);
    mkdirSync(intf, { recursive: true });
    if (d.driver) {
      const drv = join(this.roots.sys, 'bus/usb/drivers', d.driver);
      mkdirSync(join(drv, `${d.sysName}:1.0`), { recursive: true });
      symlinkSync(drv, join(intf, 'driver'));
    }
    const node = join(this.roots.dev, 'bus/usb', String(bus).padStart(3, '0'));
    mkdirSync(node, { recursive: true });
    writeFileSync(join(node, String(num).padStart(3, '0')), '');
    if (d.portSwitch) {
      const p = portDisablePath(d.sysName, this.roots)!;
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, '0');
    }
  }

  unplug(sysName: string): void {
    rmSync(join(this.roots.sys, 'bus/usb/devices', sysName), { recursive: true, force: true });
    rmSync(join(this.roots.sys, 'bus/usb/devices', `${sysName}:1.0`), { recursive: true, force: true });
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
