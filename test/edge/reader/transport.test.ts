import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MyKeyError } from '../../../shared/errors.ts';
import { fromHex, toHex } from '../../../edge/reader/apdu.ts';
import { CardSession, mapPcscError, pcscCode } from '../../../edge/reader/transport.ts';
import { scriptedCard } from './helpers/fake-card.ts';
import { rejectsWith } from '../../helpers/assertions.ts';

const SELECT_JPKI = '00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01';
const SELECT_000A = '00 A4 02 0C 02 00 0A';

/** A card where JPKI and EF 000A select fine; `read` answers READ BINARY. */
function jpkiCard(read: (h: string) => string | Error | Promise<string>) {
  return scriptedCard((h) => (h === SELECT_JPKI || h === SELECT_000A ? '90 00' : read(h)));
}
async function onCert(s: CardSession) {
  await s.transmit(fromHex(SELECT_JPKI));
  await s.transmit(fromHex(SELECT_000A));
}

test('61xx is collected with GET RESPONSE into one response', async () => {
  const raw = jpkiCard((h) => (h === '00 B0 00 00 04' ? '30 82 61 02' : h === '00 C0 00 00 02' ? '04 6D 90 00' : '6D 00'));
  const s = new CardSession(raw);
  await onCert(s);
  const r = await s.transmit(fromHex('00 B0 00 00 04'));
  assert.is(toHex(r.data), '30 82 04 6D');
  assert.is(r.sw, 0x9000);
});

test('6Cxx is resent once with the exact Le', async () => {
  const raw = jpkiCard((h) => (h === '00 B0 00 00 10' ? '6C 04' : h === '00 B0 00 00 04' ? '30 82 04 6D 90 00' : '6D 00'));
  const s = new CardSession(raw);
  await onCert(s);
  const r = await s.transmit(fromHex('00 B0 00 00 10'));
  assert.is(toHex(r.data), '30 82 04 6D');
  assert.equal(raw.sent.slice(-2), ['00 B0 00 00 10', '00 B0 00 00 04']);
});

test('a card that keeps answering 61xx is malformed, not an endless loop', async () => {
  const raw = jpkiCard(() => '00 61 01');
  const s = new CardSession(raw);
  await onCert(s);
  await rejectsWith(s.transmit(fromHex('00 B0 00 00 01')), 'card_response_malformed');
  assert.ok(raw.sent.length < 40);
});

test('a refused APDU never reaches the card', async () => {
  const raw = scriptedCard(() => '90 00');
  const s = new CardSession(raw);
  await rejectsWith(s.transmit(fromHex('00 A4 04 0C 03 D3 92 10')), 'apdu_refused');
  await rejectsWith(s.transmit(fromHex('00 B0 81 00 00')), 'apdu_refused');
  assert.equal(raw.sent, []);
});

test('transmitStepsNow: a forbidden SELECT chosen from an answer is refused with apdu_refused before the card, and ends the series', async () => {
  const raw = jpkiCard(() => '6D 00');
  const s = new CardSession(raw);
  const outcome = await new Promise<{ err: unknown; answers?: unknown[] }>((resolve) =>
    s.transmitStepsNow(
      fromHex(SELECT_JPKI),
      (r, i) => (i === 0 && r.sw === 0x9000 ? fromHex('00 A4 04 0C 0A D3 92 10 00 31 00 01 01 04 08') : undefined),
      (err, answers) => resolve({ err, answers }),
    ),
  );
  assert.is((outcome.err as MyKeyError).code, 'apdu_refused');
  assert.is(outcome.answers, undefined);
  assert.equal(raw.sent, [SELECT_JPKI], 'the My Number application was never asked for');
  // A refused first APDU: done is called at once, and nothing reaches the card.
  let sync: unknown;
  s.transmitStepsNow(
    fromHex('00 A4 04 0C 02 D3 92'),
    () => undefined,
    (err) => (sync = err),
  );
  assert.is((sync as MyKeyError).code, 'apdu_refused');
  assert.equal(raw.sent, [SELECT_JPKI]);
});

test('a PC/SC "card removed" error becomes card_removed, and later commands fail the same way without the card', async () => {
  let n = 0;
  const raw = scriptedCard(() => (n++ === 0 ? '90 00' : new Error('SCardTransmit error: Card was removed.(0x80100069)')));
  const s = new CardSession(raw);
  await s.transmit(fromHex(SELECT_JPKI));
  await rejectsWith(s.transmit(fromHex(SELECT_000A)), 'card_removed');
  const before = raw.sent.length;
  await rejectsWith(s.transmit(fromHex(SELECT_JPKI)), 'card_removed');
  assert.is(raw.sent.length, before);
});

