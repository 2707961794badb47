import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MyKeyError } from '../../../shared/errors.ts';
import { SCARD_STATE as S } from '../../../edge/reader/pcsc-state.ts';
import { ReaderManager } from '../../../edge/reader/reader-manager.ts';
import type { ReaderLog } from '../../../edge/reader/log.ts';
import { fakePcsc } from './helpers/fake-pcsc.ts';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));
const ATR = Buffer.from('3b888001000005e0b381a1007f', 'hex');
function recordingLog() {
  const lines: string[] = [];
  const log: ReaderLog = { debug() {}, warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) };
  return { log, lines };
}

function record(m: ReaderManager) {
  const seen: string[] = [];
  m.on('reader-added', (e) => seen.push(`reader-added ${e.reader}`));
  m.on('reader-removed', (e) => seen.push(`reader-removed ${e.reader}`));
  m.on('card-present', (e) => seen.push(`card-present ${e.reader} ${Buffer.from(e.atr).toString('hex')}`));
  m.on('card-removed', (e) => seen.push(`card-removed ${e.reader}`));
  m.on('error', (e) => seen.push(`error ${(e.error as MyKeyError).code ?? e.error.message}`));
  return seen;
}

test('reports readers and cards coming and going', async () => {
  const pcsc = fakePcsc();
  const m = new ReaderManager({ pcsc, log: recordingLog().log });
  const seen = record(m);
  m.start();
  const ctx = pcsc.contexts[0];
  const r = ctx.addReader('R1');
  r.status({ state: S.CHANGED | S.EMPTY });
  r.status({ state: S.CHANGED | S.PRESENT, atr: ATR });
  assert.ok(m.isCardPresent('R1'));
  r.status({ state: S.CHANGED | S.PRESENT | S.INUSE, atr: ATR });
  r.status({ state: S.CHANGED | S.EMPTY });
  r.status({ state: S.CHANGED | S.PRESENT | S.MUTE });
  r.emit('end');
  assert.equal(seen, ['reader-added R1', `card-present R1 ${ATR.toString('hex')}`, 'card-removed R1', 'error card_error', 'card-removed R1', 'reader-removed R1']);
  assert.equal(m.readers(), []);
  await m.stop();
});

test('a listener that throws is logged and the others still run', async () => {
  const pcsc = fakePcsc();
  const { log, lines } = recordingLog();
  const m = new ReaderManager({ pcsc, log });
  let second = 0;
  m.on('card-present', () => {
    throw new Error('listener bug');
  });
  m.on('card-present', async () => {
    second++;
    throw new Error('async listener bug');
  });
  m.start();
  const r = pcsc.contexts[0].addReader('R1');
  r.status({ state: S.PRESENT, atr: ATR });
  await tick();
  assert.is(second, 1);
  assert.is(lines.filter((l) => l.includes("'card-present' listener failed")).length, 2);
  await m.stop();
});

test('keeps trying to open PC/SC while pcscd is down, and reopens it when pcscd goes away', async () => {
  const pcsc = fakePcsc(2);
  const m = new ReaderManager({ pcsc, reconnectDelayMs: 5, maxReconnectDelayMs: 20, log: recordingLog().log });
  const seen = record(m);
  m.start();
  await tick(60);
  assert.is(pcsc.contexts.length, 1, 'opened on the third attempt');
  const first = pcsc.contexts[0];
  const r = first.addReader('R1');
  r.status({ state: S.PRESENT, atr: ATR });
  first.emit('error', new Error('SCardGetStatusChange error: Service was stopped.(0x8010001E)'));
  await tick(60);
  assert.is(first.closed, 1, 'the old context is closed');
  assert.is(r.closed, 1, 'its readers are closed');
  assert.is(pcsc.contexts.length, 2, 'a new context is opened');
  pcsc.contexts[1].addReader('R1');
  assert.equal(seen, [
    'error reader_unavailable',
    'error reader_unavailable',
    'reader-added R1',
    `card-present R1 ${ATR.toString('hex')}`,
    'error reader_unavailable',
    'card-removed R1',
    'reader-removed R1',
    'reader-added R1',
  ]);
  // Events of the old context are ignored from now on.
  r.status({ state: S.EMPTY });
  first.emit('reader', r);
  assert.is(seen.length, 8);
  await m.stop();
});

test('stop closes every native handle and cancels reopening', async () => {
  const pcsc = fakePcsc(1000);
  const m = new ReaderManager({ pcsc, reconnectDelayMs: 5, log: recordingLog().log });
  m.start();
  await tick(20);
  await m.stop();
  const attempts = pcsc.attempts;
  await tick(40);
  assert.is(pcsc.attempts, attempts, 'no attempts after stop');

  const ok = fakePcsc();
  const m2 = new ReaderManager({ pcsc: ok, log: recordingLog().log });
  m2.start();
  const r = ok.contexts[0].addReader('R1');
  await m2.stop();
  assert.is(ok.contexts[0].closed, 1);
  assert.is(r.closed, 1);
  ok.contexts[0].emit('error', new Error('late error after close')); // must not throw
});

test('connect gives a guarded session; the card leaving fails it with card_removed', async () => {
  const pcsc = fakePcsc();
  const m = new ReaderManager({ pcsc, log: recordingLog().log });
  m.start();
  const r = pcsc.contexts[0].addReader('R1');
  const early = await m.connect('R1').then(
    () => 'connected',
    (e: MyKeyError) => e.code,
  );
  assert.is(early, 'card_removed', 'no card yet');
  r.status({ state: S.PRESENT, atr: ATR });
  const s = await m.connect('R1');
  const resp = await s.transmit(Uint8Array.from(Buffer.from('00a4040c0ad392f0002601000000 01'.replace(/ /g, ''), 'hex')));
  assert.is(resp.sw, 0x9000);
  try {
    await s.transmit(Uint8Array.from(Buffer.from('00a4040c03d39210', 'hex')));
    assert.unreachable();
  } catch (e) {
    assert.is((e as MyKeyError).code, 'apdu_refused');
  }
  assert.is(r.transmitted.length, 1, 'the refused APDU never reached the reader');
  r.status({ state: S.EMPTY });
  try {
    await s.transmit(Uint8Array.from(Buffer.from('00a4020c02000a', 'hex')));
    assert.unreachable();
  } catch (e) {
    assert.is((e as MyKeyError).code, 'card_removed');
  }
  await s.close();
  try {
    await m.connect('R1');
    assert.unreachable();
  } catch (e) {
    assert.is((e as MyKeyError).code, 'card_removed');
  }
  try {
    await m.connect('nope');
    assert.unreachable();
  } catch (e) {
    assert.is((e as MyKeyError).code, 'reader_unavailable');
  }
  await m.stop();
});

test.run();
