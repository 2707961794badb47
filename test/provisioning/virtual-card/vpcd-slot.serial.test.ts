// The virtual card through the real stack: VpcdSlot -> vpcd -> pcscd -> libpcsclite -> npm pcsclite,
// and OpenSC's own JPKI driver as an outside witness that the card behaves like a My Number Card.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { JPKI_AID } from '../../../shared/card.ts';
import { MyKeyError } from '../../../shared/errors.ts';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../../../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../../../provisioning/virtual-card/vpcd-slot.ts';
import { fromHex, toHex } from '../../../provisioning/virtual-card/apdu.ts';
import { PcscClient, requirePcscd, vpcdReaderName, withCard } from '../../helpers/pcsc.ts';
import { testIf } from '../../helpers/requires.ts';

const run = promisify(execFile);
await requirePcscd();
const ca = await createTestCa({ label: 'virtual-card-serial' });
const file = await makeCardFile({ ca, mykeyId: 'ABCDEFGH' });
const authCert = Buffer.from(file.jpki.authCert, 'base64');
const READER0 = vpcdReaderName(0);
const READER1 = vpcdReaderName(1);

const SELECT_JPKI = Uint8Array.from([0x00, 0xa4, 0x04, 0x0c, 0x0a, ...JPKI_AID]);
const swOf = (r: Uint8Array) => toHex(r.subarray(r.length - 2));

async function readCertificate(pcsc: PcscClient, reader: string, protocol: number): Promise<Buffer> {
  assert.is(swOf(await pcsc.transmit(reader, SELECT_JPKI, protocol)), '9000');
  assert.is(swOf(await pcsc.transmit(reader, fromHex('00a4020c02000a'), protocol)), '9000');
  const head = await pcsc.transmit(reader, fromHex('00b0000004'), protocol);
  const total = head.readUInt16BE(2) + 4;
  const parts: Buffer[] = [];
  for (let off = 0; off < total; off += 256) {
    const n = Math.min(256, total - off);
    const r = await pcsc.transmit(reader, Uint8Array.of(0x00, 0xb0, off >> 8, off & 0xff, n & 0xff), protocol);
    assert.is(swOf(r), '9000');
    parts.push(r.subarray(0, r.length - 2));
  }
  return Buffer.concat(parts);
}

test('pcscd and both vpcd slots are there', async () => {
  await requirePcscd();
  const pcsc = new PcscClient();
  try {
    await pcsc.reader(READER0);
    await pcsc.reader(READER1);
    console.log(`[vpcd] readers seen by pcsclite: ${pcsc.names().join(', ')}`);
  } finally {
    pcsc.close();
  }
});

test('a card inserted into slot 0 is read through pcsclite, and its removal is seen', async () => {
  const pcsc = new PcscClient();
  const card = new VirtualCard(file);
  const slot = new VpcdSlot({ slot: 0 });
  try {
    await pcsc.waitForCard(READER0, false);
    await slot.insert(card);
    assert.ok(slot.inserted);
    await pcsc.waitForCard(READER0, true);
    const protocol = await pcsc.connect(READER0);
    const cert = await readCertificate(pcsc, READER0, protocol);
    assert.equal(cert, authCert);
    await pcsc.disconnect(READER0);
    await slot.remove();
    assert.not.ok(slot.inserted);
    await pcsc.waitForCard(READER0, false);
  } finally {
    await slot.remove();
    pcsc.close();
  }
});

test('slot 1 is a second reader', async () => {
  const pcsc = new PcscClient();
  try {
    await withCard(file, { slot: 1, pcsc }, async ({ readerName }) => {
      assert.is(readerName, READER1);
      const protocol = await pcsc.connect(READER1);
      assert.is(swOf(await pcsc.transmit(READER1, SELECT_JPKI, protocol)), '9000');
      await pcsc.disconnect(READER1);
    });
    await pcsc.waitForCard(READER1, false);
  } finally {
    pcsc.close();
  }
});

