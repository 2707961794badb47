import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JPKI_AID, MYKEY_AID, SHA256_DIGEST_INFO_PREFIX } from '../../../shared/card.ts';
import { MyKeyError } from '../../../shared/errors.ts';
import { fromHex, toHex } from '../../../edge/reader/apdu.ts';
import { ApduGuard, checkApdu, INITIAL_GUARD_STATE, nextGuardState, type GuardRule, type GuardState } from '../../../edge/reader/guard.ts';

const hex = (b: Uint8Array) => toHex(b);
const JPKI = hex(JPKI_AID);
const MYKEY = hex(MYKEY_AID);
const DIGEST_INFO = hex(SHA256_DIGEST_INFO_PREFIX) + ' ' + '11 '.repeat(32).trim();
const SHA1_DIGEST_INFO = '30 21 30 09 06 05 2B 0E 03 02 1A 05 00 04 14 ' + '22 '.repeat(20).trim();
const lc = (data: string) => (data.trim() ? fromHex(data).length : 0).toString(16).padStart(2, '0');
const select = (data: string, p1 = '04', p2 = '0C') => `00 A4 ${p1} ${p2} ${lc(data)} ${data}`;

// The applications that hold the My Number (CARD.md) and prefixes that would reach them.
const MY_NUMBER_AIDS = ['D3 92 10 00 31 00 01 01 04 08', 'D3 92 10 00 31 00 01 01 04 02', 'D3 92 10 00 31 00 01 01 04 01', 'D3 92 10 00 31 00 01 01 01 00'];
const PREFIXES = ['D3', 'D3 92', 'D3 92 10', 'D3 92 10 00 31', 'D3 92 10 00 31 00 01 01', 'D3 92 10 00 31 00 01 01 04', 'D3 92 F0', 'D3 92 F0 00 26 01 00 00 00', 'F0 4D 59', 'F0 4D 59 4B 45 59'];

const none: GuardState = INITIAL_GUARD_STATE;
const jpki = (ef?: number): GuardState => ({ app: 'jpki', ef });
const mykey = (ef?: number): GuardState => ({ app: 'mykey', ef });

const allowed: [string, string, GuardState, boolean?][] = [
  ['SELECT JPKI by exact AID', select(JPKI), none],
  ['SELECT MyKey by exact AID', select(MYKEY), none],
  ['SELECT JPKI asking FCI (P2 00)', select(JPKI, '04', '00'), none],
  ['SELECT JPKI from inside MyKey', select(JPKI), mykey(1)],
  ['SELECT EF 000A in JPKI', select('00 0A', '02'), jpki()],
  ['SELECT EF 000B in JPKI', select('00 0B', '02'), jpki()],
  ['SELECT EF 0002 in JPKI', select('00 02', '02'), jpki()],
  ['SELECT EF 0006 in JPKI', select('00 06', '02'), jpki()],
  ['SELECT EF 0017 in JPKI', select('00 17', '02'), jpki()],
  ['SELECT EF 0018 in JPKI', select('00 18', '02'), jpki(0x0a)],
  ['SELECT EF 0001 in MyKey', select('00 01', '02'), mykey()],
  ['READ BINARY 000A header', '00 B0 00 00 04', jpki(0x0a)],
  ['READ BINARY 000B at the highest offset', '00 B0 7F FF 01', jpki(0x0b)],
  ['READ BINARY 0006 token', '00 B0 00 00 20', jpki(0x06)],
  ['READ BINARY MyKey ID', '00 B0 00 00 08', mykey(1)],
  ['VERIFY tries query', '00 20 00 80', jpki(0x18)],
  ['VERIFY 4-digit PIN', '00 20 00 80 04 31 32 33 34', jpki(0x18)],
  ['SIGN SHA-256 DigestInfo', `80 2A 00 80 33 ${DIGEST_INFO} 00`, jpki(0x17)],
  ['GET RESPONSE', '00 C0 00 00 10', jpki(0x17)],
  ['writer GET CHALLENGE', '00 84 00 00 08', mykey(), true],
  ['writer EXTERNAL AUTHENTICATE', `00 82 00 01 20 ${'AA '.repeat(32).trim()}`, mykey(), true],
  ['writer CREATE FILE', '00 E0 00 00 02 00 01', mykey(), true],
  ['writer UPDATE BINARY', '00 D6 00 00 08 41 42 43 44 45 46 47 48', mykey(1), true],
];

