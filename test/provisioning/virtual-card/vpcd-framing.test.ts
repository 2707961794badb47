// VpcdSlot against a stand-in for vpcd on an ephemeral port: the framing, the control codes and the
// faults, byte for byte, without pcscd.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server, type Socket } from 'node:net';
import { JPKI_AID } from '../../../shared/card.ts';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard, type CardFaults } from '../../../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../../../provisioning/virtual-card/vpcd-slot.ts';
import { toHex } from '../../../provisioning/virtual-card/apdu.ts';

const ca = await createTestCa({ label: 'vpcd-framing' });
const file = await makeCardFile({ ca });
const SELECT_JPKI = Uint8Array.from([0x00, 0xa4, 0x04, 0x0c, 0x0a, ...JPKI_AID]);

/** A fake vpcd: accepts one card, lets the test write raw bytes and read whole frames back. */
class FakeVpcd {
  server: Server;
  port = 0;
  socket: Socket | null = null;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  private connected: Promise<Socket>;

  constructor() {
    let onConn!: (s: Socket) => void;
    this.connected = new Promise((r) => (onConn = r));
    this.server = createServer((s) => {
      this.socket = s;
      s.on('data', (d: Buffer) => {
        this.buf = Buffer.concat([this.buf, d]);
        for (const w of this.waiters.splice(0)) w();
      });
      s.on('close', () => {
        this.closed = true;
        for (const w of this.waiters.splice(0)) w();
      });
      onConn(s);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
  }

  async conn(): Promise<Socket> {
    return this.connected;
  }

  static frame(payload: Uint8Array): Buffer {
    const b = Buffer.alloc(2 + payload.length);
    b.writeUInt16BE(payload.length);
    b.set(payload, 2);
    return b;
  }

  /** The next whole frame from the card, or undefined when the card hung up first. */
  async nextFrame(timeoutMs = 2000): Promise<Buffer | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0)) {
        const len = this.buf.readUInt16BE(0);
        const out = this.buf.subarray(2, 2 + len);
        this.buf = this.buf.subarray(2 + len);
        return Buffer.from(out);
      }
      if (this.closed) return undefined;
      if (Date.now() > deadline) throw new Error('no frame from the card');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  /** Bytes received that do not make a whole frame. */
  leftover(): number {
    return this.buf.length;
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

async function setup(faults?: CardFaults, onRemoved?: (why: string) => void) {
  const vpcd = new FakeVpcd();
  await vpcd.listen();
  const card = new VirtualCard(file, { faults });
  const slot = new VpcdSlot({ port: vpcd.port, log: () => undefined, onRemoved });
  const inserting = slot.insert(card);
  const s = await vpcd.conn();
  // vpcd asks for the ATR first; insert() resolves only once vpcd has spoken.
  s.write(FakeVpcd.frame(Uint8Array.of(0x04)));
  await inserting;
  assert.is(toHex((await vpcd.nextFrame())!), file.atr);
  return { vpcd, card, slot, s };
}

test('answers GET ATR and APDUs, each in one frame', async () => {
  const { vpcd, slot, s } = await setup();
  try {
    s.write(FakeVpcd.frame(Uint8Array.of(0x01)));
    s.write(FakeVpcd.frame(SELECT_JPKI));
    assert.is(toHex((await vpcd.nextFrame())!), '9000');
  } finally {
    await slot.remove();
    await vpcd.close();
  }
});

test('reassembles messages split byte by byte and splits several messages in one chunk', async () => {
  const { vpcd, slot, s } = await setup();
  try {
    const bytes = FakeVpcd.frame(SELECT_JPKI);
    for (const b of bytes) {
      s.write(Uint8Array.of(b));
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.is(toHex((await vpcd.nextFrame())!), '9000');
    s.write(
      Buffer.concat([
        FakeVpcd.frame(Uint8Array.of(0x04)),
        FakeVpcd.frame(Uint8Array.from([0x00, 0xa4, 0x02, 0x0c, 0x02, 0x00, 0x0a])),
        FakeVpcd.frame(Uint8Array.from([0x00, 0xb0, 0x00, 0x00, 0x04])),
      ]),
    );
    assert.is(toHex((await vpcd.nextFrame())!), file.atr);
    assert.is(toHex((await vpcd.nextFrame())!), '9000');
    assert.match(toHex((await vpcd.nextFrame())!), /^3082....9000$/);
  } finally {
    await slot.remove();
    await vpcd.close();
  }
});

test('power off, power on and reset reach the card', async () => {
  const { vpcd, card, slot, s } = await setup();
  try {
    assert.ok(card.isPowered, 'a contactless card is powered on arrival');
    s.write(FakeVpcd.frame(Uint8Array.of(0x00)));
    s.write(FakeVpcd.frame(Uint8Array.of(0x04)));
    await vpcd.nextFrame();
    assert.not.ok(card.isPowered);
    s.write(FakeVpcd.frame(Uint8Array.of(0x01)));
    s.write(FakeVpcd.frame(SELECT_JPKI));
    assert.is(toHex((await vpcd.nextFrame())!), '9000');
    s.write(FakeVpcd.frame(Uint8Array.of(0x02)));
    s.write(FakeVpcd.frame(Uint8Array.from([0x00, 0xa4, 0x02, 0x0c, 0x02, 0x00, 0x0a])));
    assert.is(toHex((await vpcd.nextFrame())!), '6a82', 'reset forgot the selected application');
  } finally {
    await slot.remove();
    await vpcd.close();
  }
});

test('removal after N APDUs closes the connection without an answer', async () => {
  const removed: string[] = [];
  const { vpcd, slot, s } = await setup({ removeAfterApdus: 1 }, (w) => removed.push(w));
  try {
    s.write(FakeVpcd.frame(SELECT_JPKI));
    assert.is(toHex((await vpcd.nextFrame())!), '9000');
    s.write(FakeVpcd.frame(SELECT_JPKI));
    assert.is(await vpcd.nextFrame(), undefined);
    assert.equal(removed, ['fault']);
    assert.not.ok(slot.inserted);
  } finally {
    await slot.remove();
    await vpcd.close();
  }
});

test('a dropped connection leaves half a frame behind', async () => {
  const { vpcd, slot, s } = await setup({ dropConnectionMidResponse: true }, () => undefined);
  try {
    s.write(FakeVpcd.frame(SELECT_JPKI));
    assert.is(await vpcd.nextFrame(), undefined);
    assert.is(vpcd.leftover(), 2, 'the 2-byte length of a 2-byte response, and nothing after it');
  } finally {
    await slot.remove();
    await vpcd.close();
  }
});

test('a delay holds the answer back, and answers keep their order', async () => {
  const { vpcd, slot, s } = await setup({ delayMs: 100 });
  try {
    const t0 = Date.now();
    s.write(Buffer.concat([FakeVpcd.frame(SELECT_JPKI), FakeVpcd.frame(Uint8Array.of(0x04))]));
    assert.is(toHex((await vpcd.nextFrame())!), '9000');
    assert.ok(Date.now() - t0 >= 95);
    assert.is(toHex((await vpcd.nextFrame())!), file.atr);
  } finally {
    await slot.remove();
    await vpcd.close();
  }
});

test('vpcd closing the connection is reported as the card leaving', async () => {
  const removed: string[] = [];
  const { vpcd, slot, s } = await setup(undefined, (w) => removed.push(w));
  s.destroy();
  for (let i = 0; i < 40 && slot.inserted; i++) await new Promise((r) => setTimeout(r, 25));
  assert.not.ok(slot.inserted);
  assert.equal(removed, ['peer-closed']);
  await vpcd.close();
});

test('a second insert into a busy slot is refused', async () => {
  const { vpcd, slot } = await setup();
  try {
    await slot.insert(new VirtualCard(file)).then(
      () => assert.unreachable('should refuse'),
      (err) => assert.is(err.code, 'conflict'),
    );
  } finally {
    await slot.remove();
    await vpcd.close();
  }
});

test('insert gives up with reader_unavailable when vpcd never takes the card', async () => {
  const vpcd = new FakeVpcd();
  await vpcd.listen();
  const slot = new VpcdSlot({ port: vpcd.port, connectTimeoutMs: 200, log: () => undefined });
  try {
    await slot.insert(new VirtualCard(file)).then(
      () => assert.unreachable('should time out'),
      (err) => {
        assert.is(err.code, 'reader_unavailable');
        assert.match(err.message, /did not take the card/);
      },
    );
    assert.not.ok(slot.inserted);
  } finally {
    await vpcd.close();
  }
});

test.run();