async function roundTripMs(quickAck: boolean, n: number): Promise<number> {
  const pcsc = new PcscClient();
  try {
    return await withCard(file, { slot: 0, pcsc, vpcd: { quickAck } }, async () => {
      const protocol = await pcsc.connect(READER0);
      await pcsc.transmit(READER0, SELECT_JPKI, protocol);
      const apdu = fromHex('00a4020c02000a');
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await pcsc.transmit(READER0, apdu, protocol);
      const ms = (performance.now() - t0) / n;
      await pcsc.disconnect(READER0);
      return ms;
    });
  } finally {
    pcsc.close();
  }
}

test('measures the APDU round trip with and without TCP_QUICKACK (logged, not asserted)', async () => {
  const withQa = await roundTripMs(true, 100);
  const withoutQa = await roundTripMs(false, 20);
  console.log(`[vpcd] APDU round trip: ${withQa.toFixed(3)} ms with TCP_QUICKACK, ${withoutQa.toFixed(3)} ms without`);
});

test('opensc-tool talks to the card by reader name', async () => {
  await withCard(file, { slot: 0 }, async ({ readerName }) => {
    const { stdout } = await run('opensc-tool', ['-r', readerName, '-s', '00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01'], { timeout: 15000 });
    assert.match(stdout, /SW1=0x90, SW2=0x00/);
  });
});

test("OpenSC's JPKI driver lists the certificates and reads the user-authentication certificate", async () => {
  await withCard(file, { slot: 0 }, async () => {
    const list = await run('pkcs15-tool', ['-r', '0', '--list-certificates'], { timeout: 20000 });
    assert.match(list.stdout, /User Authentication Certificate\b/);
    assert.match(list.stdout, /Digital Signature Certificate CA/);
    const read = await run('pkcs15-tool', ['-r', '0', '--read-certificate', '01'], { timeout: 20000 });
    const pem = read.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)?.[0];
    assert.ok(pem, 'a PEM certificate');
    const der = Buffer.from(pem!.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    assert.equal(der, authCert);
  });
});

