import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MyKeyError } from '../../../shared/errors.ts';
import { createCsr, generateDeviceKey, importDeviceKey } from '../../../provisioning/enroll/device-key.ts';
import { checkNode, checkPcscd, checkReaders } from '../../../provisioning/enroll/prerequisites.ts';
import { renderUnit } from '../../../provisioning/enroll/systemd.ts';

test('the CSR is PKCS#10 with CN = edge id, ECDSA P-256, and its signature verifies in OpenSSL', async () => {
  const k = await generateDeviceKey();
  assert.ok(k.keyPem.startsWith('-----BEGIN PRIVATE KEY-----\n'));
  const csr = await createCsr('lib-counter-1', k.keyPair);
  const dir = mkdtempSync(join(tmpdir(), 'mykey-csr-'));
  try {
    writeFileSync(join(dir, 'req.pem'), csr);
    const text = execFileSync('openssl', ['req', '-in', join(dir, 'req.pem'), '-noout', '-verify', '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(text, /Subject: CN\s*=\s*lib-counter-1/);
    assert.match(text, /ASN1 OID: prime256v1/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a stored key is read back for a retry; an RSA key or garbage is refused', async () => {
  const k = await generateDeviceKey();
  const again = await importDeviceKey(k.keyPem);
  assert.match(await createCsr('edge-2', again), /BEGIN CERTIFICATE REQUEST/);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  for (const bad of [rsa, 'not a key']) {
    try {
      await importDeviceKey(bad);
      assert.unreachable();
    } catch (e) {
      assert.instance(e, MyKeyError);
      assert.is((e as MyKeyError).code, 'validation_failed');
    }
  }
  try {
    await createCsr('Not_An_Edge', k.keyPair);
    assert.unreachable();
  } catch (e) {
    assert.is((e as MyKeyError).code, 'validation_failed');
  }
});

test('prerequisites: Node.js 20 and later pass, older is refused with what to install', () => {
  assert.ok(checkNode('20.0.0').ok);
  assert.ok(checkNode('22.11.0').ok);
  const old = checkNode('18.19.1');
  assert.not.ok(old.ok);
  if (!old.ok) assert.match(old.fix, /Node\.js 20/);
});

test('prerequisites: pcscd is found by its socket; readers are filtered by the patterns', async () => {
  const env = { PCSCLITE_CSOCK_NAME: '/nonexistent/pcscd.comm' };
  const r = checkPcscd(env);
  // Without the socket only a running pcscd process passes.
  if (!r.ok) assert.match(r.fix, /apt-get install pcscd/);
  const list = async (p: readonly string[]) => (p.length ? [] : ['ACS ACR1252 00 00']);
  assert.ok((await checkReaders([], list)).ok);
  const none = await checkReaders(['Sony*'], list);
  assert.not.ok(none.ok);
  if (!none.ok) assert.match(none.fix, /--readers/);
});

test('the unit escapes % and refuses paths with spaces', () => {
  const unit = renderUnit({ edgeId: 'e1', configPath: '/var/lib/my%key/edge.json', stateDir: '/var/lib/my%key', node: '/usr/bin/node', repoRoot: '/opt/mykey' });
  assert.match(unit, /--config \/var\/lib\/my%%key\/edge\.json/);
  assert.match(unit, /ExecStart=\/usr\/bin\/node --import tsx \/opt\/mykey\/edge\/main\.ts/);
  // From the build the agent runs with plain node, from its package folder, as its own user.
  const built = renderUnit({ edgeId: 'e1', configPath: '/var/lib/mykey-edge/edge.json', stateDir: '/var/lib/mykey-edge', node: '/usr/bin/node', builtMain: '/opt/mykey-edge/main.js' });
  assert.match(built, /\nWorkingDirectory=\/opt\/mykey-edge\nExecStart=\/usr\/bin\/node \/opt\/mykey-edge\/main\.js --config \/var\/lib\/mykey-edge\/edge\.json\n/);
  assert.match(built, /\nUser=mykey-edge\n/);
  assert.not.match(built, /tsx/);
  assert.throws(() => renderUnit({ edgeId: 'e1', configPath: '/a b/edge.json', stateDir: '/a b', node: '/usr/bin/node', repoRoot: '/opt/mykey' }), /spaces or quotes/);
});

test.run();
