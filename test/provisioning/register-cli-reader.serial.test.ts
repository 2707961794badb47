// The register CLI with a card on a reader: the PIN comes from standard input (never argv), goes to
// the card and the MyKey ID is created at a real hub.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createTestCa } from '../../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../../provisioning/virtual-card/card-file.ts';
import { requirePcscd, vpcdReaderName, withCard } from '../helpers/pcsc.ts';
import { startTestHub, type TestHub } from '../helpers/hub.ts';

await requirePcscd();
const ca = await createTestCa({ label: 'register-cli-reader' });
const card = await makeCardFile({ ca, withMyKeyApp: false });
let h: TestHub;

test.before(async () => {
  h = await startTestHub({ ca });
  await h.hub.start();
});
test.after(() => h.close());

function cli(args: string[], stdin: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'provisioning/register-cli.ts', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.stdin.end(stdin);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

test('register --reader reads the PIN from standard input; a wrong one reports the tries left', async () => {
  const file = structuredClone(card);
  await withCard(file, { slot: 0, card: { onChange: (f) => Object.assign(file, f) } }, async () => {
    const wrong = await cli(['register', '--hub', h.hub.addresses.http!, '--reader', vpcdReaderName(0)], '9999\n');
    assert.is.not(wrong.code, 0);
    assert.match(wrong.out, /pin_wrong.*2 tries left/);
    const r = await cli(['register', '--hub', h.hub.addresses.http!, '--reader', vpcdReaderName(0)], '1234\n');
    assert.is(r.code, 0, r.out);
    assert.match(r.out, '(created)');
    assert.not.ok(r.out.includes('1234'), 'the PIN is not echoed');
  });
});

test.run();
