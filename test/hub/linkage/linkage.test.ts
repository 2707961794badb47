// Carry-over without a visit (#14): a renewal through the test CA with a signed linkage file, through
// the real stack: a hub listening on real sockets, the operator route over HTTP, CRLs fetched over
// HTTP, an enrolled edge's device API over mutual TLS (its change log applied to the edge's own cache,
// then touches looked up in it as the reader does), and the service's webhook receiver.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { generateLinkageSigner, renewCertificate, type Linkage } from '../../../provisioning/test-ca/linkage-writer.ts';
import { serializeLinkageFile } from '../../../shared/linkage.ts';
import { client, PASSWORD } from '../console/helpers/console-hub.ts';
import { runConsoleCli } from '../../../hub/console/cli.ts';
import { until } from '../../helpers/polling.ts';
import { ADMIN, eventsOf, holder, http, importFile, register, setUp, signed, statusOf, sync, tearDown, touch, type Ctx } from './helpers/linkage-hub.ts';

const test = suite<Ctx>('certificate linkage', {} as Ctx);
test.before(setUp);
test.after(tearDown);

test('a renewal with a linkage file: the new card touches to the same service ID and the MyKey ID is never suspended', async (ctx) => {
  const a = await holder(ctx, 'LIB-0042');
  await sync(ctx);
  assert.is(touch(ctx, a.cert), 'LIB-0042'); // the old card, before the renewal

  const renewed = await renewCertificate(ctx.caDir, a.cert); // same holder key; the old one revoked as superseded
  assert.is(touch(ctx, renewed), undefined); // the edge does not know the new card yet
  const file = signed(ctx, [{ old: a.cert, next: renewed }]);
  // A dry run first: what the file would do, nothing written.
  const dry = await http(ctx, '/v1/admin/linkage-imports?dryRun=true', {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'mykey-linkage-signature': file.signature },
    body: Buffer.from(file.bytes),
  });
  assert.is(dry.status, 200, JSON.stringify(dry.body));
  assert.equal([dry.body.dryRun, dry.body.carried], [true, [2]]);
  assert.is((await ctx.h.hub.mykeys.currentBinding(a.mykeyId))!.serial_hex, a.cert.serialHex);
  const r = await importFile(ctx, file.bytes, file.signature);
  assert.is(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.carried, [2]);
  assert.equal(r.body.refused, []);

  // The CRL listing the old certificate as superseded arrives after the import: nothing is suspended.
  const run = await ctx.h.hub.crlManager.fetchAndApply(ctx.crlUrl);
  assert.is(run.matched, 1);
  assert.is(run.newlySuspended, 0);

  // One change-log entry for the edge, carrying the keys over.
  const entries = await sync(ctx);
  assert.is(entries.length, 1);
  assert.is(entries[0].kind, 'carry_over');
  assert.is(entries[0].reason, 'linkage');
  assert.is(touch(ctx, renewed), 'LIB-0042'); // the new card, after
  assert.is(touch(ctx, a.cert), undefined); // the old card no longer

  assert.equal(statusOf(ctx, a.mykeyId), { status: 'active', status_reason: null });
  assert.equal(eventsOf(ctx, a.mykeyId), ['created', 'carried_over']);
  // The new card proves the same MyKey ID; the old one is superseded.
  const again = await register(ctx, renewed);
  assert.is(again.status, 200, JSON.stringify(again.body));
  assert.is(again.body.mykeyId, a.mykeyId);
  const old = await register(ctx, a.cert);
  assert.is(old.body.code, 'cert_revoked_superseded');
  // The library is told once, by a signed notice.
  const n = await until(() => ctx.notices.find((x) => x.serviceUserId === 'LIB-0042' && x.type === 'link.carried_over'), { what: 'the notice' });
  assert.is(n.reason, 'linkage');

  // The same file again: already carried, nothing new for the edge.
  const twice = await importFile(ctx, file.bytes, file.signature);
  assert.is(twice.status, 200);
  assert.equal(twice.body.carried, []);
  assert.equal(twice.body.alreadyCarried, [2]);
  assert.equal(await sync(ctx), []);
});