const refused: [string, string, GuardState, GuardRule, boolean?][] = [
  ...MY_NUMBER_AIDS.map((aid): [string, string, GuardState, GuardRule] => [`SELECT My Number application ${aid}`, select(aid), none, 'select-by-name']),
  ...MY_NUMBER_AIDS.map((aid): [string, string, GuardState, GuardRule] => [`SELECT ${aid} from inside JPKI`, select(aid), jpki(0x0a), 'select-by-name']),
  ...PREFIXES.map((p): [string, string, GuardState, GuardRule] => [`SELECT by DF-name prefix ${p}`, select(p), none, 'select-by-name']),
  ['SELECT JPKI AID with a byte appended', select(JPKI + ' 00'), none, 'select-by-name'],
  ['SELECT by empty DF name', '00 A4 04 0C', none, 'select-by-name'],
  ['SELECT next occurrence (P2 02)', select(JPKI, '04', '02'), none, 'select-by-name'],
  ['SELECT P2 0C with Le', select(JPKI) + ' 00', none, 'select-by-name'],
  ['SELECT MF by file id (P1 00)', select('3F 00', '00'), none, 'select-mode'],
  ['SELECT child DF (P1 01)', select('D3 92', '01'), jpki(), 'select-mode'],
  ['SELECT parent (P1 03)', '00 A4 03 0C', jpki(), 'select-mode'],
  ['SELECT by path from MF (P1 08)', select('D3 92 00 01', '08'), none, 'select-mode'],
  ['SELECT by path from current DF (P1 09)', select('00 01', '09'), jpki(), 'select-mode'],
  ['SELECT EF before any application', select('00 0A', '02'), none, 'select-ef'],
  ['SELECT EF 0001 signing certificate', select('00 01', '02'), jpki(), 'select-ef'],
  ['SELECT EF 001A signing key', select('00 1A', '02'), jpki(), 'select-ef'],
  ['SELECT EF 001B signing PIN', select('00 1B', '02'), jpki(), 'select-ef'],
  ['SELECT EF 000A in MyKey', select('00 0A', '02'), mykey(), 'select-ef'],
  ['SELECT EF with a 1-byte id', select('0A', '02'), jpki(), 'select-ef'],
  ['SELECT on logical channel 1 (CLA 01)', '01' + select(JPKI).slice(2), none, 'class'],
  ['SELECT with secure messaging (CLA 0C)', '0C' + select(JPKI).slice(2), none, 'class'],
  ['command chaining (CLA 10)', '10' + select(JPKI).slice(2), none, 'class'],
  ['PC/SC pseudo-APDU GET UID (CLA FF)', 'FF CA 00 00 00', none, 'class'],
  ['MANAGE CHANNEL', '00 70 00 00 01', none, 'instruction'],
  ['READ BINARY by short EF id (P1 bit 8)', '00 B0 81 00 00', jpki(0x0a), 'read-binary'],
  ['READ BINARY with nothing selected', '00 B0 00 00 04', none, 'read-binary'],
  ['READ BINARY in JPKI without an EF', '00 B0 00 00 04', jpki(), 'read-binary'],
  ['READ BINARY of the auth key EF 0017', '00 B0 00 00 04', jpki(0x17), 'read-binary'],
  ['READ BINARY of the PIN EF 0018', '00 B0 00 00 04', jpki(0x18), 'read-binary'],
  ['READ BINARY without Le', '00 B0 00 00', jpki(0x0a), 'read-binary'],
  ['READ RECORD', '00 B2 01 04 00', jpki(0x0a), 'instruction'],
  ['VERIFY with the certificate EF selected', '00 20 00 80 04 31 32 33 34', jpki(0x0a), 'verify'],
  ['VERIFY with P2 81', '00 20 00 81 04 31 32 33 34', jpki(0x18), 'verify'],
  ['VERIFY with a 6-character PIN', '00 20 00 80 06 41 42 43 31 32 33', jpki(0x18), 'verify'],
  ['VERIFY with letters', '00 20 00 80 04 41 42 43 44', jpki(0x18), 'verify'],
  ['VERIFY in MyKey', '00 20 00 80', mykey(1), 'verify'],
  ['SIGN without EF 0017', `80 2A 00 80 33 ${DIGEST_INFO} 00`, jpki(0x18), 'sign'],
  ['SIGN with a SHA-1 DigestInfo', `80 2A 00 80 23 ${SHA1_DIGEST_INFO} 00`, jpki(0x17), 'sign'],
  ['SIGN over a bare digest', `80 2A 00 80 20 ${'11 '.repeat(32).trim()} 00`, jpki(0x17), 'sign'],
  ['SIGN without Le', `80 2A 00 80 33 ${DIGEST_INFO}`, jpki(0x17), 'sign'],
  ['SIGN with CLA 00', `00 2A 00 80 33 ${DIGEST_INFO} 00`, jpki(0x17), 'sign'],
  ['SIGN with P2 9A', `80 2A 00 9A 33 ${DIGEST_INFO} 00`, jpki(0x17), 'sign'],
  ['GET RESPONSE with P1', '00 C0 01 00 10', jpki(), 'get-response'],
  ['GET DATA', '00 CA 01 01 00', jpki(), 'instruction'],
  ['CHANGE REFERENCE DATA', '00 24 00 80 08 31 32 33 34 35 36 37 38', jpki(0x18), 'instruction'],
  ['RESET RETRY COUNTER', '00 2C 00 80', jpki(0x18), 'instruction'],
  ['INTERNAL AUTHENTICATE', '00 88 00 00 08 01 02 03 04 05 06 07 08 00', jpki(0x17), 'instruction'],
  ['GET CHALLENGE without the writer role', '00 84 00 00 08', mykey(), 'writer-only'],
  ['CREATE FILE without the writer role', '00 E0 00 00 02 00 01', mykey(), 'writer-only'],
  ['UPDATE BINARY without the writer role', '00 D6 00 00 01 41', mykey(1), 'writer-only'],
  ['EXTERNAL AUTHENTICATE without the writer role', '00 82 00 01 01 00', mykey(), 'writer-only'],
  ['writer GET CHALLENGE in JPKI', '00 84 00 00 08', jpki(), 'writer-command', true],
  ['writer UPDATE BINARY on a JPKI EF', '00 D6 00 00 01 41', jpki(0x0a), 'writer-command', true],
  ['writer UPDATE BINARY in MyKey without EF', '00 D6 00 00 01 41', mykey(), 'writer-command', true],
  ['writer UPDATE BINARY by short EF id', '00 D6 81 00 01 41', mykey(1), 'writer-command', true],
  ['writer CREATE FILE without FCP', '00 E0 00 00', mykey(), 'writer-command', true],
  ['writer SELECT of a My Number application', select(MY_NUMBER_AIDS[0]), mykey(), 'select-by-name', true],
  ['ERASE BINARY even for the writer', '00 0E 00 00', mykey(1), 'instruction', true],
  ['a 3-byte APDU', '00 A4 04', none, 'malformed'],
  ['Lc longer than the data', '00 A4 04 0C 0A D3 92', none, 'malformed'],
  ['extended length', '00 A4 04 0C 00 00 0A ' + JPKI, none, 'malformed'],
];

