// What a touch asks of PC/SC (issue #11): one connect, one transmit per APDU of the read, one
// disconnect, nothing else; the read's first command passes the guard while the connect is under way
// and reaches the card only once connected. The card is the virtual card's APDU machine behind a
// stand-in for pcsclite, so every call is counted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../../../provisioning/virtual-card/card.ts';
import { toHex } from '../../../edge/reader/apdu.ts';
import { SCARD_STATE as S } from '../../../edge/reader/pcsc-state.ts';
import { ReaderManager } from '../../../edge/reader/reader-manager.ts';
import { TouchPipeline, type TouchEvents } from '../../../edge/reader/touch.ts';
import { silentReaderLog } from '../../../edge/reader/log.ts';
import { CardSession } from '../../../edge/reader/transport.ts';
import { FakeReader, fakePcsc } from './helpers/fake-pcsc.ts';
import { scriptedCard } from './helpers/fake-card.ts';
import { rejectsWith } from '../../helpers/assertions.ts';
import { until } from '../../helpers/polling.ts';

const ca = await createTestCa({ label: 'reader-touch-calls' });
const withId = await makeCardFile({ ca, mykeyId: 'Q4T7WB2N' });
const noApp = await makeCardFile({ ca, withMyKeyApp: false });

const SELECT_MYKEY = '00 A4 04 0C 07 F0 4D 59 4B 45 59 01';
const SELECT_JPKI = '00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01';

/** A pcsclite reader that counts every call and can hold a connect until the test lets it answer. */
class CountingReader extends FakeReader {
  readonly calls: string[] = [];
  /** True while this reader calls back with an answer to a transmit. */
  inAnswer = false;
  hold: Promise<void> | undefined;
  connectError: Error | undefined;
  constructor(name: string, card: () => VirtualCard) {
    super(name);
    this.answer = (apdu) => Buffer.from(card().exchange(apdu).response);
  }
  override connect(o: { share_mode: number; protocol: number }, cb: (err: Error | null | undefined, protocol: number) => void): void {
    this.calls.push('connect');
    const go = () => {
      if (this.connectError) setImmediate(() => cb(this.connectError, 0));
      else super.connect(o, cb);
    };
    if (this.hold) void this.hold.then(go);
    else go();
  }
  override transmit(data: Buffer, len: number, p: number, cb: (err: Error | null | undefined, response: Buffer) => void): void {
    this.calls.push(`transmit ${toHex(data)}`);
    super.transmit(data, len, p, (err, response) => {
      this.inAnswer = true;
      try {
        cb(err, response);
      } finally {
        this.inAnswer = false;
      }
    });
  }
  override disconnect(disposition: number, cb: (err: Error | null | undefined) => void): void {
    this.calls.push('disconnect');
    super.disconnect(disposition, cb);
  }
}

async function rig() {
  const pcsc = fakePcsc();
  const manager = new ReaderManager({ pcsc, log: silentReaderLog });
  const pipeline = new TouchPipeline(manager, { log: silentReaderLog });
  manager.start();
  let card = new VirtualCard(withId);
  const ctx = await until(() => pcsc.contexts[0], { what: 'the PC/SC context' });
  const reader = new CountingReader('R1', () => card);
  ctx.emit('reader', reader);
  reader.status({ state: S.EMPTY });
  pipeline.start();
  const outcomes: (TouchEvents['identity'] | TouchEvents['touch-failed'])[] = [];
  pipeline.on('identity', (e) => outcomes.push(e));
  pipeline.on('touch-failed', (e) => outcomes.push(e));
  return {
    manager,
    pipeline,
    reader,
    outcomes,
    /** Puts a card on the reader; resolves with the touch's outcome once its session is closed. */
    async touch(file: typeof withId) {
      card = new VirtualCard(file);
      card.powerOn();
      const before = outcomes.length;
      reader.status({ state: S.PRESENT, atr: Buffer.from(card.atr) });
      await until(() => outcomes.length > before && reader.calls.at(-1) === 'disconnect', { what: 'the touch to end' });
      return outcomes[before];
    },
    async stop() {
      await pipeline.stop();
      await manager.stop();
    },
  };
}

const transmits = (calls: string[]) => calls.filter((c) => c.startsWith('transmit ')).map((c) => c.slice('transmit '.length));

test('a touch of a MyKey card is one connect, three transmits and one disconnect, nothing else', async () => {
  const r = await rig();
  const outcome = await r.touch(withId);
  assert.ok('identity' in outcome, 'the touch yields an identity');
  assert.equal(r.reader.calls, ['connect', `transmit ${SELECT_MYKEY}`, 'transmit 00 A4 02 0C 02 00 01', 'transmit 00 B0 00 00 08', 'disconnect']);
  await r.stop();
});

