// `tsx hub/cli.ts device-ca rotate` as an operator runs it: a real process over a hub's data directory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDeviceCa, readRetiredCas } from '../../../hub/pki/device-ca.ts';

const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'hub/cli.ts', ...args], { encoding: 'utf8', timeout: 60_000 });

test('device-ca rotate makes a new CA, keeps the old certificate trusted, and moves the old key out for archiving', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-cli-ca-'));
  try {
    const caDir = join(dir, 'device-ca');
    const before = await openDeviceCa(caDir);
    await before.serverCredentials(); // something signed: the old CA must stay trusted for it
    const config = join(dir, 'hub.json');
    writeFileSync(config, JSON.stringify({ dataDir: dir }));
    const out = run(['device-ca', 'rotate', '--config', config]);
    assert.is(out.status, 0, out.stderr);
    const after = await openDeviceCa(caDir);
    const newFp = new X509Certificate(after.certPem).fingerprint256;
    assert.match(out.stdout, `new device CA: SHA-256 ${newFp}`);
    assert.match(out.stdout, new X509Certificate(before.certPem).fingerprint256);
    assert.match(out.stdout, 'archive it offline');
    const [retired] = readRetiredCas(caDir);
    assert.is(retired.certPem, before.certPem);
    assert.equal(after.trustedPems(), [after.certPem, before.certPem]);
    const keyFile = /moved to (\S+):/.exec(out.stdout)![1];
    assert.ok(existsSync(keyFile));
    assert.is(statSync(keyFile).mode & 0o777, 0o600);
    assert.is(statSync(join(caDir, 'ca-key.pem')).mode & 0o777, 0o600);
    assert.not.ok(readFileSync(join(caDir, 'retired.json'), 'utf8').includes('PRIVATE KEY'), 'the trust list never holds a key');
    // --leaked: the old CA is not trusted a moment longer.
    const leaked = run(['device-ca', 'rotate', '--leaked', '--config', config]);
    assert.is(leaked.status, 0, leaked.stderr);
    assert.match(leaked.stdout, 'NOT trusted');
    const last = await openDeviceCa(caDir);
    assert.equal(last.trustedPems(), [last.certPem]);
    // Anything else is refused with the usage.
    const bad = run(['device-ca', 'destroy', '--config', config]);
    assert.is(bad.status, 1);
    assert.match(bad.stderr, 'bad_request');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
