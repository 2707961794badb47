// The card-access functions against the virtual card's APDU machine in this process (no PC/SC): the
// flows and their outcomes. The same flows through pcscd are in reader.serial.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate, verify as rsaVerify } from 'node:crypto';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard, type CardFaults } from '../../../provisioning/virtual-card/card.ts';
import { CardSession } from '../../../edge/reader/transport.ts';
import { readIdentity } from '../../../edge/reader/identity.ts';
import { pinTriesLeft, readAuthCaCert, signChallenge, verifyPin } from '../../../edge/reader/jpki.ts';
import { inProcessCard } from './helpers/fake-card.ts';
import { rejectsWith } from '../../helpers/assertions.ts';

const ca = await createTestCa({ label: 'reader-card-access' });
const withId = await makeCardFile({ ca, mykeyId: 'ABCDEFGH' });
const noApp = await makeCardFile({ ca, withMyKeyApp: false });
const unreserved = structuredClone(withId);
unreserved.mykey.idArea = { reserved: false, content: '' };
const unwritten = structuredClone(withId);
unwritten.mykey.idArea = { reserved: true, content: '' };
const badId = structuredClone(withId);
badId.mykey.idArea = { reserved: true, content: Buffer.from('abcdefgh').toString('hex') };

function session(file = withId, faults?: CardFaults) {
  const card = new VirtualCard(file, { faults });
  return { card, s: new CardSession(inProcessCard(card)) };
}

test('a card with a written MyKey ID yields it, without reading the certificate', async () => {
  const { card, s } = session();
  assert.equal(await readIdentity(s), { kind: 'mykey', mykeyId: 'ABCDEFGH' });
  assert.not.ok(
    card.trace.some((t) => t.apdu.includes('D3 92 F0')),
    'JPKI was not needed',
  );
});

test('a card without a usable MyKey ID yields its certificate, saying why', async () => {
  const cases: [string, typeof withId, string][] = [
    ['no MyKey application', noApp, 'absent'],
    ['area never reserved', unreserved, 'unreserved'],
    ['reserved but unwritten', unwritten, 'unwritten'],
    ['written but not a MyKey ID', badId, 'malformed'],
  ];
  for (const [name, file, area] of cases) {
    const { s } = session(file);
    const id = await readIdentity(s);
    assert.is(id.kind, 'cert', name);
    if (id.kind === 'cert') {
      assert.is(id.mykeyArea, area, name);
      assert.equal(Buffer.from(id.certDer), Buffer.from(file.jpki.authCert, 'base64'), name);
      assert.match(id.certSha256, /^[0-9a-f]{64}$/);
    }
  }
});

test('the auth CA certificate is read from EF 000B', async () => {
  const { s } = session();
  assert.equal(Buffer.from(await readAuthCaCert(s)), Buffer.from(ca.certDer));
});

test('a wrong PIN counts down, the right one resets, three wrong ones block', async () => {
  const { s } = session(noApp);
  assert.equal(await pinTriesLeft(s), { state: 'open', triesLeft: 3 });
  assert.equal(await verifyPin(s, '0000'), { ok: false, code: 'pin_wrong', triesLeft: 2 });
  assert.equal(await pinTriesLeft(s), { state: 'open', triesLeft: 2 });
  assert.equal(await verifyPin(s, '1234'), { ok: true });
  // JPKI answers the no-data VERIFY with 63Cx even after a good VERIFY (CARD.md), so the count is back to 3.
  assert.equal(await pinTriesLeft(s), { state: 'open', triesLeft: 3 });
  const { s: s2 } = session(noApp);
  assert.equal(await verifyPin(s2, '1111'), { ok: false, code: 'pin_wrong', triesLeft: 2 });
  assert.equal(await verifyPin(s2, '2222'), { ok: false, code: 'pin_wrong', triesLeft: 1 });
  assert.equal(await verifyPin(s2, '3333'), { ok: false, code: 'pin_blocked', triesLeft: 0 });
  assert.equal(await verifyPin(s2, '1234'), { ok: false, code: 'pin_blocked', triesLeft: 0 });
  assert.equal(await pinTriesLeft(s2), { state: 'blocked' });
});

test('a PIN that is not 4 digits never reaches the card', async () => {
  const { card, s } = session();
  for (const pin of ['123', '12345', 'abcd', '12 4', '']) await rejectsWith(verifyPin(s, pin), 'bad_request');
  assert.is(card.trace.length, 0);
});

test('the challenge signature verifies with the certificate public key', async () => {
  const { s } = session();
  const message = new TextEncoder().encode('hub challenge 7f3a');
  const sig = await signChallenge(s, '1234', message);
  assert.is(sig.length, 256);
  const key = new X509Certificate(Buffer.from(withId.jpki.authCert, 'base64')).publicKey;
  assert.ok(rsaVerify('sha256', message, key, sig));
  assert.not.ok(rsaVerify('sha256', new TextEncoder().encode('another'), key, sig));
});

test('signing with a wrong PIN throws pin_wrong with the tries left', async () => {
  const { s } = session();
  const e = await rejectsWith(signChallenge(s, '9999', new Uint8Array(8)), 'pin_wrong');
  assert.is(e.details?.triesLeft, 2);
});

test('garbage and short responses are card_response_malformed, and no identity comes out', async () => {
  for (const [name, faults] of [
    ['garbage at the first APDU', { garbageAfterApdus: 0 }],
    ['garbage mid-certificate', { garbageAfterApdus: 6 }],
    ['a byte short from the start', { wrongLengthAfterApdus: 0 }],
    ['a byte short mid-certificate', { wrongLengthAfterApdus: 6 }],
  ] as [string, CardFaults][]) {
    const { s } = session(noApp, faults);
    await rejectsWith(readIdentity(s), 'card_response_malformed').catch((e) => assert.unreachable(`${name}: ${e}`));
  }
});

test('a card taken away mid-read is card_removed', async () => {
  const { s } = session(noApp, { removeAfterApdus: 5 });
  await rejectsWith(readIdentity(s), 'card_removed');
});

test.run();
