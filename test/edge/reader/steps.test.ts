// A touch's read as one series of steps (CardSession.transmitSteps): the next APDU is chosen from the
// answer before it, and still passes the guard at its turn; the guard's quick path for READ BINARY
// gives exactly the verdicts of the full rules.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JPKI_AID, JPKI_EF, MYKEY_AID, MYKEY_EF } from '../../../shared/card.ts';
import { MyKeyError } from '../../../shared/errors.ts';
import { fromHex, parseApdu, type CommandApdu } from '../../../edge/reader/apdu.ts';
import { ApduGuard, checkApdu } from '../../../edge/reader/guard.ts';
import { CardSession } from '../../../edge/reader/transport.ts';
import { scriptedCard } from './helpers/fake-card.ts';
import { rejectsWith } from '../../helpers/assertions.ts';

const SELECT_JPKI = '00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01';
const SELECT_AUTH_CERT = '00 A4 02 0C 02 00 0A';
// 券面事項入力補助AP: holds the My Number (CARD.md). Never to be selected.
const SELECT_MYNUMBER_AP = '00 A4 04 0C 0A D3 92 10 00 31 00 01 01 04 08';

test('a step that chooses a forbidden SELECT after an answer is refused with apdu_refused before it reaches the card', async () => {
  const raw = scriptedCard(() => '90 00');
  const s = new CardSession(raw);
  const chosen = [SELECT_AUTH_CERT, SELECT_MYNUMBER_AP, '00 B0 00 00 04'];
  const err = await rejectsWith(
    s.transmitSteps(fromHex(SELECT_JPKI), (_r, i) => (i < chosen.length ? fromHex(chosen[i]) : undefined)),
    'apdu_refused',
  );
  assert.is(err.details?.rule, 'select-by-name');
  assert.equal(raw.sent, [SELECT_JPKI, SELECT_AUTH_CERT]);
  await s.close();
});

test('a step that throws ends the series with its error; nothing more is sent and the next command still goes', async () => {
  const raw = scriptedCard((h) => (h === SELECT_AUTH_CERT ? '6A 82' : '90 00'));
  const s = new CardSession(raw);
  await rejectsWith(
    s.transmitSteps(fromHex(SELECT_JPKI), (r, i) => {
      if (r.sw !== 0x9000) throw new MyKeyError('card_error', `step ${i}: card answered ${r.sw.toString(16)}`);
      return i === 0 ? fromHex(SELECT_AUTH_CERT) : fromHex('00 B0 00 00 04');
    }),
    'card_error',
  );
  assert.is((await s.transmit(fromHex('00 A4 02 0C 02 00 0B'))).sw, 0x9000);
  assert.equal(raw.sent, [SELECT_JPKI, SELECT_AUTH_CERT, '00 A4 02 0C 02 00 0B']);
  await s.close();
});

test('a series of steps resolves with every answer, in order', async () => {
  const raw = scriptedCard((h) => (h.startsWith('00 B0') ? '30 82 04 6D 90 00' : '90 00'));
  const s = new CardSession(raw);
  const answers = await s.transmitSteps(fromHex(SELECT_JPKI), (_r, i) => (i === 0 ? fromHex(SELECT_AUTH_CERT) : i === 1 ? fromHex('00 B0 00 00 04') : undefined));
  assert.equal(
    answers.map((a) => [a.sw, a.data.length]),
    [
      [0x9000, 0],
      [0x9000, 0],
      [0x9000, 4],
    ],
  );
  await s.close();
});

/** A guard whose selection is `app` and `ef`, reached through the card answers it watches. */
function guardIn(app: 'none' | 'jpki' | 'mykey', ef: number | undefined): ApduGuard {
  const g = new ApduGuard();
  const apdu = (data: Uint8Array): CommandApdu => ({ cla: 0, ins: 0xa4, p1: 4, p2: 0x0c, data, le: undefined });
  if (app !== 'none') g.observe('select-app', apdu(app === 'jpki' ? JPKI_AID : MYKEY_AID), 0x9000);
  if (ef !== undefined) g.observe('select-ef', apdu(Uint8Array.of(ef >> 8, ef & 0xff)), 0x9000);
  return g;
}

test('the guard decides every READ BINARY-like APDU exactly as its full rules do, in every selection state', () => {
  const states: ['none' | 'jpki' | 'mykey', number | undefined][] = [
    ['none', undefined],
    ['jpki', undefined],
    ...Object.values(JPKI_EF).map((ef): ['jpki', number] => ['jpki', ef]),
    ['mykey', undefined],
    ['mykey', MYKEY_EF.mykeyId],
  ];
  const apdus: Uint8Array[] = [];
  for (const cla of [0x00, 0x01, 0x0c, 0x80, 0xff])
    for (let p1 = 0; p1 < 256; p1 += 0x11)
      for (const le of [0x00, 0x04, 0xff]) {
        apdus.push(Uint8Array.of(cla, 0xb0, p1, 0x10, le));
        apdus.push(Uint8Array.of(cla, 0xb0, p1 | 0x80, 0x10, le));
      }
  apdus.push(fromHex('00 B0 00 00'), fromHex('00 B0 00 00 01 00'), fromHex('00 B0 00 00 01 00 04'), fromHex('00 B1 00 00 04'));
  for (const [app, ef] of states) {
    for (const bytes of apdus) {
      const g = guardIn(app, ef);
      const want = checkApdu(bytes, g.state);
      let got: { ok: true; kind: string; apdu: CommandApdu } | { ok: false; rule: string };
      try {
        got = { ok: true, ...g.check(bytes) };
      } catch (e) {
        assert.instance(e, MyKeyError);
        assert.is((e as MyKeyError).code, 'apdu_refused');
        got = { ok: false, rule: String((e as MyKeyError).details?.rule) };
      }
      const label = `${app}/${ef?.toString(16)} ${Buffer.from(bytes).toString('hex')}`;
      if (want.ok) {
        assert.ok(got.ok, label);
        if (got.ok) {
          assert.is(got.kind, want.kind, label);
          assert.equal(got.apdu, want.apdu, label);
        }
      } else {
        assert.equal(got, { ok: false, rule: want.rule }, label);
      }
    }
  }
  // The quick path keeps the parsed form of the APDU as the full parser gives it.
  const parsed = parseApdu(fromHex('00 B0 01 04 00'));
  assert.ok(parsed.ok);
  if (parsed.ok) assert.equal(guardIn('jpki', JPKI_EF.authCert).check(fromHex('00 B0 01 04 00')).apdu, parsed.apdu);
});

test.run();