test('allows exactly the commands the platform needs', () => {
  for (const [name, apdu, state, writer] of allowed) {
    const v = checkApdu(fromHex(apdu), state, { writer: writer === true });
    assert.ok(v.ok, `${name}: ${v.ok ? '' : v.message}`);
  }
});

test('refuses everything else, naming the rule', () => {
  for (const [name, apdu, state, rule, writer] of refused) {
    const v = checkApdu(fromHex(apdu), state, { writer: writer === true });
    assert.not.ok(v.ok, `${name} should be refused`);
    if (!v.ok) assert.is(v.rule, rule, `${name}: ${v.message}`);
  }
});

test('every SELECT by name of anything but the two exact AIDs is refused, whatever its length', () => {
  // Every length 0..16 with D3 92 10 bytes, and every length of the JPKI AID's own prefixes.
  for (let n = 0; n <= 16; n++) {
    const name = Uint8Array.from({ length: n }, (_, i) => [0xd3, 0x92, 0x10][i] ?? i);
    const v = checkApdu(fromHex(select(toHex(name))), none);
    assert.not.ok(v.ok, `length ${n}`);
  }
  for (let n = 0; n < JPKI_AID.length; n++) assert.not.ok(checkApdu(fromHex(select(toHex(JPKI_AID.subarray(0, n)))), none).ok, `JPKI prefix ${n}`);
  for (let n = 0; n < MYKEY_AID.length; n++) assert.not.ok(checkApdu(fromHex(select(toHex(MYKEY_AID.subarray(0, n)))), none).ok, `MyKey prefix ${n}`);
});

