// The attacks on CRL handling, through the real stack: CRLs written by the test CA, served by a
// loopback HTTP server and fetched by the hub's CRL manager; MyKey IDs registered over the hub's
// HTTP socket. Each attack is refused with its own code, changes no MyKey ID and leaves the full CRL
// in place; the run record says why.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rollOverTestCa, createTestCa, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { writeCrl, type CrlWriterEntry, type WriteCrlOptions } from '../../../provisioning/test-ca/crl-writer.ts';
import type { CrlReason } from '../../../shared/revocation.ts';
import { createLogger } from '../../../shared/log.ts';
import { createCrlManager } from '../../../hub/revocation/crl-manager.ts';
import { issue, startTestHub, type TestHub } from '../../helpers/hub.ts';

interface Ctx {
  old: TestCa;
  next: TestCa;
  server: Server;
  url: string;
  serve: Uint8Array;
}
const test = suite<Ctx>('CRL hardening', {} as Ctx);

test.before(async (ctx) => {
  ctx.old = await createTestCa({ label: 'jpki-old' });
  // The same subject Name bytes, a new key: both anchors live at once.
  ctx.next = await rollOverTestCa(ctx.old, { label: 'jpki-new' });
  ctx.server = createServer((_req, res) => void res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(Buffer.from(ctx.serve)));
  await new Promise<void>((r) => ctx.server.listen(0, '127.0.0.1', r));
  ctx.url = `http://127.0.0.1:${(ctx.server.address() as { port: number }).port}/jpki.crl`;
});
test.after((ctx) => void ctx.server.close());

const HOUR = 3600_000;
let crlNumber = 1n;

/** A CRL signed by `ca`'s key, named and key-identified as `ca`, numbered in sequence. */
function crlOf(ca: TestCa, entries: CrlWriterEntry[], extra: Partial<WriteCrlOptions> = {}): Promise<Uint8Array> {
  const thisUpdate = new Date(Date.now() - HOUR);
  return writeCrl({
    issuerNameDer: ca.nameDer,
    signingKey: ca.keyPair.privateKey,
    thisUpdate,
    nextUpdate: new Date(thisUpdate.getTime() + 24 * HOUR),
    crlNumber: crlNumber++,
    authorityKeyId: ca.subjectKeyId,
    entries,
    ...extra,
  });
}

const revoked = (cert: IssuedCert, reason: CrlReason = 'keyCompromise'): CrlWriterEntry => ({ serial: cert.serial, revokedAt: new Date(Date.now() - 2 * HOUR), reason });

/** Serves `der` and has the hub fetch it; the code it was refused with, or 'applied'. */
async function fetchCrl(ctx: Ctx, h: TestHub, der: Uint8Array): Promise<string> {
  ctx.serve = der;
  try {
    await h.hub.crlManager.fetchAndApply(ctx.url);
    return 'applied';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

/** Registers a certificate over the hub's HTTP socket. */
async function register(h: TestHub, cert: IssuedCert): Promise<{ status: number; mykeyId?: string; code?: string }> {
  const res = await fetch(`${h.hub.addresses.http}/v1/mykey-ids`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ proof: await h.proof(cert) }),
  });
  const body = (await res.json()) as { mykeyId?: string; code?: string };
  return { status: res.status, mykeyId: body.mykeyId, code: body.code };
}

async function hubOf(ctx: Ctx, overrides: Record<string, unknown> = {}): Promise<TestHub> {
  const h = await startTestHub({ ca: ctx.old, extraCas: [ctx.next], overrides: { broker: { port: 0 }, devices: { httpsPort: 0 }, ...overrides } });
  await h.hub.start();
  return h;
}

async function statusOf(h: TestHub, mykeyId: string): Promise<string> {
  const r = (await h.hub.store.sql.get<{ status: string; status_reason: string | null }>('SELECT status, status_reason FROM mykey_ids WHERE id = ?', [mykeyId]))!;
  return r.status_reason ? `${r.status}:${r.status_reason}` : r.status;
}

