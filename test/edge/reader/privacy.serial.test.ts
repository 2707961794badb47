// THE PRIVACY TEST. The My Number Card also holds the applications with the 12-digit My Number and the
// holder's personal facts. The virtual card holds them too, with a decoy number, and lets a SELECT by
// full name or DF-name prefix reach them exactly like a real card. This file runs every flow of the
// reader layer through the real stack with two traces (the reader layer's own hook and each virtual
// card's trace) and proves no APDU ever selected or read them; then it tries every forbidden SELECT
// on purpose and shows the guard refused each one before the card saw it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JPKI_AID, MYKEY_AID } from '../../../shared/card.ts';
import { MyKeyError } from '../../../shared/errors.ts';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../../../provisioning/virtual-card/card.ts';
import { fromHex, toHex } from '../../../edge/reader/apdu.ts';
import { readIdentity } from '../../../edge/reader/identity.ts';
import { pinTriesLeft, readAuthCaCert, signChallenge, verifyPin } from '../../../edge/reader/jpki.ts';
import { SELECTABLE_EFS } from '../../../edge/reader/guard.ts';
import { requirePcscd } from '../../helpers/pcsc.ts';
import { READER, Stack } from './helpers/stack.ts';

await requirePcscd();

const ca = await createTestCa({ label: 'reader-privacy' });
const withId = await makeCardFile({ ca, mykeyId: 'P4TRV8XN' });
const noApp = await makeCardFile({ ca, withMyKeyApp: false });
const unreserved = await makeCardFile({ ca, mykeyId: null });
const unwritten = await makeCardFile({ ca, mykeyId: '' });
const files = [withId, noApp, unreserved, unwritten];
const stack = new Stack();

// CARD.md: the applications that must never be selected.
const MY_NUMBER_AIDS = ['D3 92 10 00 31 00 01 01 04 08', 'D3 92 10 00 31 00 01 01 04 02', 'D3 92 10 00 31 00 01 01 04 01', 'D3 92 10 00 31 00 01 01 01 00'];
const ALLOWED_NAMES = [toHex(JPKI_AID), toHex(MYKEY_AID)];
const ascii = (s: string) => toHex(new TextEncoder().encode(s));
// What must never come back from the card: the decoy number and the holder's decoy facts.
const SECRETS = files.flatMap((f) => [f.decoy.myNumber, f.decoy.name, f.decoy.address].map(ascii));

test.before(() => stack.start());
test.after(() => stack.stop());

/** Checks one APDU (hex) against the privacy rules; returns the problem or undefined. */
function privacyProblem(apduText: string, responseText: string): string | undefined {
  // The two traces write hex differently (spaced upper case, plain lower case): compare canonical forms.
  const a = fromHex(apduText);
  const apduHex = toHex(a);
  const responseHex = toHex(fromHex(responseText));
  if (apduHex.replace(/ /g, '').includes('D39210')) return 'carries a My Number application AID prefix (D3 92 10)';
  if (a[1] === 0xa4) {
    if (a[0] !== 0x00) return 'SELECT on a channel other than the basic one';
    if (a[2] === 0x04) {
      const name = toHex(a.subarray(5, 5 + a[4]));
      if (!ALLOWED_NAMES.includes(name)) return `SELECT by name of ${name}`;
    } else if (a[2] === 0x02) {
      const fid = (a[5] << 8) | a[6];
      if (![...SELECTABLE_EFS.jpki, ...SELECTABLE_EFS.mykey].includes(fid)) return `SELECT EF ${fid.toString(16)}`;
    } else return `SELECT with P1 ${a[2].toString(16)}`;
  }
  if (a[1] === 0xb0 && a[2] & 0x80) return 'READ BINARY by short EF identifier';
  for (const s of SECRETS) if (responseHex.includes(s)) return 'a response carried the decoy My Number or personal facts';
  return undefined;
}

function assertClean(label: string) {
  for (const line of stack.trace) {
    const [apdu, resp] = line.split(' -> ');
    const p = privacyProblem(apdu, resp ?? '');
    assert.is(p, undefined, `${label}: reader trace ${apdu}: ${p}`);
  }
  const sent = new Set(stack.trace.map((l) => l.split(' -> ')[0]));
  for (const card of stack.cards) {
    for (const t of card.trace) {
      const p = privacyProblem(t.apdu, t.response);
      assert.is(p, undefined, `${label}: card trace ${t.apdu}: ${p}`);
      assert.ok(sent.has(toHex(fromHex(t.apdu))), `${label}: the card saw ${t.apdu}, which the reader layer never traced`);
    }
  }
}

test('the check is not vacuous: without the guard the virtual card hands out the decoy number, and the check sees it', () => {
  const card = new VirtualCard(withId);
  card.powerOn();
  const exchange = (apdu: string) => toHex(card.transmit(fromHex(apdu)));
  const selectResp = exchange(sel('04', '0C', 'D3 92 10')); // a prefix reaches 券面事項入力補助AP
  assert.is(selectResp, '90 00');
  assert.is(exchange(sel('02', '0C', '00 01')), '90 00');
  const read = exchange('00 B0 00 00 00');
  assert.ok(privacyProblem(sel('04', '0C', 'D3 92 10'), selectResp), 'the SELECT is flagged');
  assert.ok(privacyProblem('00 B0 00 00 00', read), 'the decoy number in the response is flagged');
});

