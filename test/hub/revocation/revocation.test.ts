import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateRsaKeyPair, type IssuedCert } from '../../../provisioning/test-ca/ca.ts';
import { startOcspResponder } from '../../../provisioning/test-ca/ocsp-responder.ts';
import { initCaDir, type CaDir } from '../../../provisioning/test-ca/store.ts';
import { issue, startTestHub, type TestHub } from '../../helpers/hub.ts';
import { rejects } from '../../helpers/assertions.ts';

interface Ctx {
  caDir: CaDir;
  dir: string;
  crlServer: Server;
  crlUrl: string;
  /** What the CRL endpoint serves next (publishes a fresh CRL per fetch unless set). */
  serve?: Uint8Array | 'fail';
}
const test = suite<Ctx>('revocation', {} as Ctx);

test.before(async (ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-rev-'));
  ctx.caDir = await initCaDir(join(ctx.dir, 'ca'));
  ctx.crlServer = createServer((_req, res) => {
    if (ctx.serve === 'fail') return void res.writeHead(500).end('down');
    const body = ctx.serve ? Promise.resolve(ctx.serve) : ctx.caDir.publishCrl();
    body.then((der) => res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(Buffer.from(der)));
  });
  await new Promise<void>((r) => ctx.crlServer.listen(0, '127.0.0.1', r));
  ctx.crlUrl = `http://127.0.0.1:${(ctx.crlServer.address() as { port: number }).port}/crl`;
});
test.after((ctx) => {
  ctx.crlServer.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

async function call(h: TestHub, path: string, body: unknown) {
  const res = await h.request(path, body);
  return { status: res.status, body: (await res.json()) as any };
}

async function registered(h: TestHub, cert: IssuedCert): Promise<string> {
  const r = await call(h, '/v1/mykey-ids', { proof: await h.proof(cert) });
  assert.is(r.status, 201, JSON.stringify(r.body));
  return r.body.mykeyId;
}

function statusOf(h: TestHub, mykeyId: string) {
  return h.hub.db.prepare('SELECT status, status_reason FROM mykey_ids WHERE id = ?').get(mykeyId) as { status: string; status_reason: string | null };
}

test('a fetched CRL suspends the MyKey ID of a newly revoked certificate, with its reason', async (ctx) => {
  const h = await startTestHub({ ca: ctx.caDir.ca, overrides: { jpki: { requireRevocationStatus: true } } });
  try {
    await h.hub.crlManager.fetchAndApply(ctx.crlUrl); // a first, empty CRL: revocation status known
    const lost = await ctx.caDir.issue();
    const renewed = await ctx.caDir.issue();
    const fine = await ctx.caDir.issue();
    const ids = [await registered(h, lost), await registered(h, renewed), await registered(h, fine)];
    await ctx.caDir.revoke(lost.serialHex, 'keyCompromise');
    await ctx.caDir.revoke(renewed.serialHex, 'superseded');
    const run = await h.hub.crlManager.fetchAndApply(ctx.crlUrl);
    assert.is(run.matched, 2);
    assert.is(run.newlySuspended, 2);
    assert.equal(statusOf(h, ids[0]), { status: 'suspended', status_reason: 'keyCompromise' });
    assert.equal(statusOf(h, ids[1]), { status: 'suspended', status_reason: 'superseded' });
    assert.equal(statusOf(h, ids[2]), { status: 'active', status_reason: null });
    // The same CRL again finds nothing new.
    const again = await h.hub.crlManager.fetchAndApply(ctx.crlUrl);
    assert.is(again.matched, 0);
    // Registration with a revoked certificate is refused with its reason.
    const r = await call(h, '/v1/mykey-ids', { proof: await h.proof(lost) });
    assert.is(r.status, 422);
    assert.is(r.body.code, 'cert_revoked');
    assert.match(r.body.detail, 'keyCompromise');
    // Runs are recorded.
    const runs = await h.hub.revocations.recentRuns(10);
    assert.ok(runs.length >= 3);
    assert.is(runs[0].ok, 1);
  } finally {
    await h.close();
  }
});

test('superseded is not a loss: the holder carries the MyKey ID over and it resumes', async (ctx) => {
  const h = await startTestHub({ ca: ctx.caDir.ca, overrides: { jpki: { requireRevocationStatus: true } } });
  try {
    await h.hub.crlManager.fetchAndApply(ctx.crlUrl);
    const old = await ctx.caDir.issue();
    const mykeyId = await registered(h, old);
    const renewed = await ctx.caDir.issue({ keyPair: await generateRsaKeyPair() });
    await ctx.caDir.revoke(old.serialHex, 'superseded');
    await h.hub.crlManager.fetchAndApply(ctx.crlUrl);
    assert.is(statusOf(h, mykeyId).status, 'suspended');
    const r = await call(h, '/v1/holder/carry-over', {
      proof: await h.proof(renewed, { purpose: 'carry_over', role: 'new' }),
      previous: { proof: await h.proof(old, { purpose: 'carry_over', role: 'previous' }) },
    });
    assert.is(r.status, 200, JSON.stringify(r.body));
    assert.is(r.body.status, 'active');
    assert.is(r.body.certificates[0].revoked.reason, 'superseded');
  } finally {
    await h.close();
  }
});

test('a MyKey ID suspended for a loss cannot be carried over', async (ctx) => {
  const h = await startTestHub({ ca: ctx.caDir.ca, overrides: { jpki: { requireRevocationStatus: true } } });
  try {
    await h.hub.crlManager.fetchAndApply(ctx.crlUrl);
    const old = await ctx.caDir.issue();
    await registered(h, old);
    const renewed = await ctx.caDir.issue({ keyPair: await generateRsaKeyPair() });
    await ctx.caDir.revoke(old.serialHex, 'keyCompromise');
    await h.hub.crlManager.fetchAndApply(ctx.crlUrl);
    const r = await call(h, '/v1/holder/carry-over', {
      proof: await h.proof(renewed, { purpose: 'carry_over', role: 'new' }),
      previous: { proof: await h.proof(old, { purpose: 'carry_over', role: 'previous' }) },
    });
    assert.is(r.status, 422);
    assert.is(r.body.code, 'cert_revoked');
  } finally {
    await h.close();
  }
});

test('without revocation status, registration is refused (503) when required', async (ctx) => {
  const h = await startTestHub({ ca: ctx.caDir.ca, overrides: { jpki: { requireRevocationStatus: true } } });
  try {
    const r = await call(h, '/v1/mykey-ids', { proof: await h.proof(await issue(ctx.caDir.ca)) });
    assert.is(r.status, 503);
    assert.is(r.body.code, 'cert_revocation_unknown');
  } finally {
    await h.close();
  }
});

test('an older CRL never undoes a newer one, and a failed fetch is recorded', async (ctx) => {
  const h = await startTestHub({ ca: ctx.caDir.ca });
  try {
    const older = await ctx.caDir.publishCrl();
    await h.hub.crlManager.fetchAndApply(ctx.crlUrl); // newer
    ctx.serve = older;
    try {
      await h.hub.crlManager.fetchAndApply(ctx.crlUrl);
      assert.unreachable('an older CRL was applied');
    } catch (e) {
      assert.is((e as { code?: string }).code, 'crl_stale');
    }
    ctx.serve = 'fail';
    try {
      await h.hub.crlManager.fetchAndApply(ctx.crlUrl);
      assert.unreachable('a failed fetch did not throw');
    } catch (e) {
      assert.is((e as { code?: string }).code, 'crl_fetch_failed');
    }
    const runs = await h.hub.revocations.recentRuns(2);
    assert.is(runs[0].ok, 0);
    assert.match(runs[0].error ?? '', 'HTTP 500');
  } finally {
    ctx.serve = undefined;
    await h.close();
  }
});

test('a CRL of another issuer is refused and changes nothing', async (ctx) => {
  const other = await initCaDir(join(ctx.dir, 'other'), { ouSuffix: ' other' });
  const h = await startTestHub({ ca: ctx.caDir.ca });
  try {
    await rejects(h.hub.crlManager.apply(new Uint8Array(0), 'empty'), (e: { code?: string }) => e.code === 'crl_malformed');
    const der = await other.publishCrl();
    await rejects(h.hub.crlManager.apply(der, 'other'), (e: { code?: string }) => e.code === 'crl_unknown_issuer');
    assert.is(h.hub.crlManager.crls.size, 0);
  } finally {
    await h.close();
  }
});

test('the scheduled check fetches the configured source, and a restarted hub reloads the saved CRL', async (ctx) => {
  const h = await startTestHub({ ca: ctx.caDir.ca, overrides: { jpki: { crlSources: [ctx.crlUrl], crlIntervalSeconds: 10, requireRevocationStatus: true } } });
  try {
    await h.hub.start();
    for (let i = 0; i < 100 && h.hub.crlManager.crls.size === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.is(h.hub.crlManager.crls.size, 1);
    const cert = await ctx.caDir.issue();
    assert.is((await call(h, '/v1/mykey-ids', { proof: await h.proof(cert) })).status, 201);
  } finally {
    await h.hub.stop();
  }
  // A new hub over the same data directory knows revocation status before any fetch.
  const { createHub } = await import('../../../hub/main.ts');
  const { silentLogger } = await import('../../../shared/log.ts');
  const again = await createHub(h.hub.config, { log: silentLogger });
  try {
    assert.is(again.crlManager.crls.size, 1);
  } finally {
    await again.stop();
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test('OCSP where configured: a revoked answer refuses registration even before the CRL knows', async (ctx) => {
  const revoked = new Map<bigint, { revokedAt: Date; reason: 'keyCompromise' }>();
  const ocsp = await startOcspResponder({ ca: ctx.caDir.ca, status: (s) => revoked.get(s) });
  const h = await startTestHub({ ca: ctx.caDir.ca, overrides: { jpki: { requireRevocationStatus: true, ocspUrl: ocsp.url } } });
  try {
    const good = await ctx.caDir.issue();
    assert.is((await call(h, '/v1/mykey-ids', { proof: await h.proof(good) })).status, 201);
    const bad = await ctx.caDir.issue();
    revoked.set(bad.serial, { revokedAt: new Date(), reason: 'keyCompromise' });
    const r = await call(h, '/v1/mykey-ids', { proof: await h.proof(bad) });
    assert.is(r.status, 422);
    assert.is(r.body.code, 'cert_revoked');
  } finally {
    await h.close();
    await ocsp.close();
  }
});

test('the operator command imports a CRL file with progress and a summary', async (ctx) => {
  const h = await startTestHub({ ca: ctx.caDir.ca });
  const cert = await ctx.caDir.issue();
  const mykeyId = await registered(h, cert);
  await h.hub.stop();
  await ctx.caDir.revoke(cert.serialHex, 'affiliationChanged');
  const file = join(ctx.dir, 'manual.crl');
  writeFileSync(file, await ctx.caDir.publishCrl({ extraRandomEntries: 50_000 }));
  const configPath = join(h.dir, 'hub.json');
  writeFileSync(configPath, JSON.stringify({ dataDir: h.dir, jpki: { trustAnchors: h.hub.config.jpki.trustAnchors } }));
  const out = spawnSync(process.execPath, ['--import', 'tsx', 'hub/cli.ts', 'crl-import', file, '--config', configPath], { encoding: 'utf8', timeout: 60_000 });
  assert.is(out.status, 0, out.stderr + out.stdout);
  assert.match(out.stderr, /parse 100%/);
  assert.match(out.stdout, /MyKey IDs suspended\s+1/);
  assert.match(out.stdout, /entries\s+50,00\d/);
  const bad = spawnSync(process.execPath, ['--import', 'tsx', 'hub/cli.ts', 'crl-import', join(ctx.dir, 'missing.crl'), '--config', configPath], { encoding: 'utf8', timeout: 60_000 });
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /cannot read/);
  const { openDatabase } = await import('../../../hub/store/db.ts');
  const db = openDatabase(join(h.dir, 'hub.sqlite'));
  assert.equal(db.prepare('SELECT status, status_reason FROM mykey_ids WHERE id = ?').get(mykeyId), { status: 'suspended', status_reason: 'affiliationChanged' });
  db.close();
  rmSync(h.dir, { recursive: true, force: true });
});

test.run();
