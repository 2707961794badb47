// The reader layer through the real stack: VirtualCard -> vpcd -> pcscd -> pcsclite -> ReaderManager.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate, verify as rsaVerify } from 'node:crypto';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { pinTriesLeft, readAuthCaCert, signChallenge, verifyPin } from '../../../edge/reader/jpki.ts';
import { requirePcscd } from '../../helpers/pcsc.ts';
import { READER, Stack } from './helpers/stack.ts';
import { codeOf } from '../../helpers/assertions.ts';

await requirePcscd(); // fails the file at once, saying what to install or start

const ca = await createTestCa({ label: 'reader-serial' });
const withId = await makeCardFile({ ca, mykeyId: 'K7M3QX9B' });
const noApp = await makeCardFile({ ca, withMyKeyApp: false });
const stack = new Stack();

test.before(() => stack.start());
test.after(() => stack.stop());

test('a touch of a card with the MyKey application yields its MyKey ID', async () => {
  const r = await stack.touch(stack.card(withId));
  assert.ok(r.ok, r.ok ? '' : r.event.message);
  if (r.ok) {
    assert.equal(r.event.identity, { kind: 'mykey', mykeyId: 'K7M3QX9B' });
    assert.is(r.event.reader, READER);
    assert.ok(r.event.ms > 0 && r.event.ms < 2000, `${r.event.ms} ms`);
  }
});

test('a touch of a card without the MyKey application yields its user-authentication certificate', async () => {
  const r = await stack.touch(stack.card(noApp));
  assert.ok(r.ok, r.ok ? '' : r.event.message);
  if (r.ok && r.event.identity.kind === 'cert') {
    assert.equal(Buffer.from(r.event.identity.certDer), Buffer.from(noApp.jpki.authCert, 'base64'));
    assert.is(r.event.identity.mykeyArea, 'absent');
  } else assert.unreachable('expected a certificate identity');
});

test('PIN: a wrong one counts down, the tries can be asked without using one, three wrong ones block', async () => {
  stack.pipeline.stop();
  const file = structuredClone(noApp);
  await stack.insert(stack.card(file, { onChange: (f) => Object.assign(file, f) }));
  const s = await stack.manager.connect(READER);
  try {
    assert.equal(await pinTriesLeft(s), { state: 'open', triesLeft: 3 });
    assert.equal(await verifyPin(s, '9999'), { ok: false, code: 'pin_wrong', triesLeft: 2 });
    assert.equal(await pinTriesLeft(s), { state: 'open', triesLeft: 2 });
    assert.equal(await verifyPin(s, '1234'), { ok: true });
    assert.equal(await verifyPin(s, '0001'), { ok: false, code: 'pin_wrong', triesLeft: 2 });
    assert.equal(await verifyPin(s, '0002'), { ok: false, code: 'pin_wrong', triesLeft: 1 });
    assert.equal(await verifyPin(s, '0003'), { ok: false, code: 'pin_blocked', triesLeft: 0 });
    assert.equal(await verifyPin(s, '1234'), { ok: false, code: 'pin_blocked', triesLeft: 0 });
    assert.equal(await pinTriesLeft(s), { state: 'blocked' });
    assert.is(await codeOf(signChallenge(s, '1234', new Uint8Array(4))), 'pin_blocked');
  } finally {
    await s.close();
    await stack.remove();
  }
  assert.is(file.jpki.authPin.triesLeft, 0, 'the card itself counted the tries');
});

test('the challenge signature verifies with the certificate public key, and the CA certificate reads', async () => {
  await stack.insert(stack.card(withId));
  const s = await stack.manager.connect(READER);
  try {
    const challenge = Uint8Array.from(Buffer.from('a1b2c3d4e5f60718293a4b5c6d7e8f90', 'hex'));
    const sig = await signChallenge(s, '1234', challenge);
    const key = new X509Certificate(Buffer.from(withId.jpki.authCert, 'base64')).publicKey;
    assert.is(sig.length, 256);
    assert.ok(rsaVerify('sha256', challenge, key, sig));
    assert.equal(Buffer.from(await readAuthCaCert(s)), Buffer.from(ca.certDer));
  } finally {
    await s.close();
    await stack.remove();
  }
});

test('a card taken away mid-read gives card_removed and no identity; the next touch works', async () => {
  stack.pipeline.start();
  for (const faults of [{ removeAfterApdus: 6 }, { removeAfterApdus: 1 }, { removeAfterApdus: 6, dropConnectionMidResponse: true }]) {
    const r = await stack.touch(stack.card(noApp, { faults }));
    assert.not.ok(r.ok, `${JSON.stringify(faults)} gave an identity`);
    if (!r.ok) assert.is(r.event.code, 'card_removed', `${JSON.stringify(faults)}: ${r.event.message}`);
    const next = await stack.touch(stack.card(withId));
    assert.ok(next.ok && next.event.identity.kind === 'mykey', 'the next touch works');
  }
});

test('garbage and wrong-length responses give card_response_malformed and no crash; the next touch works', async () => {
  for (const faults of [{ garbageAfterApdus: 0 }, { garbageAfterApdus: 5 }, { wrongLengthAfterApdus: 0 }, { wrongLengthAfterApdus: 5 }]) {
    const r = await stack.touch(stack.card(noApp, { faults }));
    assert.not.ok(r.ok, `${JSON.stringify(faults)} gave an identity: ${JSON.stringify(r.event)}`);
    if (!r.ok) assert.is(r.event.code, 'card_response_malformed', `${JSON.stringify(faults)}: ${r.event.message}`);
  }
  const next = await stack.touch(stack.card(noApp));
  assert.ok(next.ok && next.event.identity.kind === 'cert', 'the next touch works');
});

test('a slow card still gives its identity', async () => {
  const r = await stack.touch(stack.card(withId, { faults: { delayMs: 20 } }));
  assert.ok(r.ok && r.event.identity.kind === 'mykey', JSON.stringify(r.event));
});

test.run();
