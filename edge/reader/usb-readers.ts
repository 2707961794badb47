// Contactless CCID readers on the USB bus, as sysfs shows them (/sys/bus/usb/devices/*: idVendor,
// idProduct, product, busnum, devnum), matched against a table of the models shops buy. The table says
// whether a USB reset brings the model back after it hangs, and which kernel NFC module grabs it
// before pcscd can (then PC/SC never sees it). Reading sysfs is the only I/O here; the root is a
// parameter so tests use a temp directory.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';

/** A reader model the edge knows how to heal. */
export interface KnownReader {
  vendorId: string;
  productId: string;
  model: string;
  /**
   * True when a USB reset (USBDEVFS_RESET, or de/re-authorizing it) revives the model after it hangs.
   * The ACR122U family does not: it drops out of PC/SC until it is powered off (a port power cycle,
   * or unplugged by hand). The ACR1252U does.
   */
  resetRevives: boolean;
  /** The kernel NFC module that claims the model when it is loaded (then pcscd cannot). */
  kernelModule?: string;
  /** Lower-case fragments of the PC/SC reader names the ccid driver gives the model. */
  pcscNames: readonly string[];
}

/**
 * The models we have seen at counters. Ids from the CCID driver's supported-readers list; reset
 * behaviour from the pcsc-lite / nfc-pcsc / pyscard issue threads about Raspberry Pis.
 */
export const KNOWN_READERS: readonly KnownReader[] = [
  { vendorId: '072f', productId: '2200', model: 'ACS ACR122U', resetRevives: false, kernelModule: 'pn533_usb', pcscNames: ['acr122'] },
  { vendorId: '072f', productId: '223b', model: 'ACS ACR1252U', resetRevives: true, pcscNames: ['acr1252'] },
  { vendorId: '072f', productId: '221a', model: 'ACS ACR1251U', resetRevives: true, pcscNames: ['acr1251'] },
  { vendorId: '04e6', productId: '5591', model: 'SCM SCL3711', resetRevives: false, kernelModule: 'pn533_usb', pcscNames: ['scl3711'] },
  { vendorId: '054c', productId: '06c1', model: 'Sony RC-S380/S', resetRevives: true, kernelModule: 'port100', pcscNames: ['rc-s380', 'pasori'] },
  { vendorId: '054c', productId: '06c3', model: 'Sony RC-S380/P', resetRevives: true, kernelModule: 'port100', pcscNames: ['rc-s380', 'pasori'] },
  { vendorId: '054c', productId: '0dc8', model: 'Sony RC-S300/S', resetRevives: true, pcscNames: ['rc-s300', 'pasori'] },
  { vendorId: '054c', productId: '0dc9', model: 'Sony RC-S300/P', resetRevives: true, pcscNames: ['rc-s300', 'pasori'] },
  { vendorId: '076b', productId: '5022', model: 'HID OMNIKEY 5022', resetRevives: true, pcscNames: ['omnikey 5022'] },
];

/** A known reader found on the USB bus. */
export interface UsbReader {
  /** The sysfs device name, e.g. `1-1.3` (bus 1, port 1 of the root hub, port 3 of the hub behind it). */
  sysName: string;
  busnum: number;
  devnum: number;
  /** The product string the device reports (may differ from the table's model). */
  product: string;
  known: KnownReader;
  /** Kernel drivers bound to the device's interfaces (`usbfs` while pcscd's libusb holds it). */
  drivers: string[];
}

/** Where sysfs and /dev are (tests: a temp directory for each). */
export interface UsbRoots {
  /** Default `/sys`. */
  sys?: string;
  /** Default `/dev`. */
  dev?: string;
}

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
};

/** The known reader of a vendor and product id, if any. */
export function knownReader(vendorId: string, productId: string, table: readonly KnownReader[] = KNOWN_READERS): KnownReader | undefined {
  const v = vendorId.toLowerCase();
  const p = productId.toLowerCase();
  return table.find((k) => k.vendorId === v && k.productId === p);
}

/**
 * The known readers on the USB bus now. Interfaces (`1-1.3:1.0`) and hubs are skipped; a device that
 * vanishes while it is read is skipped too (it was being unplugged).
 */
export function scanUsbReaders(roots: UsbRoots = {}, table: readonly KnownReader[] = KNOWN_READERS): UsbReader[] {
  const base = join(roots.sys ?? '/sys', 'bus/usb/devices');
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return [];
  }
  const out: UsbReader[] = [];
  for (const sysName of names.sort()) {
    if (sysName.includes(':')) continue; // an interface, not a device
    const dir = join(base, sysName);
    const vendor = readText(join(dir, 'idVendor'));
    const product = readText(join(dir, 'idProduct'));
    if (!vendor || !product) continue;
    const known = knownReader(vendor, product, table);
    if (!known) continue;
    const busnum = Number(readText(join(dir, 'busnum')));
    const devnum = Number(readText(join(dir, 'devnum')));
    if (!Number.isInteger(busnum) || !Number.isInteger(devnum) || busnum < 1 || devnum < 1) continue;
    out.push({ sysName, busnum, devnum, product: (readText(join(dir, 'product')) ?? '').slice(0, 64), known, drivers: interfaceDrivers(base, sysName) });
  }
  return out;
}

/** Drivers bound to the interfaces of `sysName` (each interface's `driver` symlink). */
function interfaceDrivers(base: string, sysName: string): string[] {
  const drivers = new Set<string>();
  let names: string[] = [];
  try {
    names = readdirSync(base).filter((n) => n.startsWith(`${sysName}:`));
  } catch {
    return [];
  }
  for (const n of names) {
    try {
      drivers.add(basename(readlinkSync(join(base, n, 'driver'))));
    } catch {
      // no driver bound to this interface
    }
  }
  return [...drivers].sort();
}

/** The device node of a USB device: /dev/bus/usb/BBB/DDD. */
export function usbDevicePath(r: Pick<UsbReader, 'busnum' | 'devnum'>, roots: UsbRoots = {}): string {
  return join(roots.dev ?? '/dev', 'bus/usb', String(r.busnum).padStart(3, '0'), String(r.devnum).padStart(3, '0'));
}

/**
 * The sysfs `disable` file of the hub port the device hangs on, e.g. for `1-1.3` the port 3 of hub
 * `1-1`: /sys/bus/usb/devices/1-1:1.0/1-1-port3/disable; for `1-2` on the root hub `usb1`:
 * /sys/bus/usb/devices/1-0:1.0/usb1-port2/disable (Linux usb port sysfs ABI, since 4.20).
 */
export function portDisablePath(sysName: string, roots: UsbRoots = {}): string | undefined {
  const m = /^(\d+)-([\d.]+)$/.exec(sysName);
  if (!m) return undefined;
  const [, bus, chain] = m;
  const ports = chain.split('.');
  const port = ports.pop()!;
  const hub = ports.length ? `${bus}-${ports.join('.')}` : `usb${bus}`;
  const hubInterface = ports.length ? `${hub}:1.0` : `${bus}-0:1.0`;
  return join(roots.sys ?? '/sys', 'bus/usb/devices', hubInterface, `${hub}-port${port}`, 'disable');
}

/** True when the PC/SC reader name is one the ccid driver gives this model. */
export function pcscNameMatches(name: string, known: KnownReader): boolean {
  const n = name.toLowerCase();
  return known.pcscNames.some((p) => n.includes(p));
}