/** A guard brought to `state` the way a session brings it there: through allowed SELECTs the card answered 90 00. */
function guardIn(state: GuardState, writer = false): ApduGuard {
  const g = new ApduGuard({ writer });
  const ok = (apdu: string) => {
    const { kind, apdu: a } = g.check(fromHex(apdu));
    g.observe(kind, a, 0x9000);
  };
  if (state.app !== 'none') ok(select(state.app === 'jpki' ? JPKI : MYKEY));
  if (state.ef !== undefined) ok(select(toHex(Uint8Array.of(state.ef >> 8, state.ef & 0xff)), '02'));
  assert.equal(g.state, state);
  return g;
}

test("ApduGuard.check, its quick paths included, gives checkApdu's verdict on every command listed here", () => {
  const states: GuardState[] = [none, jpki(), jpki(0x0a), jpki(0x0b), jpki(0x06), jpki(0x17), jpki(0x18), mykey(), mykey(1)];
  const commands = [
    ...allowed.map(([, apdu]) => apdu),
    ...refused.map(([, apdu]) => apdu),
    '00 B0 00 04 00',
    '00 B0 01 04 00',
    '00 B0 00 00 00 00',
    '00 B0 00 00 01 00',
    '00 A4 02 0C 03 00 0A 00',
    '00 A4 02 0C 02 00 0A 00',
  ];
  for (const state of states) {
    for (const writer of [false, true]) {
      for (const apdu of commands) {
        const bytes = fromHex(apdu);
        const want = checkApdu(bytes, state, { writer });
        const g = guardIn(state, writer);
        const label = `${apdu} in ${state.app}/${state.ef}${writer ? ' (writer)' : ''}`;
        assert.is(g.allowsPlainRead(bytes), want.ok && want.kind === 'read-binary' && bytes.length === 5, `${label}: allowsPlainRead`);
        if (want.ok) assert.equal(g.check(bytes), { kind: want.kind, apdu: want.apdu }, label);
        else
          assert.throws(
            () => g.check(bytes),
            (e: unknown) => e instanceof MyKeyError && e.code === 'apdu_refused' && (e.details as { rule?: string } | undefined)?.rule === want.rule,
            label,
          );
      }
    }
  }
});

test('the guard follows the selection from the card answers', () => {
  const g = new ApduGuard();
  const step = (apdu: string, status: number) => {
    const { kind, apdu: a } = g.check(fromHex(apdu));
    g.observe(kind, a, status);
  };
  step(select(JPKI), 0x9000);
  assert.equal(g.state, { app: 'jpki', ef: undefined });
  step(select('00 0A', '02'), 0x9000);
  assert.equal(g.state, { app: 'jpki', ef: 0x0a });
  step(select('00 06', '02'), 0x6a82);
  assert.equal(g.state, { app: 'jpki', ef: undefined }, 'a failed SELECT EF forgets the EF');
  step(select(MYKEY), 0x6a82);
  assert.equal(g.state, INITIAL_GUARD_STATE, 'a failed SELECT by name forgets the application');
  assert.throws(
    () => g.check(fromHex(select('00 0A', '02'))),
    (e: unknown) => e instanceof MyKeyError && e.code === 'apdu_refused',
  );
});

test('a refusal is MyKeyError apdu_refused with the rule in its message and details', () => {
  const g = new ApduGuard();
  try {
    g.check(fromHex(select(MY_NUMBER_AIDS[0])));
    assert.unreachable();
  } catch (e) {
    assert.instance(e, MyKeyError);
    assert.is((e as MyKeyError).code, 'apdu_refused');
    assert.match((e as MyKeyError).message, /select-by-name/);
    assert.is((e as MyKeyError).details?.rule, 'select-by-name');
  }
});

test('the writer role is off unless asked for', () => {
  assert.is(new ApduGuard().options.writer, false);
  assert.is(new ApduGuard({ writer: true }).options.writer, true);
});

test('nextGuardState is pure', () => {
  const s = jpki(0x0a);
  const p = checkApdu(fromHex(select('00 0B', '02')), s);
  assert.ok(p.ok);
  if (p.ok) {
    const n = nextGuardState(s, p.kind, p.apdu, 0x9000);
    assert.equal(n, jpki(0x0b));
    assert.equal(s, jpki(0x0a));
  }
});

test.run();
