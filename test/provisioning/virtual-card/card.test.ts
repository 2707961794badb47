import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, createHmac, verify, X509Certificate } from 'node:crypto';
import { JPKI_AID, MYKEY_AID, SHA256_DIGEST_INFO_PREFIX } from '../../../shared/card.ts';
import { MyKeyError } from '../../../shared/errors.ts';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile, type CardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../../../provisioning/virtual-card/card.ts';
import { fromHex, toHex } from '../../../provisioning/virtual-card/apdu.ts';

const ca = await createTestCa({ label: 'virtual-card-unit' });
const base = await makeCardFile({ ca, mykeyId: 'ABCDEFGH' });
const noArea = { ...structuredClone(base), mykey: { ...base.mykey, idArea: { reserved: false, content: '' as const } } };

const hex = (b: Uint8Array) => toHex(b);
/** Sends an APDU given as hex and returns [data hex, SW hex]. */
function send(card: VirtualCard, apdu: string | Uint8Array): [string, string] {
  const r = card.transmit(typeof apdu === 'string' ? fromHex(apdu) : apdu);
  return [hex(r.subarray(0, r.length - 2)), hex(r.subarray(r.length - 2))];
}
const sw = (card: VirtualCard, apdu: string | Uint8Array) => send(card, apdu)[1];
function fresh(file: CardFile = base, opts: ConstructorParameters<typeof VirtualCard>[1] = {}): VirtualCard {
  const card = new VirtualCard(file, opts);
  card.powerOn();
  return card;
}
const SELECT_JPKI = `00a4040c0a${hex(JPKI_AID)}`;
const SELECT_MYKEY = `00a4040c07${hex(MYKEY_AID)}`;
const selectEf = (fid: string) => `00a4020c02${fid}`;
const verifyPin = (pin: string) => `00200080${pin.length.toString(16).padStart(2, '0')}${Buffer.from(pin).toString('hex')}`;
function readAll(card: VirtualCard): Uint8Array {
  const [head, s] = send(card, '00b0000004');
  assert.is(s, '9000');
  const total = parseInt(head.slice(4, 8), 16) + 4;
  const out: number[] = [];
  for (let off = 0; off < total; off += 256) {
    const n = Math.min(256, total - off);
    const [d, s2] = send(card, `00b0${off.toString(16).padStart(4, '0')}${(n & 0xff).toString(16).padStart(2, '0')}`);
    assert.is(s2, '9000', `chunk at ${off}`);
    out.push(...Buffer.from(d, 'hex'));
  }
  return Uint8Array.from(out);
}
const digestInfo = (msg: Uint8Array) => Uint8Array.from([...SHA256_DIGEST_INFO_PREFIX, ...createHash('sha256').update(msg).digest()]);
const signApdu = (di: Uint8Array) => `802a0080${di.length.toString(16).padStart(2, '0')}${hex(di)}00`;

test('answers with the contactless ATR from the card file', () => {
  assert.is(hex(fresh().atr), '3b888001000005e0b381a1007f');
});

test('selects the JPKI application by its full name with P2 0C and with P2 00', () => {
  const card = fresh();
  assert.is(sw(card, SELECT_JPKI), '9000');
  assert.is(sw(card, `00a404000a${hex(JPKI_AID)}`), '9000');
  assert.is(sw(card, `00a404000a${hex(JPKI_AID)}00`), '9000', 'case 4 with Le');
});

test('refuses unknown applications, EFs, and bad SELECT parameters', () => {
  const card = fresh();
  assert.is(sw(card, '00a4040c05a000000003'), '6a82');
  assert.is(sw(card, selectEf('000a')), '6a82', 'no application selected yet');
  assert.is(sw(card, SELECT_JPKI), '9000');
  assert.is(sw(card, selectEf('0099')), '6a82');
  assert.is(sw(card, `00a4040d0a${hex(JPKI_AID)}`), '6a86');
  assert.is(sw(card, `00a4080c0a${hex(JPKI_AID)}`), '6a86');
  assert.is(sw(card, '00a4020c03000a00'), '6700');
  assert.is(sw(card, '00a4040c'), '6700');
});

