// Certificates and CRLs made by OpenSSL are accepted wherever the test CA's are: the hub's parsing
// and checks depend on the JPKI profile, not on one encoder.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPrivateKey, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHubConfig } from '../../../hub/config.ts';
import { createHub } from '../../../hub/main.ts';
import { opensslCreateCa, opensslGenCrl, opensslIssueUserAuthCert, opensslRevoke, opensslIssueCert } from '../../../provisioning/test-ca/openssl.ts';
import { silentLogger } from '../../../shared/log.ts';

const dir = mkdtempSync(join(tmpdir(), 'mykey-ossl-'));

test('an OpenSSL-made JPKI CA, certificate and CRL work end to end at the hub', async () => {
  const ca = await opensslCreateCa(join(dir, 'ca'));
  writeFileSync(join(dir, 'anchor.pem'), ca.certPem);
  const hub = await createHub(loadHubConfig({ env: {}, overrides: { dataDir: join(dir, 'data'), jpki: { trustAnchors: [join(dir, 'anchor.pem')] } } }), { log: silentLogger });
  const call = async (path: string, body: unknown) => {
    const res = await hub.app.request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as any };
  };
  const proof = async (cert: { certDer: Uint8Array; keyPem: string }, purpose = 'register') => {
    const ch = (await call('/v1/challenges', { purpose })).body.challenge as string;
    const sig = sign('sha256', Buffer.from(ch, 'base64url'), createPrivateKey(cert.keyPem));
    return { challenge: ch, certificate: Buffer.from(cert.certDer).toString('base64'), signature: sig.toString('base64') };
  };
  try {
    // A first CRL from `openssl ca -gencrl` gives revocation status.
    await hub.crlManager.apply(await opensslGenCrl(ca), 'openssl');
    const good = await opensslIssueUserAuthCert(ca);
    const bad = await opensslIssueUserAuthCert(ca);
    const signing = await opensslIssueCert(ca, { profile: 'sign' });
    const r = await call('/v1/mykey-ids', { proof: await proof(good) });
    assert.is(r.status, 201, JSON.stringify(r.body));
    const r2 = await call('/v1/mykey-ids', { proof: await proof(bad) });
    assert.is(r2.status, 201);
    // The signing certificate is refused for its key usage / policy.
    const r3 = await call('/v1/mykey-ids', { proof: await proof(signing) });
    assert.is(r3.status, 422);
    assert.ok(['cert_key_usage', 'cert_policy'].includes(r3.body.code), r3.body.code);
    // OpenSSL revokes one; its CRL suspends that MyKey ID with the reason.
    opensslRevoke(ca, bad.serialHex, 'keyCompromise');
    const run = await hub.crlManager.apply(await opensslGenCrl(ca), 'openssl');
    assert.is(run.newlySuspended, 1);
    const row = hub.db.prepare('SELECT status, status_reason FROM mykey_ids WHERE id = ?').get(r2.body.mykeyId);
    assert.equal(row, { status: 'suspended', status_reason: 'keyCompromise' });
    const again = await call('/v1/mykey-ids', { proof: await proof(bad) });
    assert.is(again.body.code, 'cert_revoked');
  } finally {
    await hub.stop();
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
