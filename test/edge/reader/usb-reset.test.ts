// The USB side of the reader's self-healing against a temp directory standing in for sysfs and
// /dev/bus/usb: known readers are found, the reset goes to the right node or file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, rmSync } from 'node:fs';
import { portDisablePath, scanUsbReaders, usbDevicePath } from '../../../edge/reader/usb-readers.ts';
import { resetMethod, sysfsResetter, USBDEVFS_RESET } from '../../../edge/reader/usb-reset.ts';
import { FakeUsb } from './helpers/fake-usb.ts';

test("USBDEVFS_RESET is _IO('U', 20) as <linux/usbdevice_fs.h> defines it", () => {
  assert.is(USBDEVFS_RESET, 0x5514);
});

test('finds the known contactless readers on the bus and skips hubs, interfaces and other devices', () => {
  const usb = new FakeUsb();
  try {
    usb.plug({ sysName: '1-1.3', vendorId: '072f', productId: '223b', product: 'ACR1252 Dual Reader', devnum: 7 });
    usb.plug({ sysName: '1-1', vendorId: '2109', productId: '3431', product: 'USB2.0 Hub' });
    usb.plug({ sysName: '1-1.4', vendorId: '072F', productId: '2200', driver: 'pn533_usb', devnum: 9 });
    const found = scanUsbReaders(usb.roots);
    assert.equal(
      found.map((r) => [r.sysName, r.known.model, r.busnum, r.devnum, r.drivers.join(',')]),
      [
        ['1-1.3', 'ACS ACR1252U', 1, 7, ''],
        ['1-1.4', 'ACS ACR122U', 1, 9, 'pn533_usb'],
      ],
    );
    assert.is(usbDevicePath(found[0], usb.roots), usb.path('dev/bus/usb/001/007'));
  } finally {
    usb.close();
  }
});

test('no sysfs at all is no reader, not a crash', () => {
  assert.equal(scanUsbReaders({ sys: '/nonexistent-sysfs' }), []);
});

test('the port switch of a device is on the hub it hangs on, or on the root hub', () => {
  const cases: Array<[string, string | undefined]> = [
    ['1-1.3', '/sys/bus/usb/devices/1-1:1.0/1-1-port3/disable'],
    ['1-2', '/sys/bus/usb/devices/1-0:1.0/usb1-port2/disable'],
    ['2-1.2.4', '/sys/bus/usb/devices/2-1.2:1.0/2-1.2-port4/disable'],
    ['usb1', undefined],
    ['1-1:1.0', undefined],
  ];
  for (const [dev, want] of cases) assert.is(portDisablePath(dev), want, dev);
});

test('a USB reset is USBDEVFS_RESET on /dev/bus/usb/BBB/DDD', async () => {
  const usb = new FakeUsb();
  try {
    usb.plug({ sysName: '1-1.3', vendorId: '072f', productId: '223b', devnum: 7 });
    const [r] = scanUsbReaders(usb.roots);
    await sysfsResetter({ roots: usb.roots, ioctl: usb.ioctl, offMs: 1 })(r, 'usb-reset');
    assert.equal(usb.ioctls, [{ path: usb.path('dev/bus/usb/001/007'), request: USBDEVFS_RESET }]);
  } finally {
    usb.close();
  }
});

test('without the device node, the reset de-authorizes and re-authorizes the device in sysfs', async () => {
  const usb = new FakeUsb();
  try {
    usb.plug({ sysName: '1-1.3', vendorId: '072f', productId: '223b', devnum: 7 });
    rmSync(usb.path('dev/bus/usb/001/007'));
    const [r] = scanUsbReaders(usb.roots);
    const writes: string[] = [];
    const authorized = usb.path('sys/bus/usb/devices/1-1.3/authorized');
    await sysfsResetter({
      roots: usb.roots,
      ioctl: usb.ioctl,
      sleep: async () => void writes.push(readFileSync(authorized, 'utf8').trim()),
    })(r, 'usb-reset');
    assert.equal(writes, ['0']);
    assert.is(readFileSync(authorized, 'utf8').trim(), '1');
    assert.equal(usb.ioctls, []);
  } finally {
    usb.close();
  }
});

test('a port power cycle writes 1 then 0 to the port disable switch; without a switch it refuses', async () => {
  const usb = new FakeUsb();
  try {
    usb.plug({ sysName: '1-1.3', vendorId: '072f', productId: '2200', portSwitch: true });
    usb.plug({ sysName: '1-1.4', vendorId: '072f', productId: '2200', devnum: 6 });
    const [a, b] = scanUsbReaders(usb.roots);
    const seen: string[] = [];
    const sw = portDisablePath('1-1.3', usb.roots)!;
    const reset = sysfsResetter({ roots: usb.roots, sleep: async () => void seen.push(readFileSync(sw, 'utf8')) });
    await reset(a, 'port-power');
    assert.equal(seen, ['1']);
    assert.is(readFileSync(sw, 'utf8'), '0');
    await reset(b, 'port-power').then(
      () => assert.unreachable('no switch'),
      (e: Error) => assert.match(e.message, /no disable switch/),
    );
  } finally {
    usb.close();
  }
});

test('what each reset attempt does, by model and port switch', () => {
  const usb = new FakeUsb();
  try {
    usb.plug({ sysName: '1-1.3', vendorId: '072f', productId: '223b' });
    usb.plug({ sysName: '1-1.4', vendorId: '072f', productId: '2200', devnum: 6 });
    const [acr1252, acr122] = scanUsbReaders(usb.roots);
    const table: Array<[typeof acr1252, number, number, boolean, string | undefined]> = [
      [acr1252, 0, 3, false, 'usb-reset'],
      [acr1252, 2, 3, false, 'usb-reset'],
      [acr1252, 1, 3, true, 'usb-reset'],
      [acr1252, 2, 3, true, 'port-power'],
      [acr122, 0, 3, true, 'port-power'],
      [acr122, 0, 3, false, undefined],
    ];
    for (const [r, attempt, max, sw, want] of table) assert.is(resetMethod(r, attempt, max, sw), want, `${r.known.model} #${attempt} switch=${sw}`);
  } finally {
    usb.close();
  }
});

test.run();