test('reads the user-authentication certificate in 256-byte chunks exactly as stored', () => {
  const card = fresh();
  sw(card, SELECT_JPKI);
  assert.is(sw(card, selectEf('000a')), '9000');
  assert.equal(Buffer.from(readAll(card)), Buffer.from(base.jpki.authCert, 'base64'));
  sw(card, selectEf('000b'));
  assert.equal(Buffer.from(readAll(card)), Buffer.from(base.jpki.authCaCert, 'base64'));
  sw(card, selectEf('0002'));
  assert.equal(Buffer.from(readAll(card)), Buffer.from(base.jpki.signCaCert, 'base64'));
});

test('reading past the end returns what exists with 6282, and an offset beyond the file gives 6B00', () => {
  const card = fresh();
  sw(card, SELECT_JPKI);
  sw(card, selectEf('000a'));
  const size = Buffer.from(base.jpki.authCert, 'base64').length;
  const off = size - 10;
  const [d, s] = send(card, `00b0${off.toString(16).padStart(4, '0')}00`);
  assert.is(s, '6282');
  assert.is(d.length / 2, 10);
  assert.is(sw(card, `00b0${size.toString(16).padStart(4, '0')}01`), '6b00');
  const [whole, s2] = send(card, '00b0000000');
  assert.is(s2, '9000');
  assert.is(whole.length / 2, 256, 'Le 00 asks for 256 bytes');
});

test('READ BINARY checks its preconditions and form', () => {
  const card = fresh();
  sw(card, SELECT_JPKI);
  assert.is(sw(card, '00b0000004'), '6985', 'no EF selected');
  sw(card, selectEf('000a'));
  assert.is(sw(card, '00b08a0004'), '6a86', 'short EF identifiers are not offered');
  assert.is(sw(card, '00b00000'), '6700', 'case 1');
  assert.is(sw(card, '00b0000001ff'), '6700', 'case 3');
  sw(card, selectEf('0017'));
  assert.is(sw(card, '00b0000004'), '6981', 'a key is not a transparent EF');
  sw(card, selectEf('0018'));
  assert.is(sw(card, '00b0000004'), '6981', 'nor is a PIN');
});

test('the token EF holds JPKIAPICCTOKEN2 padded to 32 bytes', () => {
  const card = fresh();
  sw(card, SELECT_JPKI);
  sw(card, selectEf('0006'));
  const [d, s] = send(card, '00b0000020');
  assert.is(s, '9000');
  assert.is(Buffer.from(d, 'hex').toString('latin1'), 'JPKIAPICCTOKEN2'.padEnd(32, ' '));
});

test('the signing certificate is readable only after the signing PIN', () => {
  const card = fresh();
  sw(card, SELECT_JPKI);
  sw(card, selectEf('0001'));
  assert.is(sw(card, '00b0000004'), '6982');
  sw(card, selectEf('001b'));
  assert.is(sw(card, verifyPin('ABC123')), '9000');
  sw(card, selectEf('0001'));
  assert.equal(Buffer.from(readAll(card)), Buffer.from(base.jpki.signCert, 'base64'));
});

test('VERIFY without data reports the tries left without using one', () => {
  const card = fresh();
  sw(card, SELECT_JPKI);
  sw(card, selectEf('0018'));
  assert.is(sw(card, '00200080'), '63c3');
  assert.is(sw(card, '00200080'), '63c3');
  sw(card, selectEf('001b'));
  assert.is(sw(card, '00200080'), '63c5');
});

test('VERIFY needs a PIN EF selected and P1P2 0080', () => {
  const card = fresh();
  sw(card, SELECT_JPKI);
  assert.is(sw(card, verifyPin('1234')), '6985');
  sw(card, selectEf('000a'));
  assert.is(sw(card, verifyPin('1234')), '6985');
  sw(card, selectEf('0018'));
  assert.is(sw(card, '0020008104' + '31323334'), '6a86');
});

