// The edge's decision over a signed release, as a table: each refusal has its own code.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readlinkSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRelease, installBeside } from '../../../edge/update/install.ts';
import { createLayout, settleAtBoot, MAX_TRIAL_BOOTS } from '../../../edge/update/layout.ts';
import { generateReleaseKeys, manifestFor, signManifest, type ManifestOptions } from '../../../provisioning/release/sign.ts';
import { packFolder } from '../../../provisioning/release/tar.ts';
import { parseReleasePublicKey } from '../../../shared/release.ts';

const test = suite('edge update decisions');
const k = generateReleaseKeys();
const keys = [parseReleasePublicKey(k.publicKeyLine)];
const signed = (o: ManifestOptions) => signManifest(manifestFor(Buffer.from('b'), o), createPrivateKey(k.privateKeyPem));

test('checks a release against the key, the service and the running version', () => {
  const edge = { running: '1.2.0', serviceId: 'library' };
  const table: [string, ManifestOptions, string][] = [
    ['newer, for all', { version: '1.3.0' }, 'ok'],
    ['newer, for this service', { version: '1.3.0', services: ['museum', 'library'] }, 'ok'],
    ['for another service', { version: '1.3.0', services: ['museum'] }, 'release_wrong_service'],
    ['older, not marked', { version: '1.1.0' }, 'release_downgrade_refused'],
    ['older, marked as a downgrade', { version: '1.1.0', allowDowngrade: true }, 'ok'],
    ['updates only from 1.2.1', { version: '1.3.0', minVersion: '1.2.1' }, 'release_min_version'],
    ['updates from 1.2.0', { version: '1.3.0', minVersion: '1.2.0' }, 'ok'],
  ];
  for (const [name, o, want] of table) {
    const r = checkRelease(signed(o), keys, edge);
    assert.is(r.ok ? 'ok' : r.code, want, name);
  }
  assert.is((checkRelease({ ...signed({ version: '1.3.0' }), signature: 'AAAA' }, keys, edge) as { code: string }).code, 'release_signature_invalid');
});

test('a bundle without the agent entry is refused; a finished install is kept as it is', () => {
  const root = mkdtempSync(join(tmpdir(), 'mykey-inst-'));
  const src = mkdtempSync(join(tmpdir(), 'mykey-inst-src-'));
  writeFileSync(join(src, 'other.js'), '');
  const l = createLayout(root);
  mkdirSync(l.paths.releases, { recursive: true });
  const r = installBeside(l, '1.0.1', packFolder(src));
  assert.is(r.ok ? 'ok' : r.code, 'release_bundle_invalid');
  writeFileSync(join(src, 'main.js'), '');
  assert.ok(installBeside(l, '1.0.1', packFolder(src), 'main.js', '/opt/mykey-edge/node_modules').ok);
  assert.is(readlinkSync(join(l.releaseDir('1.0.1'), 'node_modules')), '/opt/mykey-edge/node_modules', 'the factory node_modules is linked in');
  rmSync(root, { recursive: true });
  rmSync(src, { recursive: true });
});

test('at boot, a trial version is counted and rolled back after the boot limit; a trial that never switched is dropped', () => {
  const root = mkdtempSync(join(tmpdir(), 'mykey-boot-'));
  const l = createLayout(root);
  mkdirSync(l.releaseDir('1.0.1'), { recursive: true });
  l.writeState({ format: 1, blocked: [], trial: { version: '1.0.1', previous: null, boots: 0, selfTestMs: 1000 } });
  assert.is(settleAtBoot(l).trial, undefined, 'not switched: dropped');
  l.writeState({ format: 1, blocked: [], trial: { version: '1.0.1', previous: null, boots: 0, selfTestMs: 1000 } });
  l.switchTo('1.0.1');
  for (let i = 1; i <= MAX_TRIAL_BOOTS; i++) assert.is(settleAtBoot(l).trial?.boots, i);
  const s = settleAtBoot(l);
  assert.is(s.last?.state, 'rolled_back');
  assert.is(s.last?.code, 'update_crashed');
  assert.equal(s.blocked, ['1.0.1']);
  assert.is(l.currentVersion(), null, 'back on the factory install');
  rmSync(root, { recursive: true });
});

test.run();
