// The offline checks of a PIN-checked touch (#14), as a table: the certificate against the JPKI anchors
// and its validity, and the card's signature over the edge's challenge, with a replayed signature and
// one by another key told apart. The cards here are key files of the test CA; the serial test drives
// the same checks through pcscd and the virtual card.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPrivateKey, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { createTestCa, exportPkcs8, issueUserAuthCert, type IssuedCert } from '../../../provisioning/test-ca/ca.ts';
import { checkCertificate, makeChallenge, parseAnchors, PIN_TOUCH_CHALLENGE_BYTES, touchMessage, verifyTouchSignature } from '../../../edge/pintouch/index.ts';

const ca = await createTestCa({ label: 'pin-verify' });
const forger = await createTestCa({ label: 'forger', nameDer: ca.nameDer });
const keyOf = async (c: IssuedCert): Promise<KeyObject> => createPrivateKey({ key: Buffer.from(await exportPkcs8(c.keyPair.privateKey)), format: 'der', type: 'pkcs8' });
const alice = await issueUserAuthCert(ca);
const bob = await issueUserAuthCert(ca);
const forged = await issueUserAuthCert(forger, { serial: alice.serial });
const expired = await issueUserAuthCert(ca, { notBefore: new Date(Date.now() - 10 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
const aliceKey = await keyOf(alice);
const bobKey = await keyOf(bob);
const anchors = parseAnchors([Buffer.from(ca.certDer).toString('base64'), 'not a certificate']);
const now = Date.now();

test('a fresh challenge is 32 random bytes, and the card signs it behind the touch label', () => {
  const a = makeChallenge();
  assert.is(a.length, PIN_TOUCH_CHALLENGE_BYTES);
  assert.not.equal(a, makeChallenge());
  const m = touchMessage(a);
  assert.is(Buffer.from(m.subarray(0, 18)).toString('latin1'), 'MYKEY-PIN-TOUCH/1\0');
  assert.equal(m.subarray(18), a);
});

test('an anchor that does not parse is left out, the others kept', () => {
  assert.is(anchors.length, 1);
});

const certCases: [string, Uint8Array, number | undefined, string | undefined][] = [
  ['a certificate the JPKI CA issued, in validity', alice.certDer, now, undefined],
  ["a certificate made up with the holder's issuer Name and serial, signed by another key", forged.certDer, now, 'pin_touch_cert_untrusted'],
  ['an expired certificate', expired.certDer, now, 'pin_touch_cert_untrusted'],
  ["an expired certificate while the edge's clock is unsure (validity not judged)", expired.certDer, undefined, undefined],
  ['bytes that are no certificate', new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]), now, 'pin_touch_cert_untrusted'],
];
for (const [name, der, at, code] of certCases) {
  test(`certificate: ${name} -> ${code ?? 'accepted'}`, () => {
    const r = checkCertificate(der, anchors, at);
    assert.is(r.ok ? undefined : r.code, code);
  });
}

test('certificate: none is accepted without an anchor', () => {
  const r = checkCertificate(alice.certDer, [], now);
  assert.is(r.ok ? undefined : r.code, 'pin_touch_cert_untrusted');
});

const cert = new X509Certificate(alice.certDer);
const challenge = makeChallenge();
const old = makeChallenge();
const sigCases: [string, () => Uint8Array, string | undefined][] = [
  ["the card's key over this challenge", () => sign('sha256', touchMessage(challenge), aliceKey), undefined],
  ['another key over this challenge', () => sign('sha256', touchMessage(challenge), bobKey), 'pin_touch_signature_invalid'],
  ["the card's key over an old challenge (replayed)", () => sign('sha256', touchMessage(old), aliceKey), 'pin_touch_replayed'],
  ["the card's key over the bare challenge (no touch label: a signature made for something else)", () => sign('sha256', challenge, aliceKey), 'pin_touch_replayed'],
  ['256 zero bytes', () => new Uint8Array(256), 'pin_touch_signature_invalid'],
  ['a short signature', () => new Uint8Array(16).fill(1), 'pin_touch_signature_invalid'],
];
for (const [name, make, code] of sigCases) {
  test(`signature: ${name} -> ${code ?? 'verified'}`, () => {
    const r = verifyTouchSignature(cert, challenge, make());
    assert.is(r.ok ? undefined : r.code, code);
  });
}

test.run();
