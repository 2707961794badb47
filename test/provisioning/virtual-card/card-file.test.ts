import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { MyKeyError } from '../../../shared/errors.ts';
import { createTestCa, generateRsaKeyPair } from '../../../provisioning/test-ca/ca.ts';
import {
  DEFAULT_ATR_HEX,
  cardFileProblems,
  cardFilePersister,
  isValidMyNumber,
  loadCardFile,
  makeCardFile,
  myNumberCheckDigit,
  mykeyIdOf,
  saveCardFile,
} from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../../../provisioning/virtual-card/card.ts';
import { fromHex } from '../../../provisioning/virtual-card/apdu.ts';

const ca = await createTestCa({ label: 'card-file' });
const card = await makeCardFile({ ca, mykeyId: 'ABCDEFGH' });
const dir = mkdtempSync(join(tmpdir(), 'card-file-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('a new card carries the defaults: contactless ATR, PIN 1234 with 3 tries, signing PIN with 5, the token', () => {
  assert.is(card.version, 1);
  assert.is(card.atr, DEFAULT_ATR_HEX);
  assert.equal(card.jpki.authPin, { value: '1234', triesLeft: 3, maxTries: 3 });
  assert.equal(card.jpki.signPin, { value: 'ABC123', triesLeft: 5, maxTries: 5 });
  assert.is(card.jpki.token, 'JPKIAPICCTOKEN2');
  assert.is(mykeyIdOf(card), 'ABCDEFGH');
  assert.is(card.mykey.writeKey.length, 64);
  assert.ok(isValidMyNumber(card.decoy.myNumber));
});

test('the certificates chain to the test CA and carry the card keys', async () => {
  const auth = new X509Certificate(Buffer.from(card.jpki.authCert, 'base64'));
  const caCert = new X509Certificate(Buffer.from(card.jpki.authCaCert, 'base64'));
  assert.ok(auth.verify(caCert.publicKey));
  assert.ok(auth.checkIssued(caCert));
  const keyPair = await generateRsaKeyPair();
  const mine = await makeCardFile({ ca, keyPair });
  const spki = Buffer.from(await crypto.subtle.exportKey('spki', keyPair.publicKey));
  const certSpki = new X509Certificate(Buffer.from(mine.jpki.authCert, 'base64')).publicKey.export({ type: 'spki', format: 'der' });
  assert.equal(certSpki, spki);
});

test('the MyKey options map to the area: absent, reserved and empty, written; and no application', async () => {
  const none = await makeCardFile({ ca });
  assert.equal(none.mykey.idArea, { reserved: false, content: '' });
  const empty = await makeCardFile({ ca, mykeyId: '' });
  assert.equal(empty.mykey.idArea, { reserved: true, content: '' });
  assert.is(mykeyIdOf(empty), undefined);
  const noApp = await makeCardFile({ ca, withMyKeyApp: false });
  assert.is(noApp.mykey.present, false);
  await makeCardFile({ ca, mykeyId: 'ABCD-EFGH' }).then(
    () => assert.unreachable('a formatted id is not stored'),
    (err) => assert.is(err.code, 'mykey_id_malformed'),
  );
});

test('the My Number check digit follows the statutory weights', () => {
  // Worked example: 12345678901 -> weighted sum over P1..P11 from the right.
  assert.is(myNumberCheckDigit('12345678901'), 8);
  assert.ok(isValidMyNumber('123456789018'));
  assert.not.ok(isValidMyNumber('123456789017'));
  assert.is(myNumberCheckDigit('00000000000'), 0);
});

test('saves atomically and loads back the same card', async () => {
  const path = join(dir, 'card.json');
  await saveCardFile(path, card);
  assert.equal(await loadCardFile(path), card);
  assert.equal(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
  );
});

test('a PIN blocked on the card stays blocked after a save and a load', async () => {
  const path = join(dir, 'blocked.json');
  await saveCardFile(path, card);
  const persist = cardFilePersister(path);
  const vc = new VirtualCard(await loadCardFile(path), { onChange: persist.onChange });
  vc.powerOn();
  vc.transmit(fromHex('00a4040c0ad392f000260100000001'));
  vc.transmit(fromHex('00a4020c020018'));
  for (let i = 0; i < 3; i++) vc.transmit(fromHex('002000800430303030'));
  await persist.flush();
  const again = new VirtualCard(await loadCardFile(path));
  again.powerOn();
  again.transmit(fromHex('00a4040c0ad392f000260100000001'));
  again.transmit(fromHex('00a4020c020018'));
  assert.equal(Buffer.from(again.transmit(fromHex('002000800431323334'))), Buffer.from([0x69, 0x84]));
});

test('a broken card file is refused with every problem listed', async () => {
  const bad = structuredClone(card) as Record<string, any>;
  bad.version = 2;
  bad.jpki.authPin.value = '12a4';
  bad.jpki.authPin.triesLeft = 4;
  bad.decoy.myNumber = '123456789017';
  bad.extra = true;
  const problems = cardFileProblems(bad);
  assert.ok(
    problems.some((p) => p.startsWith('/version')),
    problems.join('\n'),
  );
  assert.ok(problems.some((p) => p.startsWith('/jpki/authPin/value')));
  assert.ok(problems.some((p) => p.startsWith('/jpki/authPin/triesLeft')));
  const path = join(dir, 'bad.json');
  writeFileSync(path, JSON.stringify(bad));
  await loadCardFile(path).then(
    () => assert.unreachable('should refuse'),
    (err) => {
      assert.instance(err, MyKeyError);
      assert.is(err.code, 'validation_failed');
      assert.match(err.message, /\/version/);
      assert.match(err.message, /\/jpki\/authPin\/value/);
    },
  );
  const checkDigitOnly = structuredClone(card);
  checkDigitOnly.decoy.myNumber = '123456789017';
  assert.equal(cardFileProblems(checkDigitOnly), ['/decoy/myNumber: check digit is wrong']);
});

test('a missing file, or one that is not JSON, gets a clear error', async () => {
  await loadCardFile(join(dir, 'nope.json')).then(
    () => assert.unreachable(),
    (err) => assert.is(err.code, 'not_found'),
  );
  const path = join(dir, 'garbage.json');
  writeFileSync(path, '{not json');
  await loadCardFile(path).then(
    () => assert.unreachable(),
    (err) => assert.is(err.code, 'validation_failed'),
  );
  assert.ok(readFileSync(path, 'utf8').length > 0);
});

test.run();