test("a CA key rollover under one name: the same serial under the new key is another holder, and each key's CRL suspends only its own", async (ctx) => {
  const h = await hubOf(ctx);
  try {
    const serial = 0x4d794b6579n;
    const underOld = await issue(ctx.old, { serial });
    const underNew = await issue(ctx.next, { serial });
    const a = await register(h, underOld);
    assert.is(a.status, 201, JSON.stringify(a));
    // Before: the serial under the same issuer name found the first holder's MyKey ID and gave it away.
    const b = await register(h, underNew);
    assert.is(b.status, 201, JSON.stringify(b));
    assert.is.not(b.mykeyId, a.mykeyId);
    // Registering the old certificate again still finds its own MyKey ID.
    const again = await register(h, underOld);
    assert.is(again.mykeyId, a.mykeyId);

    // Both keys publish a full CRL; the new key revokes the serial.
    assert.is(await fetchCrl(ctx, h, await crlOf(ctx.old, [])), 'applied');
    assert.is(await fetchCrl(ctx, h, await crlOf(ctx.next, [revoked(underNew)])), 'applied');
    assert.is(await statusOf(h, b.mykeyId!), 'suspended:keyCompromise');
    assert.is(await statusOf(h, a.mykeyId!), 'active');
    // Two CRLs, one per key, side by side; the old key's still says the old certificate is good.
    assert.is(h.hub.crlManager.crls.size, 2);
    assert.is(h.hub.crlManager.crls.get(h.hub.anchors[0].keyId)?.lookup(underOld.serialHex), undefined);
    const rowsByKey = await h.hub.store.sql.all<{ issuer_key_id: string; revoked: number }>(
      'SELECT issuer_key_id, CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END AS revoked FROM cert_bindings ORDER BY id',
    );
    assert.equal(rowsByKey, [
      { issuer_key_id: Buffer.from(ctx.old.subjectKeyId).toString('hex'), revoked: 0 },
      { issuer_key_id: Buffer.from(ctx.next.subjectKeyId).toString('hex'), revoked: 1 },
    ]);
    // The old certificate still registers (its key's CRL does not list it); the new one is refused.
    assert.is((await register(h, underOld)).status, 200);
    assert.is((await register(h, underNew)).code, 'cert_revoked');

    // Now the old key revokes the serial too: only then is the first holder suspended.
    assert.is(await fetchCrl(ctx, h, await crlOf(ctx.old, [revoked(underOld, 'superseded')])), 'applied');
    assert.is(await statusOf(h, a.mykeyId!), 'suspended:superseded');
  } finally {
    await h.close();
  }
});

// Each attack CRL lists a registered certificate as revoked and leaves out one the full CRL revoked:
// taken as the full CRL, it would suspend the first and clear the second.
const attacks: [string, string, (ctx: Ctx, listed: IssuedCert) => Promise<Uint8Array>][] = [
  [
    'a partitioned CRL (issuingDistributionPoint with a distribution point)',
    'crl_scope_unsupported',
    (ctx, c) => crlOf(ctx.old, [revoked(c)], { issuingDistributionPoint: { distributionPointUri: 'http://127.0.0.1/part-7.crl' } }),
  ],
  ['a CA-only CRL (onlyContainsCACerts)', 'crl_scope_unsupported', (ctx, c) => crlOf(ctx.old, [revoked(c)], { issuingDistributionPoint: { onlyContainsCACerts: true } })],
  ['an attribute-certificate CRL (onlyContainsAttributeCerts)', 'crl_scope_unsupported', (ctx, c) => crlOf(ctx.old, [revoked(c)], { issuingDistributionPoint: { onlyContainsAttributeCerts: true } })],
  ['a CRL of some reasons only (onlySomeReasons)', 'crl_scope_unsupported', (ctx, c) => crlOf(ctx.old, [revoked(c)], { issuingDistributionPoint: { onlySomeReasons: [1] } })],
  ['an indirect CRL (indirectCRL)', 'crl_scope_unsupported', (ctx, c) => crlOf(ctx.old, [revoked(c)], { issuingDistributionPoint: { indirectCRL: true } })],
  ['a delta CRL (deltaCRLIndicator)', 'crl_delta_unsupported', (ctx, c) => crlOf(ctx.old, [revoked(c)], { baseCrlNumber: 1n })],
  [
    'a CRL with an unknown critical extension',
    'crl_critical_extension',
    (ctx, c) => crlOf(ctx.old, [revoked(c)], { extensions: [{ oid: '1.3.6.1.4.1.99999.1', critical: true, value: Uint8Array.of(0x05, 0x00) }] }),
  ],
  [
    'a CRL whose entry has an unknown critical extension',
    'crl_critical_extension',
    (ctx, c) => crlOf(ctx.old, [{ ...revoked(c), extensions: [{ oid: '1.3.6.1.4.1.99999.2', critical: true, value: Uint8Array.of(0x05, 0x00) }] }]),
  ],
  [
    'a CRL whose entry names another issuer (certificateIssuer, critical: an indirect CRL)',
    'crl_critical_extension',
    (ctx, c) => crlOf(ctx.old, [{ ...revoked(c), extensions: [{ oid: '2.5.29.29', critical: true, value: Uint8Array.of(0x30, 0x00) }] }]),
  ],
  [
    'a CRL whose thisUpdate is an hour in the future',
    'crl_not_yet_valid',
    (ctx, c) => crlOf(ctx.old, [revoked(c)], { thisUpdate: new Date(Date.now() + HOUR), nextUpdate: new Date(Date.now() + 25 * HOUR) }),
  ],
];

