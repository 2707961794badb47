// A CRL run matches only what is new since the previous CRL of its issuer key (entries not on it,
// looked up through the bindings index), plus every binding made since the previous run: a
// registration that raced a run, checked against the CRL before it, is still caught by the next one.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeCrl, type CrlWriterEntry } from '../../../provisioning/test-ca/crl-writer.ts';
import type { CertIdentity } from '../../../hub/store/mykey-repo.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';

const test = suite<{ h: TestHub; number: bigint }>('crl-incremental', { number: 1n } as never);

test.before(async (ctx) => {
  ctx.h = await startTestHub();
});
test.after(async (ctx) => ctx.h.close());

function certOf(h: TestHub, serialHex: string): CertIdentity {
  const a = h.hub.anchors[0];
  return { fingerprint: `fp-${serialHex}`, issuerKey: a.issuerKey, issuerKeyId: a.keyId, serialHex, notAfter: Date.UTC(2030, 0, 1) };
}

async function crl(ctx: { h: TestHub; number: bigint }, serials: string[]): Promise<Uint8Array> {
  const n = ctx.number++;
  const entries: CrlWriterEntry[] = serials.map((s) => ({ serial: BigInt(`0x${s}`), revokedAt: new Date(Date.now() - 60_000), reason: 'keyCompromise' }));
  return writeCrl({
    issuerNameDer: ctx.h.ca.nameDer,
    signingKey: ctx.h.ca.keyPair.privateKey,
    thisUpdate: new Date(Date.now() - 30_000 + Number(n) * 10),
    crlNumber: n,
    authorityKeyId: ctx.h.ca.subjectKeyId,
    entries,
  });
}

const status = async (h: TestHub, id: string) => (await h.hub.mykeys.get(id))?.status;

test('a first CRL is matched against every binding, the next ones only on what is new', async (ctx) => {
  const { h } = ctx;
  const serials = Array.from({ length: 3000 }, (_, i) => (0x4000_0000 + i).toString(16));
  await h.hub.mykeys.bulkCreate(
    serials.map((s, i) => ({ id: `INC${i}`, cert: certOf(h, s) })),
    Date.now(),
  );
  const first = await h.hub.crlManager.applyAsync(await crl(ctx, ['7fff0001', serials[10], serials[2500]]), 'first');
  assert.is(first.matched, 2);
  assert.is(first.newlySuspended, 2);
  assert.is(await status(h, 'INC10'), 'suspended');
  // The same entries and two new ones: only the new ones are matched.
  const second = await h.hub.crlManager.applyAsync(await crl(ctx, ['7fff0001', serials[10], serials[2500], serials[7], serials[2999]]), 'second');
  assert.is(second.matched, 2);
  assert.is(await status(h, 'INC7'), 'suspended');
  assert.is(await status(h, 'INC2999'), 'suspended');
  assert.is(await status(h, 'INC8'), 'active');
  // Nothing new: nothing matched.
  const third = await h.hub.crlManager.applyAsync(await crl(ctx, ['7fff0001', serials[10], serials[2500], serials[7], serials[2999]]), 'third');
  assert.is(third.matched, 0);
  assert.is((await h.hub.mykeys.counts()).suspended, 4);
});

test('a certificate bound after a run, whose serial that CRL already listed, is caught by the next run', async (ctx) => {
  const { h } = ctx;
  // The race: the CRL listing it is applied while the registration (checked against the CRL before) commits.
  const late = '7fff0001';
  await h.hub.mykeys.bulkCreate([{ id: 'LATE1', cert: certOf(h, late) }], Date.now());
  const run = await h.hub.crlManager.applyAsync(await crl(ctx, ['7fff0001']), 'after the race');
  assert.is(run.matched, 1);
  assert.is(await status(h, 'LATE1'), 'suspended');
});

test('the synchronous apply and the chunked one agree, and a restart keeps matching incrementally', async (ctx) => {
  const { h } = ctx;
  const serials = Array.from({ length: 2500 }, (_, i) => (0x5000_0000 + i).toString(16));
  await h.hub.mykeys.bulkCreate(
    serials.map((s, i) => ({ id: `SYN${i}`, cert: certOf(h, s) })),
    Date.now(),
  );
  // More revocations than one write chunk holds (chunks are sized to a few milliseconds): several short transactions.
  const listed = ['7fff0001', ...serials.slice(0, 2100)];
  const r = await h.hub.crlManager.apply(await crl(ctx, listed), 'sync');
  assert.is(r.matched, 2100);
  assert.is(r.newlySuspended, 2100);
  assert.is((await h.hub.store.sql.get<{ n: number }>("SELECT COUNT(*) AS n FROM cert_bindings WHERE serial_hex LIKE '5%' AND revoked_at IS NOT NULL"))!.n, 2100);
  // The mark covers every binding so far.
  const mark = await h.hub.revocations.mark(h.hub.anchors[0].keyId);
  assert.is(mark?.binding_mark, await h.hub.mykeys.maxBindingId());
  // The counts kept by triggers agree with the tables.
  const counted = Object.fromEntries((await h.hub.store.sql.all<{ status: string; n: number }>('SELECT status, COUNT(*) AS n FROM mykey_ids GROUP BY status')).map((x) => [x.status, x.n]));
  const kept = await h.hub.mykeys.counts();
  assert.is(kept.active, counted.active ?? 0);
  assert.is(kept.suspended, counted.suspended ?? 0);
});

test.run();