test('every flow of the reader layer stays out of the My Number applications', async () => {
  // Touches: MyKey ID, and certificate mode for each reason.
  for (const f of files) {
    const r = await stack.touch(stack.card(f));
    assert.ok(r.ok, r.ok ? '' : r.event.message);
  }
  // Touches that fail: removal, drop, garbage, wrong length.
  for (const faults of [{ removeAfterApdus: 4 }, { removeAfterApdus: 7, dropConnectionMidResponse: true }, { garbageAfterApdus: 3 }, { wrongLengthAfterApdus: 3 }]) {
    const r = await stack.touch(stack.card(noApp, { faults }));
    assert.not.ok(r.ok);
  }
  // The counter flows: PIN tries, a wrong and a right PIN, signing, the CA certificate.
  await stack.pipeline.stop();
  await stack.insert(stack.card(structuredClone(withId)));
  const s = await stack.manager.connect(READER);
  try {
    await pinTriesLeft(s);
    await verifyPin(s, '0000');
    await signChallenge(s, '1234', new TextEncoder().encode('challenge'));
    await readAuthCaCert(s);
    await readIdentity(s);
  } finally {
    await s.close();
    await stack.remove();
    stack.pipeline.start();
  }
  assert.ok(stack.trace.length > 40, `${stack.trace.length} APDUs traced`);
  assert.ok(
    stack.cards.every((c) => c.trace.length > 0),
    'every card was spoken to',
  );
  assertClean('flows');
});

// Every way of reaching the My Number applications (or anything outside the allowlist) we can think of.
const sel = (p1: string, p2: string, data: string) => `00 A4 ${p1} ${p2} ${(data ? fromHex(data).length : 0).toString(16).padStart(2, '0')} ${data}`.trim();
const FORBIDDEN: [string, string][] = [
  ...MY_NUMBER_AIDS.map((aid): [string, string] => [`exact AID ${aid}`, sel('04', '0C', aid)]),
  ...MY_NUMBER_AIDS.map((aid): [string, string] => [`exact AID ${aid} with FCI`, sel('04', '00', aid)]),
  ...['D3', 'D3 92', 'D3 92 10', 'D3 92 10 00', 'D3 92 10 00 31 00 01 01', 'D3 92 10 00 31 00 01 01 04', 'D3 92 10 00 31 00 01 01 01'].map((p): [string, string] => [
    `DF-name prefix ${p}`,
    sel('04', '0C', p),
  ]),
  ...[1, 2, 3, 5, 8, 9, 11, 12, 16].map((n): [string, string] => [
    `P1=04 with a ${n}-byte name`,
    sel('04', '0C', toHex(Uint8Array.from({ length: n }, (_, i) => [0xd3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08][i] ?? 0))),
  ]),
  ['P1=04 with no name', '00 A4 04 0C'],
  ['P1=04 next occurrence', sel('04', '02', 'D3 92')],
  ['JPKI AID plus a byte', sel('04', '0C', toHex(JPKI_AID) + ' 00')],
  ['MF by file id (P1=00)', sel('00', '0C', '3F 00')],
  ['child DF by file id (P1=01)', sel('01', '0C', '00 01')],
  ['parent DF (P1=03)', '00 A4 03 0C'],
  ['path from the MF (P1=08)', sel('08', '0C', 'D3 92 10 00')],
  ['path from the current DF (P1=09)', sel('09', '0C', '00 01')],
  ['EF 0001 with no application selected', sel('02', '0C', '00 01')],
  ['exact AID on logical channel 1', '01' + sel('04', '0C', MY_NUMBER_AIDS[0]).slice(2)],
  ['exact AID with secure messaging', '0C' + sel('04', '0C', MY_NUMBER_AIDS[0]).slice(2)],
  ['MANAGE CHANNEL open', '00 70 00 00 01'],
  ['READ BINARY of short EF 1', '00 B0 81 00 00'],
  ['READ BINARY with nothing selected', '00 B0 00 00 00'],
  ['PC/SC GET DATA (UID)', 'FF CA 00 00 00'],
  ['GET DATA', '00 CA 00 00 00'],
];

test('each forbidden SELECT is refused with apdu_refused and the card never sees it', async () => {
  await stack.pipeline.stop();
  const card = stack.card(withId);
  await stack.insert(card);
  const s = await stack.manager.connect(READER);
  try {
    for (const [name, apdu] of FORBIDDEN) {
      const before = card.trace.length;
      try {
        await s.transmit(fromHex(apdu));
        assert.unreachable(`${name} was sent`);
      } catch (e) {
        assert.instance(e, MyKeyError, name);
        assert.is((e as MyKeyError).code, 'apdu_refused', `${name}: ${(e as Error).message}`);
        assert.match((e as Error).message, /rule [a-z-]+/, name);
      }
      assert.is(card.trace.length, before, `${name} reached the card`);
    }
    // With the JPKI application selected, the same attempts and EFs outside the allowlist still fail.
    await readAuthCaCert(s);
    for (const [name, apdu] of [...FORBIDDEN, ['signing certificate EF 0001', sel('02', '0C', '00 01')], ['signing key EF 001A', sel('02', '0C', '00 1A')]] as [string, string][]) {
      // Only forbidden with nothing selected; inside JPKI with EF 000B current it is a legitimate read.
      if (name === 'READ BINARY with nothing selected') continue;
      const before = card.trace.length;
      const code = await s.transmit(fromHex(apdu)).then(
        () => 'sent',
        (e: MyKeyError) => e.code,
      );
      assert.is(code, 'apdu_refused', `${name} inside JPKI`);
      assert.is(card.trace.length, before, `${name} inside JPKI reached the card`);
    }
    // The session is still good for what is allowed.
    assert.equal(await readIdentity(s), { kind: 'mykey', mykeyId: 'P4TRV8XN' });
  } finally {
    await s.close();
    await stack.remove();
    stack.pipeline.start();
  }
  assertClean('attacks');
});

test.run();