test('a touch of a card without the MyKey application is one connect, nine transmits and one disconnect; nothing after the refused SELECT', async () => {
  const r = await rig();
  const outcome = await r.touch(noApp);
  assert.ok('identity' in outcome && outcome.identity.kind === 'cert', 'the touch yields the certificate');
  const total = Buffer.from(noApp.jpki.authCert, 'base64').length;
  const chunks: string[] = [];
  for (let offset = 4; offset < total; offset += 256) chunks.push(toHex(Uint8Array.of(0x00, 0xb0, offset >> 8, offset & 0xff, Math.min(256, total - offset) & 0xff)));
  // SELECT MyKey answers 6A82: its SELECT EF and READ BINARY are never sent.
  assert.equal(transmits(r.reader.calls), [SELECT_MYKEY, SELECT_JPKI, '00 A4 02 0C 02 00 0A', '00 B0 00 00 04', ...chunks]);
  assert.equal(
    r.reader.calls.filter((c) => !c.startsWith('transmit ')),
    ['connect', 'disconnect'],
  );
  await r.stop();
});

test("the identity goes out inside PC/SC's callback of the card's last answer, for both kinds of card", async () => {
  for (const [file, kind] of [
    [withId, 'mykey'],
    [noApp, 'cert'],
  ] as const) {
    const r = await rig();
    const seen: boolean[] = [];
    r.pipeline.on('identity', () => seen.push(r.reader.inAnswer));
    const outcome = await r.touch(file);
    assert.ok('identity' in outcome && outcome.identity.kind === kind, kind);
    assert.equal(seen, [true], `${kind}: no promise turn between the last answer and the identity`);
    if ('identity' in outcome && outcome.identity.kind === 'cert') assert.match(outcome.identity.certSha256, /^[0-9a-f]{64}$/);
    await r.stop();
  }
});

test('the first command passes the guard while PC/SC connects, and reaches the card only once connected', async () => {
  const r = await rig();
  let release = () => {};
  r.reader.hold = new Promise<void>((res) => (release = res));
  const done = r.touch(withId);
  await until(() => r.reader.calls.includes('connect'), { what: 'the connect' });
  for (let i = 0; i < 5; i++) await new Promise((res) => setImmediate(res));
  assert.equal(r.reader.calls, ['connect'], 'nothing is sent before the connection stands');
  release();
  const outcome = await done;
  assert.ok('identity' in outcome);
  assert.is(transmits(r.reader.calls).length, 3);
  await r.stop();
});

test('a connect refused because another program holds the card fails the touch with reader_busy, and nothing is sent', async () => {
  const r = await rig();
  r.reader.connectError = new Error('SCardConnect error: Sharing violation.(0x8010000B)');
  r.reader.status({ state: S.PRESENT, atr: Buffer.from('3b', 'hex') });
  const failed = await until(() => r.outcomes[0], { what: 'the touch to fail' });
  assert.is('code' in failed && failed.code, 'reader_busy');
  assert.is('pcsc' in failed && failed.pcsc, 0x8010000b);
  assert.equal(r.reader.calls, ['connect']);
  await r.stop();
});

test('a card taken away while PC/SC connects fails the touch with card_removed, and the connection is let go', async () => {
  const r = await rig();
  let release = () => {};
  r.reader.hold = new Promise<void>((res) => (release = res));
  r.reader.status({ state: S.PRESENT, atr: Buffer.from('3b', 'hex') });
  await until(() => r.reader.calls.includes('connect'), { what: 'the connect' });
  r.reader.status({ state: S.EMPTY });
  release();
  const failed = await until(() => r.outcomes[0], { what: 'the touch to fail' });
  assert.is('code' in failed && failed.code, 'card_removed');
  assert.equal(transmits(r.reader.calls), []);
  await until(() => r.reader.calls.includes('disconnect'), { what: 'the disconnect' });
  await r.stop();
});

test('a series sends each APDU through the guard at its turn: a forbidden SELECT in it never reaches the card', async () => {
  const raw = scriptedCard(() => '90 00');
  const s = new CardSession(raw);
  const mynumberAp = '00 A4 04 0C 0A D3 92 10 00 31 00 01 01 04 08';
  const series = [SELECT_JPKI, '00 A4 02 0C 02 00 0A', mynumberAp].map((h) => Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex')));
  await rejectsWith(
    s.transmitSteps(series[0], (_r, i) => series[i + 1]),
    'apdu_refused',
  );
  assert.equal(raw.sent, [SELECT_JPKI, '00 A4 02 0C 02 00 0A']);
});

test('a series stops at the first answer it does not accept, and the next command still goes', async () => {
  const raw = scriptedCard((h) => (h === '00 A4 02 0C 02 00 0A' ? '6A 82' : '90 00'));
  const s = new CardSession(raw);
  const series = [SELECT_JPKI, '00 A4 02 0C 02 00 0A', '00 B0 00 00 04'].map((h) => Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex')));
  const answers = await s.transmitSteps(series[0], (a, i) => (a.sw === 0x9000 ? series[i + 1] : undefined));
  assert.equal(
    answers.map((a) => a.sw),
    [0x9000, 0x6a82],
  );
  assert.is((await s.transmit(Uint8Array.from(Buffer.from('00A4020C02000B', 'hex')))).sw, 0x9000);
  assert.equal(raw.sent, [SELECT_JPKI, '00 A4 02 0C 02 00 0A', '00 A4 02 0C 02 00 0B']);
  await s.close();
});

test.run();
