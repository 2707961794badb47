// The operator's commands for linkage files: the test CA renews a certificate and writes the signed
// file (provisioning/test-ca/cli.ts renew --linkage), and hub/cli.ts linkage-import applies it to the
// hub's data directory, reports it, and refuses a file changed after signing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportPkcs8, toPem } from '../../../provisioning/test-ca/ca.ts';
import { main as caCli } from '../../../provisioning/test-ca/cli.ts';
import { initCaDir } from '../../../provisioning/test-ca/store.ts';
import { startTestHub } from '../../helpers/hub.ts';

test('the test CA renews with a signed linkage file and the hub command carries the MyKey ID over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-linkage-cli-'));
  const out: string[] = [];
  const io = { out: (s: string) => void out.push(s), err: (s: string) => void out.push(s) };
  try {
    const caDir = await initCaDir(join(dir, 'ca'));
    assert.is(await caCli(['linkage-signer', join(dir, 'signer.pem')], io), 0, out.join(''));
    const h = await startTestHub({ ca: caDir.ca, overrides: { jpki: { linkageSigners: [join(dir, 'signer.pem.pub')] } } });
    const old = await caDir.issue();
    writeFileSync(join(dir, 'old.pem'), toPem(old.certDer, 'CERTIFICATE'));
    writeFileSync(join(dir, 'old.key'), toPem(await exportPkcs8(old.keyPair.privateKey), 'PRIVATE KEY'));
    const reg = await h.request('/v1/mykey-ids', { proof: await h.proof(old) });
    assert.is(reg.status, 201);
    const { mykeyId } = (await reg.json()) as { mykeyId: string };
    await h.hub.stop();

    const file = join(dir, 'renewals.jsonl');
    const renew = await caCli(['renew', caDir.dir, join(dir, 'old.pem'), '--old-key', join(dir, 'old.key'), '--linkage', file, '--signer-key', join(dir, 'signer.pem')], io);
    assert.is(renew, 0, out.join(''));
    const newSerial = /as ([0-9a-f]+) \(old revoked as superseded\)/.exec(out.join(''))![1];
    assert.ok(caDir.revoked().some((r) => r.reason === 'superseded'));

    const config = join(dir, 'hub.json');
    writeFileSync(config, JSON.stringify({ dataDir: h.dir, jpki: { trustAnchors: h.hub.config.jpki.trustAnchors, linkageSigners: [join(dir, 'signer.pem.pub')] } }));
    const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'hub/cli.ts', ...args, '--config', config], { encoding: 'utf8', timeout: 120_000 });
    const dry = cli('linkage-import', file, `${file}.sig`, '--dry-run');
    assert.is(dry.status, 0, dry.stderr + dry.stdout);
    assert.match(dry.stdout, /DRY RUN/);
    assert.match(dry.stdout, /records 1, carried 1/);
    const first = cli('linkage-import', file, `${file}.sig`);
    assert.is(first.status, 0, first.stderr + first.stdout);
    assert.match(first.stdout, /records 1, carried 1 \(of which resumed 0\), already carried 0, refused 0/);
    const again = cli('linkage-import', file, `${file}.sig`);
    assert.is(again.status, 0, again.stderr + again.stdout);
    assert.match(again.stdout, /carried 0 \(of which resumed 0\), already carried 1/);

    // One byte changed after signing: refused whole with its code.
    const bytes = readFileSync(file);
    bytes[bytes.length - 3] ^= 0x01;
    writeFileSync(join(dir, 'tampered.jsonl'), bytes);
    const bad = cli('linkage-import', join(dir, 'tampered.jsonl'), `${file}.sig`);
    assert.is(bad.status, 1);
    assert.match(bad.stderr, /linkage_signature_invalid/);
    const list = cli('linkage-imports');
    assert.match(list.stdout, /FAIL .*linkage_signature_invalid/);

    const { openDatabase } = await import('../../../hub/store/db.ts');
    const db = openDatabase(join(h.dir, 'hub.sqlite'));
    assert.is(db.prepare("SELECT serial_hex FROM cert_bindings WHERE mykey_id = ? AND state = 'current'").pluck().get(mykeyId), newSerial);
    assert.is(db.prepare('SELECT COUNT(*) FROM cert_linkages').pluck().get(), 1);
    db.close();
    rmSync(h.dir, { recursive: true, force: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
