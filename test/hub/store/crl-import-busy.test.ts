// A CRL imported by the operator command (hub/cli.ts crl-import, another process on the same SQLite
// file) while the hub registers: the import writes in short BEGIN IMMEDIATE chunks and the hub's
// writes take the lock first and wait their turn, so no registration fails with 500 (a store still
// busy is 503 `unavailable` with Retry-After, never `internal`).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeCrl } from '../../../provisioning/test-ca/crl-writer.ts';
import type { CertIdentity } from '../../../hub/store/mykey-repo.ts';
import { issue, startTestHub } from '../../helpers/hub.ts';

const root = fileURLToPath(new URL('../../..', import.meta.url));

test('a CRL import in another process while 100 registrations run: none gets 500', async () => {
  const h = await startTestHub();
  try {
    const { url } = await h.hub.start();
    const a = h.hub.anchors[0];
    // Enough bound certificates that the import writes many chunks.
    const N = 20_000;
    const REVOKED = 6000;
    const serial = (i: number) => (0x6000_0000 + i).toString(16);
    const cert = (s: string): CertIdentity => ({ fingerprint: `fp-${s}`, issuerKey: a.issuerKey, issuerKeyId: a.keyId, serialHex: s, notAfter: Date.UTC(2030, 0, 1) });
    for (let from = 0; from < N; from += 10_000) {
      await h.hub.mykeys.bulkCreate(
        Array.from({ length: 10_000 }, (_, k) => ({ id: `BUSY${from + k}`, cert: cert(serial(from + k)) })),
        Date.now(),
      );
    }
    const crl = await writeCrl({
      issuerNameDer: h.ca.nameDer,
      signingKey: h.ca.keyPair.privateKey,
      thisUpdate: new Date(Date.now() - 60_000),
      crlNumber: 1n,
      authorityKeyId: h.ca.subjectKeyId,
      entries: Array.from({ length: REVOKED }, (_, i) => ({ serial: BigInt(`0x${serial(i * 3)}`), revokedAt: new Date(Date.now() - 120_000), reason: 'superseded' as const })),
    });
    const crlPath = join(h.dir, 'import.crl');
    writeFileSync(crlPath, crl);
    const configPath = join(h.dir, 'cli.json');
    writeFileSync(configPath, JSON.stringify({ dataDir: h.dir, jpki: { trustAnchors: [join(h.dir, 'anchor-0.pem')] } }));

    // 100 holders with their proofs ready (challenges from the hub, signed as the card signs).
    const proofs = await Promise.all(Array.from({ length: 100 }, async () => h.proof(await issue(h.ca))));

    const cli = spawn(process.execPath, ['--import', 'tsx', 'hub/cli.ts', 'crl-import', crlPath, '--config', configPath], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    cli.stdout.on('data', (d) => (out += d));
    const started = new Promise<void>((resolve) =>
      cli.stderr.on('data', (d) => {
        err += d;
        if (err.includes('importing')) resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) => cli.once('exit', resolve));
    await Promise.race([started, exited]);

    // The registrations, all at once over HTTP, while the import parses, matches and writes.
    const results = await Promise.all(
      proofs.map(async (proof, i) => {
        await new Promise((r) => setTimeout(r, (i % 10) * 30));
        const res = await fetch(`${url}/v1/mykey-ids`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ proof }) });
        return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() };
      }),
    );
    const code = await exited;
    assert.is(code, 0, `crl-import failed: ${err}`);
    assert.match(out, /CRL applied/);
    for (const r of results) {
      assert.ok(r.status === 201 || r.status === 503, `registration answered ${r.status}: ${r.body}`);
      if (r.status === 503) {
        assert.is(JSON.parse(r.body).code, 'unavailable');
        assert.ok(r.retryAfter, 'a 503 says when to retry');
      }
    }
    assert.is(results.filter((r) => r.status >= 500 && r.status !== 503).length, 0);
    // The import did its work meanwhile: every listed bound certificate is revoked, its MyKey ID suspended.
    assert.is(h.hub.db.prepare("SELECT COUNT(*) FROM cert_bindings WHERE serial_hex LIKE '6%' AND revoked_at IS NOT NULL").pluck().get(), REVOKED);
    assert.is((await h.hub.mykeys.counts()).suspended, REVOKED);
  } finally {
    await h.close();
  }
});

test.run();
