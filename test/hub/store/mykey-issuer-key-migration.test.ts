// Migration 2: bindings made before the issuer key id was recorded get it filled in when the hub
// starts, where exactly one trust anchor has their issuer name; under a name several anchors share
// (a key rollover) they stay unknown, match only their own certificate, and are matched against the
// CRLs of every key of that name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, rollOverTestCa, toPem } from '../../../provisioning/test-ca/ca.ts';
import { writeCrl } from '../../../provisioning/test-ca/crl-writer.ts';
import { issuerKeyOf } from '../../../shared/cert-identity.ts';
import { silentLogger } from '../../../shared/log.ts';
import { loadHubConfig } from '../../../hub/config.ts';
import { createHub } from '../../../hub/main.ts';
import { MIGRATIONS } from '../../../hub/store/migrations.ts';

test('bindings from before migration 2 get their issuer key id where the name has one anchor, and stay apart where it has two', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-mig2-'));
  try {
    const solo = await createTestCa({ label: 'solo', ouSuffix: ' solo' });
    const old = await createTestCa({ label: 'old' });
    const next = await rollOverTestCa(old, { label: 'next' });
    // A database as the previous version left it: every migration but 2 (and 3, which builds on it).
    const path = join(dir, 'hub.sqlite');
    const raw = new Database(path);
    raw.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    for (const m of MIGRATIONS.filter((x) => x.version !== 2 && x.version !== 3)) {
      raw.exec(m.sql);
      raw.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, 0);
    }
    const bind = (id: string, issuerKey: string, serial: string, fp: string) => {
      raw.prepare("INSERT INTO mykey_ids VALUES (?, 'active', NULL, 0, 0)").run(id);
      raw.prepare("INSERT INTO cert_bindings (mykey_id, state, fingerprint, issuer_key, serial_hex, not_after, bound_at) VALUES (?, 'current', ?, ?, ?, 9e12, 0)").run(id, fp, issuerKey, serial);
    };
    bind('SOLO0001', issuerKeyOf(solo.nameDer), '0a01', 'f1');
    bind('ROLL0001', issuerKeyOf(old.nameDer), '0b02', 'f2');
    // The CRL state as the previous version filed it: under the issuer name hash.
    const soloCrl = await writeCrl({
      issuerNameDer: solo.nameDer,
      signingKey: solo.keyPair.privateKey,
      thisUpdate: new Date(Date.now() - 60_000),
      crlNumber: 7n,
      authorityKeyId: solo.subjectKeyId,
      entries: [],
    });
    mkdirSync(join(dir, 'crl'));
    const soloFile = join(dir, 'crl', `${issuerKeyOf(solo.nameDer)}.crl`);
    writeFileSync(soloFile, soloCrl);
    raw.prepare('INSERT INTO crl_state VALUES (?, ?, ?, NULL, 0, ?, ?, 0)').run(issuerKeyOf(solo.nameDer), '7', Date.now() - 60_000, 'earlier', soloFile);
    raw.close();

    const anchors = [solo, old, next].map((c, i) => {
      const p = join(dir, `anchor-${i}.pem`);
      writeFileSync(p, toPem(c.certDer, 'CERTIFICATE'));
      return p;
    });
    const hub = await createHub(loadHubConfig({ env: {}, overrides: { dataDir: dir, http: { port: 0 }, jpki: { trustAnchors: anchors } } }), { log: silentLogger });
    try {
      const keyIdOf = (id: string) => hub.db.prepare('SELECT issuer_key_id FROM cert_bindings WHERE mykey_id = ?').pluck().get(id) as string;
      assert.is(keyIdOf('SOLO0001'), Buffer.from(solo.subjectKeyId).toString('hex'));
      assert.is(keyIdOf('ROLL0001'), '');
      // Migration 3: the certificate's AKI is not stored for such rows; the anchor key id they are
      // filed under stands in where it is known, and stays unknown (NULL) where it is not.
      const akiOf = (id: string) => hub.db.prepare('SELECT cert_aki FROM cert_bindings WHERE mykey_id = ?').pluck().get(id);
      assert.is(akiOf('SOLO0001'), Buffer.from(solo.subjectKeyId).toString('hex'));
      assert.is(akiOf('ROLL0001'), null);
      // The saved CRL is loaded and re-filed under its issuer's key.
      const soloKey = Buffer.from(solo.subjectKeyId).toString('hex');
      assert.ok(hub.crlManager.crls.has(soloKey));
      assert.equal(
        (await hub.revocations.states()).map((r) => [r.issuer_key, r.crl_number]),
        [[soloKey, '7']],
      );
      // An unknown-key row is found by its own certificate only, never by the serial under another key.
      const name = issuerKeyOf(old.nameDer);
      const nextKey = Buffer.from(next.subjectKeyId).toString('hex');
      assert.is((await hub.mykeys.liveBindingOfCert({ fingerprint: 'f2', issuerKey: name, issuerKeyId: nextKey, serialHex: '0b02', notAfter: 0 }))?.mykey_id, 'ROLL0001');
      assert.is(await hub.mykeys.liveBindingOfCert({ fingerprint: 'other', issuerKey: name, issuerKeyId: nextKey, serialHex: '0b02', notAfter: 0 }), undefined);
      // A CRL of either key of the name is matched against it (which key signed it is unknown).
      const der = await writeCrl({
        issuerNameDer: next.nameDer,
        signingKey: next.keyPair.privateKey,
        thisUpdate: new Date(Date.now() - 60_000),
        crlNumber: 1n,
        authorityKeyId: next.subjectKeyId,
        entries: [{ serial: 0x0b02n, revokedAt: new Date(Date.now() - 120_000), reason: 'keyCompromise' }],
      });
      assert.is((await hub.crlManager.apply(der, 'test')).newlySuspended, 1);
    } finally {
      await hub.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