test('three wrong PINs block the user-authentication PIN, and the block survives in the card file', () => {
  const changes: CardFile[] = [];
  const card = fresh(base, { onChange: (f) => changes.push(f) });
  sw(card, SELECT_JPKI);
  sw(card, selectEf('0018'));
  assert.is(sw(card, verifyPin('0000')), '63c2');
  assert.is(sw(card, verifyPin('9999')), '63c1');
  assert.is(sw(card, verifyPin('12345')), '63c0', 'a wrong length is a wrong PIN too');
  assert.is(sw(card, verifyPin('1234')), '6984', 'blocked: even the right PIN is refused');
  assert.is(sw(card, '00200080'), '63c0');
  assert.is(changes.at(-1)?.jpki.authPin.triesLeft, 0);
  sw(card, selectEf('0017'));
  assert.is(sw(card, signApdu(digestInfo(new Uint8Array(8)))), '6983');

  const again = fresh(changes.at(-1));
  sw(again, SELECT_JPKI);
  sw(again, selectEf('0018'));
  assert.is(sw(again, verifyPin('1234')), '6984');
});

test('the right PIN restores the retry counter', () => {
  const changes: CardFile[] = [];
  const card = fresh(base, { onChange: (f) => changes.push(f) });
  sw(card, SELECT_JPKI);
  sw(card, selectEf('0018'));
  assert.is(sw(card, verifyPin('0000')), '63c2');
  assert.is(sw(card, verifyPin('1234')), '9000');
  assert.is(sw(card, '00200080'), '63c3');
  assert.is(changes.at(-1)?.jpki.authPin.triesLeft, 3);
});

test('SIGN returns a PKCS#1 v1.5 signature that verifies with the certificate public key', () => {
  const card = fresh();
  const message = new TextEncoder().encode('challenge from the hub');
  sw(card, SELECT_JPKI);
  sw(card, selectEf('0017'));
  assert.is(sw(card, signApdu(digestInfo(message))), '6982', 'not before VERIFY');
  sw(card, selectEf('0018'));
  assert.is(sw(card, verifyPin('1234')), '9000');
  sw(card, selectEf('0017'));
  const [sig, s] = send(card, signApdu(digestInfo(message)));
  assert.is(s, '9000');
  assert.is(sig.length / 2, 256);
  const cert = new X509Certificate(Buffer.from(base.jpki.authCert, 'base64'));
  assert.ok(verify('sha256', message, cert.publicKey, Buffer.from(sig, 'hex')));
  assert.not.ok(verify('sha256', new TextEncoder().encode('another'), cert.publicKey, Buffer.from(sig, 'hex')));
});

test('SIGN with the signing key needs the signing PIN and verifies with the signing certificate', () => {
  const card = fresh();
  const message = new TextEncoder().encode('a document');
  sw(card, SELECT_JPKI);
  sw(card, selectEf('0018'));
  sw(card, verifyPin('1234'));
  sw(card, selectEf('001a'));
  assert.is(sw(card, signApdu(digestInfo(message))), '6982', 'the auth PIN does not open the signing key');
  sw(card, selectEf('001b'));
  sw(card, verifyPin('ABC123'));
  sw(card, selectEf('001a'));
  const [sig, s] = send(card, signApdu(digestInfo(message)));
  assert.is(s, '9000');
  const cert = new X509Certificate(Buffer.from(base.jpki.signCert, 'base64'));
  assert.ok(verify('sha256', message, cert.publicKey, Buffer.from(sig, 'hex')));
});

test('SIGN checks its form and the selected key', () => {
  const card = fresh();
  sw(card, SELECT_JPKI);
  sw(card, selectEf('0018'));
  sw(card, verifyPin('1234'));
  assert.is(sw(card, signApdu(digestInfo(new Uint8Array(1)))), '6985', 'a PIN EF is not a key');
  sw(card, selectEf('0017'));
  assert.is(sw(card, `802a0081${'02'}0102${'00'}`), '6a86');
  assert.is(sw(card, `802a0080f6${'00'.repeat(246)}00`), '6700', 'too long for PKCS#1 type-1 padding');
  assert.is(sw(card, '802a0080'), '6700');
});

test('a verified PIN is forgotten on reset, power off and selecting another application', () => {
  const card = fresh();
  const di = digestInfo(new Uint8Array(4));
  const login = () => {
    sw(card, SELECT_JPKI);
    sw(card, selectEf('0018'));
    assert.is(sw(card, verifyPin('1234')), '9000');
    sw(card, selectEf('0017'));
    assert.is(sw(card, signApdu(di)), '9000');
  };
  login();
  card.reset();
  sw(card, SELECT_JPKI);
  sw(card, selectEf('0017'));
  assert.is(sw(card, signApdu(di)), '6982', 'after reset');
  login();
  card.powerOff();
  card.powerOn();
  sw(card, SELECT_JPKI);
  sw(card, selectEf('0017'));
  assert.is(sw(card, signApdu(di)), '6982', 'after power off');
  login();
  sw(card, SELECT_MYKEY);
  sw(card, SELECT_JPKI);
  sw(card, selectEf('0017'));
  assert.is(sw(card, signApdu(di)), '6982', 'after another application');
});