test('a MyKey ID suspended by a superseded CRL entry before the import resumes with it; one without a record stays suspended', async (ctx) => {
  const b = await holder(ctx, 'LIB-0043');
  const c = await holder(ctx, 'LIB-0044');
  await sync(ctx);
  assert.is(touch(ctx, b.cert), 'LIB-0043');
  const bNext = await renewCertificate(ctx.caDir, b.cert, { newKey: true }); // a replaced card: a new key
  await renewCertificate(ctx.caDir, c.cert);
  const run = await ctx.h.hub.crlManager.fetchAndApply(ctx.crlUrl);
  assert.is(run.newlySuspended, 2);
  await sync(ctx);
  assert.is(touch(ctx, b.cert), undefined);
  assert.is(statusOf(ctx, b.mykeyId).status, 'suspended');

  const file = signed(ctx, [{ old: b.cert, next: bNext }], ctx.ecSigner); // signed with the ECDSA P-256 signer
  const r = await importFile(ctx, file.bytes, file.signature);
  assert.is(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.carried, [2]);
  assert.is(r.body.resumed, 1);
  const entries = await sync(ctx);
  assert.equal(
    entries.map((e) => e.kind),
    ['carry_over'],
  ); // one entry: carried and resumed together
  assert.is(touch(ctx, bNext), 'LIB-0043');
  assert.equal(statusOf(ctx, b.mykeyId), { status: 'active', status_reason: null });
  await until(() => ctx.notices.find((x) => x.serviceUserId === 'LIB-0043' && x.type === 'link.resumed'), { what: 'the resumed notice' });
  // Superseded without a linkage record: suspended as before, until the holder carries it over.
  assert.equal(statusOf(ctx, c.mykeyId), { status: 'suspended', status_reason: 'superseded' });
  assert.is(touch(ctx, c.cert), undefined);
});

test('a CRL run that matched the old certificate before the import cannot suspend after it', async (ctx) => {
  const e = await holder(ctx, 'LIB-0045');
  const before = (await ctx.h.hub.mykeys.currentBinding(e.mykeyId))!;
  const next = await renewCertificate(ctx.caDir, e.cert);
  const file = signed(ctx, [{ old: e.cert, next }]);
  assert.equal((await importFile(ctx, file.bytes, file.signature)).body.carried, [2]);
  // The run's write, with what it matched while the old binding was still current.
  const n = await ctx.h.hub.mykeys.applyRevocations([{ bindingId: before.id, mykeyId: e.mykeyId, state: 'current', revokedAt: Date.now(), reason: 'superseded' }], Date.now());
  assert.is(n, 0);
  assert.equal(statusOf(ctx, e.mykeyId), { status: 'active', status_reason: null });
  assert.is((await ctx.h.hub.mykeys.bindingByFingerprint(before.fingerprint))!.revocation_reason, 'superseded');
});