const PKCS11 = '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so';
testIf(existsSync(PKCS11), `no ${PKCS11}`)("OpenSC's PKCS#11 module signs with the card after the PIN, and openssl verifies it", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vcard-'));
  try {
    writeFileSync(join(dir, 'msg'), 'challenge from the hub');
    writeFileSync(join(dir, 'cert.der'), authCert);
    await withCard(file, { slot: 0 }, async () => {
      await run('pkcs11-tool', ['--module', PKCS11, '--slot-index', '0', '--login', '--pin', '1234', '--sign', '-m', 'SHA256-RSA-PKCS', '--id', '01', '-i', join(dir, 'msg'), '-o', join(dir, 'sig')], {
        timeout: 30000,
      });
    });
    assert.is(readFileSync(join(dir, 'sig')).length, 256);
    await run('openssl', ['x509', '-inform', 'der', '-in', join(dir, 'cert.der'), '-pubkey', '-noout', '-out', join(dir, 'pub.pem')]);
    const v = await run('openssl', ['dgst', '-sha256', '-verify', join(dir, 'pub.pem'), '-signature', join(dir, 'sig'), join(dir, 'msg')]);
    assert.match(v.stdout, /Verified OK/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A transmit that fails or brings back no status word: how a vanished card shows through pcsclite. */
async function transmitFails(pcsc: PcscClient, reader: string, apdu: Uint8Array, protocol: number): Promise<string> {
  try {
    const r = await pcsc.transmit(reader, apdu, protocol);
    // vpcd answers an APDU whose card went away with an empty response and no error (measured).
    if (r.length < 2) return `short response (${r.length} bytes)`;
    return `unexpected ${r.length}-byte response ending ${toHex(r.subarray(-2))}`;
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

test('a card that is taken away mid-session fails the transmit and empties the reader', async () => {
  const pcsc = new PcscClient();
  const removed: string[] = [];
  try {
    await withCard(file, { slot: 0, pcsc, card: { faults: { removeAfterApdus: 1 } }, vpcd: { onRemoved: (why) => removed.push(why) } }, async ({ slot }) => {
      const protocol = await pcsc.connect(READER0);
      assert.is(swOf(await pcsc.transmit(READER0, SELECT_JPKI, protocol)), '9000');
      const how = await transmitFails(pcsc, READER0, fromHex('00a4020c02000a'), protocol);
      console.log(`[vpcd] a removed card shows through pcsclite as: ${how}`);
      assert.match(how, /^(short|error)/, 'the second APDU fails');
      assert.equal(removed, ['fault']);
      assert.not.ok(slot.inserted);
      await pcsc.waitForCard(READER0, false);
    });
  } finally {
    pcsc.close();
  }
});

test('a connection dropped in the middle of a response fails the transmit', async () => {
  const pcsc = new PcscClient();
  try {
    await withCard(file, { slot: 0, pcsc, card: { faults: { removeAfterApdus: 2, dropConnectionMidResponse: true } }, vpcd: { onRemoved: () => undefined } }, async () => {
      const protocol = await pcsc.connect(READER0);
      assert.is(swOf(await pcsc.transmit(READER0, SELECT_JPKI, protocol)), '9000');
      assert.is(swOf(await pcsc.transmit(READER0, fromHex('00a4020c02000a'), protocol)), '9000');
      const how = await transmitFails(pcsc, READER0, fromHex('00b0000000'), protocol);
      // vpcd hands on whatever part of the frame arrived before the socket closed: a truncated
      // response whose last two bytes are not a status word (or, by bad luck, look like one).
      console.log(`[vpcd] a response cut in half shows through pcsclite as: ${how}`);
      assert.ok(how && !how.startsWith('unexpected 258-byte'), how);
      await pcsc.waitForCard(READER0, false);
    });
  } finally {
    pcsc.close();
  }
});

test('a slow card answers after its delay', async () => {
  const pcsc = new PcscClient();
  try {
    await withCard(file, { slot: 0, pcsc, card: { faults: { delayMs: 150 } } }, async () => {
      const protocol = await pcsc.connect(READER0);
      const t0 = performance.now();
      assert.is(swOf(await pcsc.transmit(READER0, SELECT_JPKI, protocol)), '9000');
      assert.ok(performance.now() - t0 >= 140);
      await pcsc.disconnect(READER0);
    });
  } finally {
    pcsc.close();
  }
});

test('garbage from the card reaches the application as it is', async () => {
  const pcsc = new PcscClient();
  try {
    await withCard(file, { slot: 0, pcsc, card: { faults: { garbageAfterApdus: 0 } } }, async () => {
      const protocol = await pcsc.connect(READER0);
      const r = await pcsc.transmit(READER0, SELECT_JPKI, protocol);
      assert.is(toHex(r), 'ff');
      await pcsc.disconnect(READER0);
    });
  } finally {
    pcsc.close();
  }
});

test('inserting where vpcd does not listen fails with reader_unavailable and says what to do', async () => {
  const probe = createServer();
  const port = await new Promise<number>((resolve) => probe.listen(0, '127.0.0.1', () => resolve((probe.address() as { port: number }).port)));
  await new Promise((r) => probe.close(r));
  const slot = new VpcdSlot({ port });
  try {
    await slot.insert(new VirtualCard(file));
    assert.unreachable('should not connect');
  } catch (err) {
    assert.instance(err, MyKeyError);
    assert.is((err as MyKeyError).code, 'reader_unavailable');
    assert.match((err as Error).message, /pcscd with vsmartcard-vpcd is not listening on 127\.0\.0\.1:\d+ - install pcscd vsmartcard-vpcd and start pcscd/);
  }
  assert.not.ok(slot.inserted);
});

// pcsclite's native context can outlive close() by a poll cycle; never let it hold the file open.
test.after(() => {
  setTimeout(() => process.exit(), 2000).unref();
});

test.run();