test('an unpowered card does not answer', () => {
  const card = new VirtualCard(base);
  assert.throws(
    () => card.transmit(fromHex(SELECT_JPKI)),
    (e: unknown) => e instanceof MyKeyError && e.code === 'card_error',
  );
});

test('unknown instructions, classes and malformed APDUs get 6D00, 6E00 and 6700', () => {
  const card = fresh();
  sw(card, SELECT_JPKI);
  assert.is(sw(card, '00ca000000'), '6d00');
  assert.is(sw(card, '80ca000000'), '6d00');
  assert.is(sw(card, '84b0000004'), '6e00');
  assert.is(sw(card, '00b0'), '6700');
  assert.is(sw(card, '00a4040c0ad392'), '6700', 'Lc larger than the data');
  assert.is(sw(card, '00a4040c000001d392'), '6700', 'extended length is not supported');
  assert.is(sw(card, '0084000008'), '6d00', 'GET CHALLENGE is a MyKey application command');
});

test('the MyKey ID reads without a PIN', () => {
  const card = fresh();
  assert.is(sw(card, SELECT_MYKEY), '9000');
  assert.is(sw(card, selectEf('0001')), '9000');
  const [d, s] = send(card, '00b0000008');
  assert.is(s, '9000');
  assert.is(Buffer.from(d, 'hex').toString('latin1'), 'ABCDEFGH');
});

test('an unreserved MyKey ID area is not found, and a reserved empty one reads as zeros', async () => {
  const card = fresh(noArea);
  sw(card, SELECT_MYKEY);
  assert.is(sw(card, selectEf('0001')), '6a82');
  const empty = fresh(await makeCardFile({ ca, mykeyId: '' }));
  sw(empty, SELECT_MYKEY);
  assert.is(sw(empty, selectEf('0001')), '9000');
  assert.equal(send(empty, '00b0000008'), ['00'.repeat(8), '9000']);
});

test('a card without the MyKey application does not know its AID', async () => {
  const card = fresh(await makeCardFile({ ca, withMyKeyApp: false }));
  assert.is(sw(card, SELECT_MYKEY), '6a82');
  assert.is(sw(card, SELECT_JPKI), '9000');
});

test('the counter reserves the area and writes the MyKey ID after EXTERNAL AUTHENTICATE', () => {
  const changes: CardFile[] = [];
  const card = fresh(noArea, { onChange: (f) => changes.push(f) });
  const key = Buffer.from(noArea.mykey.writeKey, 'hex');
  sw(card, SELECT_MYKEY);
  assert.is(sw(card, '00e000000200' + '01'), '6982', 'CREATE FILE needs authentication');
  const [challenge, s] = send(card, '0084000008');
  assert.is(s, '9000');
  assert.is(challenge.length, 16);
  const mac = createHmac('sha256', key).update(Buffer.from(challenge, 'hex')).digest('hex');
  assert.is(sw(card, `0082000120${mac}`), '9000');
  assert.is(sw(card, '00e0000002' + '0001'), '9000');
  assert.is(sw(card, '00e0000002' + '0001'), '6a89', 'already reserved');
  assert.is(sw(card, `00d6000008${Buffer.from('ZYXWVUTS').toString('hex')}`), '9000');
  assert.is(changes.at(-1)?.mykey.idArea.content, Buffer.from('ZYXWVUTS').toString('hex'));
  sw(card, selectEf('0001'));
  assert.is(Buffer.from(send(card, '00b0000008')[0], 'hex').toString(), 'ZYXWVUTS');
});