test('an exchange without an answer times out', async () => {
  const raw = scriptedCard(() => new Promise<string>(() => {}));
  const s = new CardSession(raw, { timeoutMs: 30 });
  await rejectsWith(s.transmit(fromHex(SELECT_JPKI)), 'timeout');
});

test('the trace hook sees every exchange, GET RESPONSE included, and cannot break it', async () => {
  const raw = jpkiCard((h) => (h === '00 B0 00 00 04' ? '30 82 61 02' : '04 6D 90 00'));
  const seen: string[] = [];
  const s = new CardSession(raw, {
    onApdu: (a, r) => {
      seen.push(`${toHex(a)} -> ${toHex(r)}`);
      throw new Error('a broken hook');
    },
  });
  await onCert(s);
  await s.transmit(fromHex('00 B0 00 00 04'));
  assert.equal(seen, [`${SELECT_JPKI} -> 90 00`, `${SELECT_000A} -> 90 00`, '00 B0 00 00 04 -> 30 82 61 02', '00 C0 00 00 02 -> 04 6D 90 00']);
});

test('run() turns a failure into card_removed when the reader then reports the card gone', async () => {
  const raw = jpkiCard(() => '');
  const gone = new CardSession(raw, { probeRemoval: async () => true });
  await onCert(gone);
  const e = await rejectsWith(
    gone.run(() => gone.transmit(fromHex('00 B0 00 00 04'))),
    'card_removed',
  );
  assert.is((e.cause as MyKeyError).code, 'card_response_malformed');
  const stays = new CardSession(raw, { probeRemoval: async () => false });
  await onCert(stays);
  await rejectsWith(
    stays.run(() => stays.transmit(fromHex('00 B0 00 00 04'))),
    'card_response_malformed',
  );
});

test('closing resets the card only when a PIN was presented', async () => {
  const raw = scriptedCard(() => '90 00');
  const a = new CardSession(raw);
  await a.transmit(fromHex(SELECT_JPKI));
  await a.close();
  const b = new CardSession(raw);
  await b.transmit(fromHex(SELECT_JPKI));
  await b.transmit(fromHex('00 A4 02 0C 02 00 18'));
  await b.transmit(fromHex('00 20 00 80 04 31 32 33 34'));
  await b.close();
  assert.equal(raw.closes, [{ reset: false }, { reset: true }]);
  await rejectsWith(b.transmit(fromHex(SELECT_JPKI)), 'card_error');
});

test('PC/SC return codes map to stable error codes', () => {
  const cases: [string, string][] = [
    ['SCardTransmit error: Card was removed.(0x80100069)', 'card_removed'],
    ['SCardConnect error: No smart card inserted.(0x8010000C)', 'card_removed'],
    ['SCardTransmit error: Card was reset.(0x80100068)', 'card_removed'],
    ['Card Reader not connected', 'card_removed'],
    ['SCardEstablishContext error: Service not available.(0x8010001D)', 'reader_unavailable'],
    ['SCardTransmit error: Transaction failed.(0x80100016)', 'card_error'],
    ['SCardConnect error: Sharing violation.(0x8010000B)', 'card_error'],
  ];
  for (const [msg, code] of cases) assert.is(mapPcscError(new Error(msg), 'x').code, code, msg);
  assert.is(pcscCode(new Error('x (0x80100069)')), 0x80100069);
  assert.is(pcscCode(new Error('no code')), undefined);
});

test('commands sent at once reach the card one at a time, in order, each through the guard', async () => {
  // The card answers only when the test releases it, so the second command is sent while the first
  // is still at the card: it must wait its turn, never overlap it.
  const release: (() => void)[] = [];
  let atCard = 0;
  let most = 0;
  const raw = scriptedCard(async () => {
    atCard++;
    most = Math.max(most, atCard);
    await new Promise<void>((r) => release.push(r));
    atCard--;
    return '90 00';
  });
  const s = new CardSession(raw);
  const first = s.transmit(fromHex(SELECT_JPKI));
  const second = s.transmit(fromHex(SELECT_000A));
  // A SELECT of a My Number application queued behind them is refused when its turn comes.
  const refused = s.transmit(fromHex('00 A4 04 0C 0A D3 92 10 00 31 00 01 01 04 08'));
  for (let i = 0; i < 50 && raw.sent.length < 2; i++) {
    await new Promise((r) => setImmediate(r));
    release.shift()?.();
  }
  assert.is((await first).sw, 0x9000);
  assert.is((await second).sw, 0x9000);
  await rejectsWith(refused, 'apdu_refused');
  assert.equal(raw.sent, [SELECT_JPKI, SELECT_000A]);
  assert.is(most, 1);
});

test.run();
