// `cli.ts insert` on the real stack: the card appears in the reader, answers, and what happens to it
// (a wrong PIN) is in the card file after Ctrl-C.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { loadCardFile, makeCardFile, saveCardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { fromHex, toHex } from '../../../provisioning/virtual-card/apdu.ts';
import { PcscClient, requirePcscd, vpcdReaderName } from '../../helpers/pcsc.ts';

await requirePcscd();
const root = fileURLToPath(new URL('../../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'vcard-cli-serial-'));
test.after(() => {
  rmSync(dir, { recursive: true, force: true });
  setTimeout(() => process.exit(), 2000).unref();
});

test('insert puts the card into slot 1 until SIGINT, and saves the PIN counter it changed', async () => {
  const path = join(dir, 'card.json');
  await saveCardFile(path, await makeCardFile({ ca: await createTestCa({ label: 'cli-serial' }) }));
  const reader = vpcdReaderName(1);
  const pcsc = new PcscClient();
  await pcsc.waitForCard(reader, false);
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'provisioning/virtual-card/cli.ts'), 'insert', path, '--slot', '1'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    await pcsc.waitForCard(reader, true, 15_000);
    assert.match(out, /inserted .* into slot 1 \(reader "Virtual PCD 00 01"\)/);
    const protocol = await pcsc.connect(reader);
    const tx = async (hex: string) => toHex(await pcsc.transmit(reader, fromHex(hex), protocol));
    assert.is(await tx('00a4040c0ad392f000260100000001'), '9000');
    assert.is(await tx('00a4020c020018'), '9000');
    assert.is(await tx('002000800430303030'), '63c2');
    await pcsc.disconnect(reader);
    child.kill('SIGINT');
    assert.is(await exited, 0, out);
    assert.match(out, /removed after \d+ APDUs/);
    await pcsc.waitForCard(reader, false);
    assert.is((await loadCardFile(path)).jpki.authPin.triesLeft, 2);
  } finally {
    clearTimeout(killer);
    if (child.exitCode === null) child.kill('SIGKILL');
    pcsc.close();
  }
});

test.run();