test('EXTERNAL AUTHENTICATE refuses a wrong MAC, a replayed challenge and a missing one', () => {
  const card = fresh();
  const key = Buffer.from(base.mykey.writeKey, 'hex');
  sw(card, SELECT_MYKEY);
  assert.is(sw(card, `0082000120${'00'.repeat(32)}`), '6985', 'no challenge asked');
  const [challenge] = send(card, '0084000008');
  assert.is(sw(card, `0082000120${'11'.repeat(32)}`), '6300');
  const mac = createHmac('sha256', key).update(Buffer.from(challenge, 'hex')).digest('hex');
  assert.is(sw(card, `0082000120${mac}`), '6985', 'the challenge was used up by the wrong attempt');
  assert.is(sw(card, `0082000110${'00'.repeat(16)}`), '6700');
  assert.is(sw(card, `0082000020${mac}`), '6a86');
  sw(card, selectEf('0001'));
  assert.is(sw(card, `00d6000008${'41'.repeat(8)}`), '6982', 'UPDATE BINARY needs authentication');
  assert.is(sw(card, '0084000010'), '6700', 'the challenge is 8 bytes');
});

test('UPDATE BINARY needs a current EF and stays inside the 8-byte area', () => {
  const card = fresh();
  const key = Buffer.from(base.mykey.writeKey, 'hex');
  sw(card, SELECT_MYKEY);
  const [challenge] = send(card, '0084000008');
  sw(card, `0082000120${createHmac('sha256', key).update(Buffer.from(challenge, 'hex')).digest('hex')}`);
  assert.is(sw(card, `00d6000008${'41'.repeat(8)}`), '6985', 'no EF selected');
  sw(card, selectEf('0001'));
  assert.is(sw(card, `00d6000009${'41'.repeat(9)}`), '6700');
  assert.is(sw(card, `00d6000801${'41'}`), '6b00');
  assert.is(sw(card, `00d6000402${'5a5a'}`), '9000');
  assert.is(Buffer.from(send(card, '00b0000008')[0], 'hex').toString(), 'ABCDZZGH');
});

test('the My Number applications answer to their full names and to name prefixes, with decoy data', () => {
  for (const aid of ['d3921000310001010408', 'd39210', 'd392100031000101']) {
    const card = fresh();
    assert.is(sw(card, `00a4040c${(aid.length / 2).toString(16).padStart(2, '0')}${aid}`), '9000', aid);
    assert.is(sw(card, selectEf('0001')), '9000');
    const [d] = send(card, '00b0000000');
    assert.ok(Buffer.from(d, 'hex').toString().includes(base.decoy.myNumber), aid);
  }
  for (const aid of ['d3921000310001010402', 'd3921000310001010401', 'd3921000310001010100']) {
    const card = fresh();
    assert.is(sw(card, `00a4040c0a${aid}`), '9000', aid);
  }
});

test('every exchange goes to the trace as hex', () => {
  const card = fresh();
  sw(card, SELECT_JPKI);
  sw(card, '00b0000004');
  assert.equal(card.trace, [
    { apdu: SELECT_JPKI, response: '9000' },
    { apdu: '00b0000004', response: '6985' },
  ]);
});

test('faults: removal after N APDUs, garbage, and short responses', () => {
  const gone = fresh(base, { faults: { removeAfterApdus: 1 } });
  assert.is(sw(gone, SELECT_JPKI), '9000');
  assert.throws(
    () => gone.transmit(fromHex(selectEf('000a'))),
    (e: unknown) => e instanceof MyKeyError && e.code === 'card_removed',
  );
  const drop = fresh(base, { faults: { dropConnectionMidResponse: true } });
  assert.is(drop.exchange(fromHex(SELECT_JPKI)).fault, 'drop-mid-response');

  const garbage = fresh(base, { faults: { garbageAfterApdus: 1 } });
  assert.is(sw(garbage, SELECT_JPKI), '9000');
  assert.is(hex(garbage.transmit(fromHex(SELECT_JPKI))), 'ff');

  const short = fresh(base, { faults: { wrongLengthAfterApdus: 2 } });
  sw(short, SELECT_JPKI);
  sw(short, selectEf('000a'));
  const [d, s] = send(short, '00b0000004');
  assert.is(s, '9000');
  assert.is(d.length / 2, 3);
});

test('GET CHALLENGE uses the injected random source', () => {
  const card = fresh(base, { random: (n) => new Uint8Array(n).fill(7) });
  sw(card, SELECT_MYKEY);
  assert.equal(send(card, '0084000008'), ['07'.repeat(8), '9000']);
});

test.run();