test('CRLs that are not the full CRL, carry critical extensions they cannot be read without, or are dated ahead are refused with their own codes', async (ctx) => {
  const h = await hubOf(ctx);
  try {
    const cleared = await issue(ctx.old);
    const clearedId = (await register(h, cleared)).mykeyId!;
    assert.is(await fetchCrl(ctx, h, await crlOf(ctx.old, [revoked(cleared)])), 'applied');
    assert.is(await statusOf(h, clearedId), 'suspended:keyCompromise');
    const full = h.hub.crlManager.crls.get(h.hub.anchors[0].keyId)!;
    for (const [name, code, make] of attacks) {
      const listed = await issue(ctx.old);
      const listedId = (await register(h, listed)).mykeyId!;
      const got = await fetchCrl(ctx, h, await make(ctx, listed));
      assert.is(got, code, name);
      assert.is(await statusOf(h, listedId), 'active', name);
      // The full CRL stays the one in use: it still says `cleared` is revoked.
      const now = h.hub.crlManager.crls.get(h.hub.anchors[0].keyId)!;
      assert.is(now, full, name);
      assert.ok(now.lookup(cleared.serialHex), name);
      assert.is((await register(h, cleared)).code, 'cert_revoked', name);
      // The run record says why.
      const run = (await h.hub.revocations.recentRuns(1))[0];
      assert.is(run.ok, 0, name);
      assert.is(run.code, code, name);
      assert.ok(run.error?.startsWith(`${code}: `), `${name}: ${run.error}`);
    }
    // A CRL limited to user certificates only (onlyContainsUserCerts) covers every certificate the hub binds: applied.
    const userOnly = await issue(ctx.old);
    const userOnlyId = (await register(h, userOnly)).mykeyId!;
    assert.is(await fetchCrl(ctx, h, await crlOf(ctx.old, [revoked(cleared), revoked(userOnly)], { issuingDistributionPoint: { onlyContainsUserCerts: true } })), 'applied');
    assert.is(await statusOf(h, userOnlyId), 'suspended:keyCompromise');
  } finally {
    await h.close();
  }
});

test('a CRL already past nextUpdate plus grace is applied with a warning in the run record, and revocation-runs shows warnings and refusals with their codes', async (ctx) => {
  const h = await hubOf(ctx);
  try {
    const cert = await issue(ctx.old);
    const id = (await register(h, cert)).mykeyId!;
    const late = await crlOf(ctx.old, [revoked(cert)], { thisUpdate: new Date(Date.now() - 72 * HOUR), nextUpdate: new Date(Date.now() - 48 * HOUR) });
    ctx.serve = late;
    const run = await h.hub.crlManager.fetchAndApply(ctx.url);
    assert.match(run.warning ?? '', /past its nextUpdate/);
    assert.is(await statusOf(h, id), 'suspended:keyCompromise');
    assert.match((await h.hub.revocations.recentRuns(1))[0].warning ?? '', /past its nextUpdate/);
    assert.is(await fetchCrl(ctx, h, await crlOf(ctx.old, [], { baseCrlNumber: 1n })), 'crl_delta_unsupported');

    // The operator command reads the same database.
    await h.hub.stop();
    const config = join(h.dir, 'hub.json');
    writeFileSync(config, JSON.stringify({ dataDir: h.dir, store: h.hub.config.store, jpki: { trustAnchors: h.hub.config.jpki.trustAnchors } }));
    const out = spawnSync(process.execPath, ['--import', 'tsx', 'hub/cli.ts', 'revocation-runs', '--config', config], { encoding: 'utf8', timeout: 60_000 });
    assert.is(out.status, 0, out.stderr);
    assert.match(out.stdout, /FAIL .*refused: crl_delta_unsupported: a delta CRL/);
    assert.match(out.stdout, /ok .*warning: the CRL was already past its nextUpdate/);
  } finally {
    await h.close();
  }
});

test('the log warns of a late CRL and says why a CRL was refused, with no serial in it', async (ctx) => {
  const h = await hubOf(ctx);
  try {
    const lines: string[] = [];
    // The hub's own CRL manager code over the same stores, with a logger the test can read.
    const manager = createCrlManager({
      dataDir: h.dir,
      anchors: () => h.hub.anchors,
      mykeys: h.hub.mykeys,
      revocations: h.hub.revocations,
      log: createLogger('revocation', { level: 'info', json: true, write: (l) => lines.push(l) }),
    });
    const cert = await issue(ctx.old);
    await register(h, cert);
    ctx.serve = await crlOf(ctx.old, [revoked(cert)], { thisUpdate: new Date(Date.now() - 72 * HOUR), nextUpdate: new Date(Date.now() - 48 * HOUR) });
    await manager.fetchAndApply(ctx.url);
    ctx.serve = await crlOf(ctx.old, [revoked(cert)], { issuingDistributionPoint: { indirectCRL: true } });
    await manager.fetchAndApply(ctx.url).catch(() => undefined);
    const logged = lines.map((l) => JSON.parse(l) as { level: string; msg: string; code?: string });
    assert.ok(
      logged.some((l) => l.level === 'warn' && l.msg === 'CRL already past its nextUpdate'),
      lines.join('\n'),
    );
    assert.ok(
      logged.some((l) => l.level === 'warn' && l.msg === 'CRL not applied' && l.code === 'crl_scope_unsupported'),
      lines.join('\n'),
    );
    for (const l of lines) assert.not.match(l, new RegExp(cert.serialHex, 'i'));
  } finally {
    await h.close();
  }
});

test.run();