test('refused whole: no signature, a forged signer, a line tampered after signing, too large, a bad header, an unknown issuer', async (ctx) => {
  const d = await holder(ctx, 'LIB-0050');
  const next = await renewCertificate(ctx.caDir, d.cert);
  const good = signed(ctx, [{ old: d.cert, next }]);
  const forger = generateLinkageSigner('ed25519');
  const forged = signed(ctx, [{ old: d.cert, next }], forger);
  const tampered = new Uint8Array(good.bytes);
  // Flip one character of the new serial on line 2: the signature covers every byte.
  const at = Buffer.from(tampered).indexOf(Buffer.from(`"new":"${next.serialHex}`)) + 8;
  tampered[at] = tampered[at] === 0x61 ? 0x62 : 0x61;
  const big = new Uint8Array(70_000).fill(0x20);
  const badHeader = new Uint8Array(Buffer.from('{"format":"mykey-linkage","version":2}\n'));
  const otherCa = await createTestCa({ ouSuffix: ' 2' });
  const foreign = new Uint8Array(serializeLinkageFile({ issuer: Buffer.from(otherCa.subjectKeyId).toString('hex'), created: new Date().toISOString() }, good.records));
  const { signLinkageBytes } = await import('../../../provisioning/test-ca/linkage-writer.ts');
  const cases: [string, Uint8Array, string | undefined, number, string][] = [
    ['no signature', good.bytes, undefined, 400, 'linkage_signature_missing'],
    ['a signature by a key the operator did not configure', forged.bytes, forged.signature, 422, 'linkage_signature_invalid'],
    ['a line changed after signing', tampered, good.signature, 422, 'linkage_signature_invalid'],
    ['a signature that is not base64', good.bytes, '%%%', 422, 'linkage_signature_invalid'],
    ['a file above jpki.linkageMaxBytes', big, good.signature, 413, 'linkage_file_too_large'],
    ['a header of another version', badHeader, signLinkageBytes(badHeader, ctx.signer.privateKey), 422, 'linkage_file_malformed'],
    ['a file whose issuer key is no trust anchor', foreign, signLinkageBytes(foreign, ctx.signer.privateKey), 422, 'linkage_issuer_unknown'],
  ];
  for (const [name, bytes, sig, status, code] of cases) {
    const r = await importFile(ctx, bytes, sig);
    assert.is(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
    assert.is(r.body.code, code, name);
  }
  // Nothing was carried; without a token the route is closed.
  assert.is((await ctx.h.hub.mykeys.currentBinding(d.mykeyId))!.serial_hex, d.cert.serialHex);
  const anon = await http(ctx, '/v1/admin/linkage-imports', { method: 'POST', body: Buffer.from(good.bytes), headers: { 'mykey-linkage-signature': good.signature } });
  assert.is(anon.status, 401);
  // Every refusal is on record with its code.
  const runs = await http(ctx, '/v1/admin/linkage-imports', { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.ok(runs.body.some((x: { code: string }) => x.code === 'linkage_signature_invalid'));
  // The genuine file carries.
  const r = await importFile(ctx, good.bytes, good.signature);
  assert.equal(r.body.carried, [2]);
  // The operator sees the imports beside the revocation runs in the console, refusals with their code.
  const code = await runConsoleCli(['add-operator', 'ops', '--role', 'operator'], ctx.h.hub.db, { out: () => undefined, readPassword: async () => PASSWORD });
  assert.is(code, 0);
  const c = client({ app: ctx.h.hub.app }, undefined, ctx.h.hub.addresses.http);
  await c.get('/console/login');
  assert.is((await c.post('/console/login', { name: 'ops', password: PASSWORD })).status, 303);
  const page = await c.get('/console/revocations');
  assert.is(page.status, 200);
  const table = page.text.slice(page.text.indexOf('data-testid="linkage-imports"'));
  assert.match(table, 'linkage_signature_invalid');
  assert.match(table, 'linkage_file_too_large');
});

test('refused line by line, each with its code, while the good lines are carried', async (ctx) => {
  const ok1 = await holder(ctx, 'LIB-0060');
  const lost = await holder(ctx, 'LIB-0061');
  const mismatch = await holder(ctx, 'LIB-0062');
  const taken = await holder(ctx, 'LIB-0063');
  const untrusted = await holder(ctx, 'LIB-0064');
  const tamperedCert = await holder(ctx, 'LIB-0065');
  const ok1Next = await renewCertificate(ctx.caDir, ok1.cert);
  // A lost card: revoked for keyCompromise (its MyKey ID suspended), then "renewed".
  await ctx.caDir.revoke(lost.cert.serialHex, 'keyCompromise');
  await ctx.h.hub.crlManager.fetchAndApply(ctx.crlUrl);
  const lostNext = await ctx.caDir.issue();
  const mismatchNext = await ctx.caDir.issue();
  const otherNext = await ctx.caDir.issue();
  // The renewed certificate of `taken` was already registered as a MyKey ID of its own.
  const takenNext = await ctx.caDir.issue();
  assert.is((await register(ctx, takenNext)).status, 201);
  // A certificate from a CA the hub does not trust (same profile, another CA).
  const stranger = await createTestCa({ ouSuffix: ' X' });
  const { issueUserAuthCert } = await import('../../../provisioning/test-ca/ca.ts');
  const untrustedNext = await issueUserAuthCert(stranger);
  // A genuine certificate with one byte of its signature changed.
  const genuine = await ctx.caDir.issue();
  const broken = new Uint8Array(genuine.certDer);
  broken[broken.length - 5] ^= 0x01;

  const records: Linkage[] = [
    { old: ok1.cert, next: ok1Next }, // line 2: carried
    { old: { serialHex: '7f0000000000000000000000000001' }, next: otherNext }, // 3: bound to no MyKey ID
    { old: lost.cert, next: lostNext }, // 4: a loss is never carried
    { old: mismatch.cert, next: { serialHex: otherNext.serialHex, certDer: mismatchNext.certDer } }, // 5: serial is not the certificate's
    { old: taken.cert, next: takenNext }, // 6: new certificate bound elsewhere
    { old: untrusted.cert, next: untrustedNext }, // 7: chains to no anchor
    { old: tamperedCert.cert, next: { serialHex: genuine.serialHex, certDer: broken } }, // 8: signature of the certificate broken
    { old: ok1.cert, next: ok1Next }, // 9: the same old certificate twice
  ];
  const file = signed(ctx, records);
  // One more line that is not a record at all (the count in the header follows).
  const text = Buffer.from(file.bytes).toString('utf8').split('\n');
  const header = JSON.parse(text[0]);
  header.records += 1;
  const withJunk = new Uint8Array(Buffer.from([JSON.stringify(header), ...text.slice(1, -1), '{"old":"zz"}', ''].join('\n')));
  const { signLinkageBytes } = await import('../../../provisioning/test-ca/linkage-writer.ts');
  const r = await importFile(ctx, withJunk, signLinkageBytes(withJunk, ctx.signer.privateKey));
  assert.is(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.carried, [2]);
  const codes = Object.fromEntries(r.body.refused.map((x: { line: number; code: string }) => [x.line, x.code]));
  assert.equal(codes, {
    3: 'linkage_old_unknown',
    4: 'linkage_old_lost',
    5: 'linkage_serial_mismatch',
    6: 'linkage_new_cert_bound',
    7: 'linkage_new_cert_untrusted',
    8: 'linkage_new_cert_untrusted',
    9: 'linkage_line_duplicate',
    10: 'linkage_line_malformed',
  });
  assert.equal(statusOf(ctx, lost.mykeyId), { status: 'suspended', status_reason: 'keyCompromise' });
  for (const x of [mismatch, taken, untrusted, tamperedCert]) assert.is((await ctx.h.hub.mykeys.currentBinding(x.mykeyId))!.serial_hex, x.cert.serialHex);
  await sync(ctx);
  assert.is(touch(ctx, ok1Next), 'LIB-0060');
});

test('refused line by line: an expired or revoked new certificate, an old one carried elsewhere, an invalidated MyKey ID', async (ctx) => {
  const expiring = await holder(ctx, 'LIB-0070');
  const revoking = await holder(ctx, 'LIB-0071');
  const moved = await holder(ctx, 'LIB-0072');
  const gone = await holder(ctx, 'LIB-0073');
  const expired = await ctx.caDir.issue({ notBefore: new Date(Date.now() - 10 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
  const revoked = await ctx.caDir.issue();
  await ctx.caDir.revoke(revoked.serialHex, 'keyCompromise');
  await ctx.h.hub.crlManager.fetchAndApply(ctx.crlUrl);
  // `moved` was carried to one renewal by a first file; a second file names another.
  const movedNext = await renewCertificate(ctx.caDir, moved.cert);
  const first = signed(ctx, [{ old: moved.cert, next: movedNext }]);
  assert.equal((await importFile(ctx, first.bytes, first.signature)).body.carried, [2]);
  const elsewhere = await ctx.caDir.issue();
  // `gone` was carried over, then its holder invalidated the MyKey ID.
  const goneNext = await renewCertificate(ctx.caDir, gone.cert);
  const second = signed(ctx, [{ old: gone.cert, next: goneNext }]);
  assert.equal((await importFile(ctx, second.bytes, second.signature)).body.carried, [2]);
  await ctx.h.hub.mykeys.invalidate(gone.mykeyId, Date.now());
  const goneOther = await ctx.caDir.issue();

  const file = signed(ctx, [
    { old: expiring.cert, next: expired }, // 2
    { old: revoking.cert, next: revoked }, // 3
    { old: moved.cert, next: elsewhere }, // 4
    { old: gone.cert, next: goneOther }, // 5
    { old: moved.cert, next: movedNext }, // 6: the old certificate of line 4 again
  ]);
  const r = await importFile(ctx, file.bytes, file.signature);
  assert.is(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.carried, []);
  assert.equal(r.body.alreadyCarried, []);
  const codes = Object.fromEntries(r.body.refused.map((x: { line: number; code: string }) => [x.line, x.code]));
  assert.equal(codes, { 2: 'linkage_new_cert_invalid', 3: 'linkage_new_cert_revoked', 4: 'linkage_old_superseded', 5: 'linkage_mykey_invalidated', 6: 'linkage_line_duplicate' });
  assert.match(r.body.refused[0].message, 'cert_expired');
  assert.is((await ctx.h.hub.mykeys.currentBinding(moved.mykeyId))!.serial_hex, movedNext.serialHex);
});

test.run();
