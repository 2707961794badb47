// The reader layer holds the card exclusively while a flow runs, through the real stack (VirtualCard
// -> vpcd -> pcscd -> pcsclite). A second, independent PC/SC client (its own pcsclite context) tries to
// connect and SELECT another application in the middle of PIN + signature, a MyKey read and a
// certificate read: pcscd refuses it (SCARD_E_SHARING_VIOLATION) and the flow completes correctly.
// After the flow the card is released; a card held by someone else gives reader_busy; and a process
// that starts and stops a ReaderManager twice exits on its own (no lingering native handle).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { X509Certificate, verify as rsaVerify } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { MyKeyError } from '../../../shared/errors.ts';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { selectByName, toHex } from '../../../edge/reader/apdu.ts';
import { readIdentity } from '../../../edge/reader/identity.ts';
import { readAuthCaCert, signChallenge } from '../../../edge/reader/jpki.ts';
import { PcscClient, requirePcscd } from '../../helpers/pcsc.ts';
import { READER, Stack } from './helpers/stack.ts';

await requirePcscd();

const ca = await createTestCa({ label: 'reader-exclusive' });
const withId = await makeCardFile({ ca, mykeyId: 'X8KQ2MZT' });
const noApp = await makeCardFile({ ca, withMyKeyApp: false });
const stack = new Stack();
const attacker = new PcscClient();
// An application the guard would never let the reader layer select: the attacker's interleaved SELECT.
const FOREIGN_SELECT = selectByName(Uint8Array.from([0xd3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08]));
const SHARING_VIOLATION = /0x8010000B/i;

test.before(async () => {
  await stack.start();
  stack.pipeline.stop(); // the flows below run by hand, each with the attacker in its middle
});
test.after(async () => {
  await attacker.disconnect(READER).catch(() => undefined);
  attacker.close();
  await stack.stop();
});

/** The attacker's attempt: connect (shared, as any other PC/SC program would) and SELECT a foreign application. */
async function attack(): Promise<string> {
  try {
    const protocol = await attacker.connect(READER);
    const resp = await attacker.transmit(READER, FOREIGN_SELECT, protocol);
    await attacker.disconnect(READER);
    return `interleaved: ${toHex(resp)}`;
  } catch (err) {
    return String(err instanceof Error ? err.message : err);
  }
}

/** Runs `flow` on a session whose trace hook fires the attack after the `after`-th APDU, and waits for both. */
async function flowUnderAttack<T>(after: number, flow: (s: Awaited<ReturnType<Stack['manager']['connect']>>) => Promise<T>): Promise<{ value: T; attack: string }> {
  let seen = 0;
  let attempt: Promise<string> | undefined;
  let release: () => void = () => undefined;
  const attacked = new Promise<void>((r) => (release = r));
  const s = await stack.manager.connect(READER, {
    onApdu: () => {
      if (++seen === after) {
        attempt = attack();
        void attempt.then(() => release());
      }
    },
  });
  try {
    const first = await flow(s);
    await attacked; // the attempt was answered while the session still held the card
    return { value: first, attack: await attempt! };
  } finally {
    await s.close();
  }
}

test('PIN + signature: a second client cannot connect or SELECT in the middle; the signature verifies', async () => {
  await stack.insert(stack.card(noApp));
  try {
    const challenge = Uint8Array.from(Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex'));
    // After SELECT JPKI and SELECT of the key file (2 APDUs): the VERIFY and the signature are still to come.
    const r = await flowUnderAttack(2, (s) => signChallenge(s, '1234', challenge));
    assert.match(r.attack, SHARING_VIOLATION, r.attack);
    const key = new X509Certificate(Buffer.from(noApp.jpki.authCert, 'base64')).publicKey;
    assert.ok(rsaVerify('sha256', challenge, key, Buffer.from(r.value)), 'the signature verifies');
  } finally {
    await stack.remove();
  }
});

test('MyKey read and certificate read: the attacker is refused and the identity is right', async () => {
  await stack.insert(stack.card(withId));
  try {
    const r = await flowUnderAttack(1, (s) => readIdentity(s));
    assert.match(r.attack, SHARING_VIOLATION, r.attack);
    assert.equal(r.value, { kind: 'mykey', mykeyId: 'X8KQ2MZT' });
  } finally {
    await stack.remove();
  }
  await stack.insert(stack.card(noApp));
  try {
    const r = await flowUnderAttack(3, (s) => readIdentity(s));
    assert.match(r.attack, SHARING_VIOLATION, r.attack);
    assert.ok(r.value.kind === 'cert' && Buffer.from(r.value.certDer).equals(Buffer.from(noApp.jpki.authCert, 'base64')));
    const ca2 = await flowUnderAttack(1, (s) => readAuthCaCert(s));
    assert.match(ca2.attack, SHARING_VIOLATION, ca2.attack);
    assert.equal(Buffer.from(ca2.value), Buffer.from(ca.certDer));
  } finally {
    await stack.remove();
  }
});

test('the card is released when the flow ends: another program may use it then', async () => {
  await stack.insert(stack.card(withId));
  try {
    const s = await stack.manager.connect(READER);
    await readIdentity(s);
    await s.close();
    const after = await attack();
    assert.match(after, /^interleaved: /, after);
  } finally {
    await attacker.disconnect(READER).catch(() => undefined);
    await stack.remove();
  }
});

test('a card another program holds gives reader_busy, and the reader works once it lets go', async () => {
  await stack.insert(stack.card(withId));
  try {
    await attacker.connect(READER);
    let code = 'resolved';
    try {
      const s = await stack.manager.connect(READER);
      await s.close();
    } catch (e) {
      code = e instanceof MyKeyError ? e.code : String(e);
    }
    assert.is(code, 'reader_busy');
    await attacker.disconnect(READER);
    const s = await stack.manager.connect(READER);
    try {
      assert.equal(await readIdentity(s), { kind: 'mykey', mykeyId: 'X8KQ2MZT' });
    } finally {
      await s.close();
    }
  } finally {
    await stack.remove();
  }
});

test('a process that starts and stops a ReaderManager twice, with a card read in between, exits on its own', async () => {
  await stack.insert(stack.card(withId));
  try {
    const script = fileURLToPath(new URL('./helpers/start-stop-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, READER], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('still running 20 s later: a native handle lingers');
      }, 20_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c ?? -1);
      });
    });
    assert.is(code, 0, out);
    assert.match(out, /read X8KQ2MZT twice/);
  } finally {
    await stack.remove();
  }
});

test.run();
