// The repository contract, run against both stores: SQLite (a file) and PostgreSQL (a fresh database on
// a throwaway cluster, test/helpers/pg.ts). The same calls must give the same answers, keep the same
// counts (triggers), refuse the same things (unique keys, the append-only audit log) and roll back
// the same way (transactions, savepoints, a listener that throws inside a lifecycle change).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CertIdentity } from '../../../hub/store/mykey-repo.ts';
import { isUniqueViolation } from '../../../hub/store/sql.ts';
import { openStore, type Store } from '../../../hub/store/store.ts';
import { createWriteBatcher } from '../../../hub/store/write-batcher.ts';
import { freshPgDatabase, havePostgres } from '../../helpers/pg.ts';

type Ctx = { store: Store; dir: string };

const cert = (i: number, over: Partial<CertIdentity> = {}): CertIdentity => ({
  fingerprint: `fp-${i}`,
  issuerKey: 'a'.repeat(32),
  issuerKeyId: 'b'.repeat(40),
  serialHex: (0x1000 + i).toString(16),
  aki: 'b'.repeat(40),
  subjectCn: `holder ${i}`,
  notAfter: Date.UTC(2031, 0, 1),
  ...over,
});
let nextId = 0;
const candidate = () => `T${String(++nextId).padStart(7, '0')}`;

function contract(name: string, open: (dir: string) => Promise<Store>) {
  const test = suite<Ctx>(`store contract (${name})`);
  test.before.each(async (ctx) => {
    ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-contract-'));
    ctx.store = await open(ctx.dir);
  });
  test.after.each(async (ctx) => {
    await ctx.store.close();
    rmSync(ctx.dir, { recursive: true, force: true });
  });

  test('a certificate gets one MyKey ID; asking again returns it; counts follow every change', async ({ store }) => {
    const { mykeys } = store;
    const a = await mykeys.createOrGet(cert(1), candidate, 1000);
    assert.ok('row' in a && a.created);
    const again = await mykeys.createOrGet(cert(1), candidate, 2000);
    assert.ok('row' in again && !again.created && again.row.id === ('row' in a ? a.row.id : ''));
    const id = 'row' in a ? a.row.id : '';
    const row = (await mykeys.get(id))!;
    assert.equal(row, { id, status: 'active', status_reason: null, created_at: 1000, status_changed_at: 1000 });
    const b = (await mykeys.currentBinding(id))!;
    assert.is(typeof b.id, 'number');
    assert.equal(
      [b.state, b.serial_hex, b.issuer_key_id, b.cert_aki, b.subject_cn, b.not_after, b.revoked_at],
      ['current', '1001', 'b'.repeat(40), 'b'.repeat(40), 'holder 1', Date.UTC(2031, 0, 1), null],
    );
    assert.equal(await mykeys.currentCert(id), { issuerKey: 'a'.repeat(32), serialHex: '1001', aki: 'b'.repeat(40) });
    assert.is((await mykeys.liveBindingOfCert(cert(1)))?.mykey_id, id);
    assert.is((await mykeys.liveBindingBySerial('a'.repeat(32), '1001'))?.mykey_id, id);
    assert.is((await mykeys.bindingByFingerprint('fp-1'))?.mykey_id, id);
    assert.ok(await mykeys.isIdUsed(id));

    await mykeys.bulkCreate(
      [2, 3, 4].map((i) => ({ id: `B${i}`, cert: cert(i) })),
      3000,
    );
    await mykeys.carryOver('B2', cert(12), 4000);
    assert.equal(
      (await mykeys.bindingsOf('B2')).map((x) => x.state),
      ['carried_over', 'current'],
    );
    assert.ok('superseded' in (await mykeys.createOrGet(cert(2), candidate, 5000)), 'a carried-over certificate registers nothing');
    await mykeys.invalidate('B3', 5000);
    await mykeys.changeId('B4', 'B4NEW', 6000);
    assert.not.ok(await mykeys.get('B4'));
    assert.ok(await mykeys.isIdUsed('B4'), 'a retired id is never handed out again');
    try {
      await mykeys.changeId('B4NEW', id, 7000);
      assert.unreachable('an id in use is refused');
    } catch (e) {
      assert.is((e as Error).constructor.name, 'IdTakenError');
    }
    assert.equal(await mykeys.counts(), { active: 3, suspended: 0, invalidated: 1 });
    const events = await mykeys.eventsAfter(0);
    assert.equal(
      events.map((e) => e.kind),
      ['created', 'created', 'created', 'created', 'carried_over', 'invalidated', 'id_changed'],
    );
    assert.is(JSON.parse(events.at(-1)!.detail!).from, 'B4');
    assert.ok(events.every((e, i) => i === 0 || e.seq > events[i - 1].seq));
  });

  test('revocations mark bindings, suspend current ones once, and a CRL run finds them by serial and by page', async ({ store }) => {
    const { mykeys, revocations } = store;
    await mykeys.bulkCreate(
      [1, 2, 3].map((i) => ({ id: `R${i}`, cert: cert(i) })),
      1000,
    );
    const page = await mykeys.unrevokedOfKeyAfter('b'.repeat(40), 0, 2);
    assert.equal(
      page.map((b) => b.mykey_id),
      ['R1', 'R2'],
    );
    assert.equal(
      (await mykeys.unrevokedBySerial('a'.repeat(32), 'b'.repeat(40), '1002')).map((b) => b.mykey_id),
      ['R2'],
    );
    // A batch of a CRL's serials in one statement: those bound, each with its serial; a short batch, an empty one.
    const some = ['1003', 'ffff', '1001', ...Array.from({ length: 61 }, (_, i) => `9${i}`)];
    for (const withUnknownKey of [true, false]) {
      const rows = await mykeys.unrevokedBySerials('a'.repeat(32), 'b'.repeat(40), some, withUnknownKey);
      assert.equal(rows.map((b) => [b.mykey_id, b.serial_hex]).sort(), [
        ['R1', '1001'],
        ['R3', '1003'],
      ]);
      assert.equal(
        (await mykeys.unrevokedBySerials('a'.repeat(32), 'b'.repeat(40), ['1002'], withUnknownKey)).map((b) => b.mykey_id),
        ['R2'],
      );
    }
    assert.equal(await mykeys.unrevokedBySerials('a'.repeat(32), 'b'.repeat(40), []), []);
    const b2 = (await mykeys.currentBinding('R2'))!;
    const hits = [{ bindingId: b2.id, mykeyId: 'R2', state: 'current' as const, revokedAt: 900, reason: 'keyCompromise' }];
    assert.is(await mykeys.applyRevocations(hits, 2000), 1);
    assert.is(await mykeys.applyRevocations(hits, 2000), 0, 'marking twice changes nothing');
    assert.equal((await mykeys.get('R2'))!.status, 'suspended');
    assert.equal(await mykeys.unrevokedBySerial('a'.repeat(32), 'b'.repeat(40), '1002'), []);
    assert.is(await mykeys.maxBindingId(), (await mykeys.currentBinding('R3'))!.id);
    assert.equal(await mykeys.counts(), { active: 2, suspended: 1, invalidated: 0 });

    const state = { issuer_key: 'k1', crl_number: '7', this_update: 100, next_update: 200, entries: 3, source: 's', file: '/f', applied_at: 300 };
    await revocations.saveApplied(state, { issuer_key: 'k1', this_update: 100, crl_number: '7', binding_mark: 3 });
    await revocations.saveApplied({ ...state, crl_number: '8', this_update: 150 }, { issuer_key: 'k1', this_update: 150, crl_number: '8', binding_mark: 4 });
    assert.equal(await revocations.state('k1'), { ...state, crl_number: '8', this_update: 150 });
    assert.equal(await revocations.mark('k1'), { issuer_key: 'k1', this_update: 150, crl_number: '8', binding_mark: 4 });
    const runId = await revocations.recordRun({ source: 's', started_at: 1, finished_at: 2, ok: 1, crl_number: '8', entries: 3, matched: 1, newly_suspended: 1, duration_ms: 5, error: null });
    assert.is(typeof runId, 'number');
    assert.equal(
      (await revocations.recentRuns()).map((r) => [r.id, r.ok, r.code, r.warning]),
      [[runId, 1, null, null]],
    );
    await revocations.dropState('k1');
    assert.equal(await revocations.states(), []);
  });

  test('links, the change log, outboxes and trigger-kept counts; secrets round-trip as bytes', async ({ store }) => {
    const { links } = store;
    const secret = randomBytes(32);
    await links.insertService({ id: 'lib', name: 'Library', sync_secret: secret, webhook_url: 'https://x.example/h', webhook_secret: randomBytes(32), require_holder_proof: 1, created_at: 1 });
    const s = (await links.service('lib'))!;
    assert.ok(Buffer.isBuffer(s.sync_secret) && s.sync_secret.equals(secret));
    assert.equal([s.status, s.head_seq, s.key_scheme, s.require_holder_proof], ['active', 0, 'hmac-sha256', 1]);
    assert.is(await links.nextSeq('lib'), 1);
    assert.is(await links.nextSeq('lib'), 2);
    for (let i = 0; i < 5; i++) await links.upsertLink('lib', `M${i}`, `U${i}`, 10, 'test');
    await links.upsertLink('lib', 'M0', 'U0b', 11, 'test');
    await links.setLinkState('lib', 'M1', 'suspended');
    await links.deleteLink('lib', 'M2');
    await links.renameMyKey('M3', 'M3b');
    assert.equal(await links.linkCountsOf('lib'), { active: 3, suspended: 1 });
    assert.equal((await links.activeLinksOfService('lib')).map((l) => l.mykey_id).sort(), ['M0', 'M3b', 'M4']);
    assert.is((await links.linkByUser('lib', 'U0b'))?.mykey_id, 'M0');
    await assertRefused(() => links.upsertLink('lib', 'M9', 'U4', 12, 'test'), 'a service ID is linked once per service');

    await links.insertChange({ service_id: 'lib', seq: 1, kind: 'link', mykey_id: 'M0', service_user_id: 'U0', by: 't', entry: '{"seq":1}', at: 1 });
    await links.insertChange({ service_id: 'lib', seq: 2, kind: 'link', mykey_id: 'M1', service_user_id: 'U1', by: 't', entry: '{"seq":2}', at: 2 });
    assert.equal(await links.changesAfter('lib', 0, 10), ['{"seq":1}', '{"seq":2}']);
    await links.insertMqtt('t/1', 'a', 1);
    await links.insertMqtt('t/1', 'b', 2);
    const pending = await links.pendingMqtt();
    assert.equal(
      pending.map((p) => p.payload),
      ['a', 'b'],
    );
    await links.deleteMqttMany(pending.map((p) => p.id));
    assert.equal(await links.pendingMqtt(), []);

    const ids = [await links.insertWebhook('lib', 'n1', 100), await links.insertWebhook('lib', 'n2', 100)];
    assert.equal(
      (await links.dueWebhooks(100)).map((w) => w.id),
      [ids[0]],
      'only the oldest notice of a service is due',
    );
    await links.webhooksFailed([ids[0]], 500, 'down');
    assert.equal(await links.dueWebhooks(100), []);
    await links.webhooksDelivered(ids, 200);
    assert.equal(await links.webhookHealth('lib'), { pending: 0, oldest: null, last_error: null, delivered: 2 });
    assert.is(await links.pruneDelivered(201), 2);
    assert.is((await links.webhookHealth('lib')).delivered, 2, 'the delivered count outlives the pruned rows');

    await links.insertKey('lib', 'scrypt-v3', 'mykey:M0', 'k0');
    await links.insertKey('lib', 'scrypt-v3', 'mykey:M0', 'other'); // kept: the first key stands
    assert.is(await links.storedKey('lib', 'scrypt-v3', 'mykey:M0'), 'k0');
    await links.insertCredential('cred_1', 'lib', 'pos', 'hash', 5);
    assert.ok(await links.revokeCredential('lib', 'cred_1', 6));
    assert.not.ok(await links.revokeCredential('lib', 'cred_1', 7));
  });

  test('devices: enrollment conflicts, revocation, status and the derived state, filtered pages', async ({ store }) => {
    const { devices } = store;
    const rec = (edgeId: string, serviceId: string, fp: string) => ({ edgeId, serviceId, certSerial: fp, certFingerprint: fp, notAfter: 9e12 });
    assert.is(await devices.enroll(rec('edge-1', 'lib', 'f1'), 1), undefined);
    assert.is(await devices.enroll(rec('edge-1', 'museum', 'f2'), 2), 'edge_enrolled_elsewhere');
    assert.is(await devices.enroll(rec('edge-1', 'lib', 'f3'), 3), undefined, 'a re-enrollment supersedes');
    assert.ok(await devices.isCertRevoked('f1'));
    assert.is(await devices.enroll(rec('edge-2', 'lib', 'f4'), 4), undefined);
    await devices.recordStatus('edge-1', { online: true, appliedSeq: 5, version: '1.2.0', health: 'degraded', lag: 2, at: 10 }, true);
    await devices.recordStatus('edge-2', { online: true, appliedSeq: 7, version: '1.10.0', health: 'ok', lag: 0, at: 11 }, true);
    assert.is((await devices.get('edge-1'))!.state, 'degraded');
    assert.equal(await devices.lagHistory('edge-1'), [{ at: 10, applied_seq: 5, lag: 2 }]);
    assert.equal(await devices.versions(), [
      { version: '1.10.0', n: 1 },
      { version: '1.2.0', n: 1 },
    ]);
    assert.equal(await devices.lagSummary(), { behind: 1, max: 2 });
    assert.ok(await devices.revoke('edge-2', 'stolen', 20));
    assert.not.ok(await devices.revoke('edge-2', 'again', 21));
    await devices.recordStatus('edge-2', { online: true, appliedSeq: 9, version: '1.10.0', health: 'ok', lag: 0, at: 22 }, false);
    const gone = (await devices.get('edge-2'))!;
    assert.equal([gone.status, gone.state, gone.online, gone.applied_seq], ['revoked', 'revoked', 0, 7], 'a revoked edge records no status');
    const counts = await devices.stateCounts();
    assert.equal([counts.degraded, counts.revoked, counts.ok], [1, 1, 0]);
    assert.equal(await devices.counts(), { active: 1, revoked: 1, online: 1 });
    const page = await devices.page({ serviceId: 'lib', state: 'all', search: 'edge_', sort: 'version', desc: true, limit: 1 });
    assert.is(page.total, 0, 'the search escapes LIKE wildcards');
    const all = await devices.page({ state: 'all', sort: 'last_seen', desc: true, limit: 1 });
    assert.equal([all.total, all.rows[0].edge_id], [2, 'edge-2']);
    await devices.markOffline('edge-1', 30);
    assert.is((await devices.get('edge-1'))!.state, 'offline');
  });

  test('console: counters in one transaction, sessions, one claim per token, an append-only audit log', async ({ store }) => {
    const c = store.console;
    await store.links.insertService({ id: 'lib', name: 'Library', sync_secret: randomBytes(32), webhook_url: null, webhook_secret: null, require_holder_proof: 1, created_at: 1 });
    await c.insertOperator({ name: 'ops', role: 'operator', serviceId: null, passwordHash: 'h', at: 1 });
    await c.atomically(async () => {
      await c.saveFailure({ kind: 'address', key: '::1', failures: 1, window_start: 5, locked_until: null, strikes: 0 });
      await c.saveFailure({ kind: 'address', key: '::1', failures: 2, window_start: 5, locked_until: 99, strikes: 1 });
    });
    assert.equal(await c.failure('address', '::1'), { kind: 'address', key: '::1', failures: 2, window_start: 5, locked_until: 99, strikes: 1 });
    await c.insertSession({ id_hash: 'h1', operator: 'ops', csrf_token: 'x', created_at: 1, last_seen_at: 1, expires_at: 10 });
    assert.is(await c.purgeSessions(10), 1);
    await c.insertToken({ id: 't1', secret_hash: 's', service_id: 'lib', edge_id: 'edge-1', created_by: 'ops', created_at: 1, expires_at: 100 });
    const claims = await Promise.all([c.claimToken('t1', 50), c.claimToken('t1', 50), c.claimToken('t1', 50)]);
    assert.equal(claims.filter(Boolean).length, 1, 'a token is claimed once');
    const auditId = await c.audit({ at: 1, actor: 'ops', action: 'device.revoke', service_id: 'lib', detail: { why: 'x' } });
    await c.audit({ at: 2, actor: 'ops', action: 'devicex', owner_service_id: 'lib' });
    assert.equal(
      (await c.auditLog({ action: 'device' })).map((r) => r.id),
      [auditId],
      'a family is a prefix up to a dot',
    );
    assert.equal((await c.auditLog({ serviceId: 'lib' })).length, 2, 'a service sees what concerns it');
    await assertRefused(() => store.sql.run('UPDATE audit_log SET actor = ?', ['someone']), 'audit entries are never changed', /append-only/);
    await assertRefused(() => store.sql.run('DELETE FROM audit_log'), 'audit entries are never removed', /append-only/);
  });

  test('releases and rollouts', async ({ store }) => {
    const r = store.releases;
    assert.ok(await r.insertRelease({ version: '1.0.0', signed: '{}', key_id: 'k', digest: 'd', size: 10, services: '["*"]', uploaded_at: 1 }));
    assert.not.ok(await r.insertRelease({ version: '1.0.0', signed: '{}', key_id: 'k', digest: 'd', size: 10, services: '["*"]', uploaded_at: 2 }));
    const id = await r.insertRollout({ version: '1.0.0', service_id: null, percent: 50, edges: null, max_failures: 1, now: 3 });
    assert.is((await r.rollout(id))!.state, 'active');
    await r.upsertEdge({ edge_id: 'e', running: '0.9.0', version: '1.0.0', rollout_id: id, state: 'failed', code: 'x', reason: null, updated_at: 4 });
    assert.is(await r.failures(id), 1);
    assert.ok(await r.setRolloutState(id, 'active', 'halted', 'too many', 5));
    assert.not.ok(await r.setRolloutState(id, 'active', 'halted', 'again', 6));
  });

  test('a transaction rolls back whole; a savepoint alone; a lifecycle listener that throws undoes its change', async ({ store }) => {
    const { sql, mykeys, links } = store;
    await links.insertService({ id: 'lib', name: 'Library', sync_secret: randomBytes(32), webhook_url: null, webhook_secret: null, require_holder_proof: 1, created_at: 1 });
    await assertRefused(
      () =>
        sql.tx(async () => {
          await links.nextSeq('lib');
          throw new Error('boom');
        }),
      'the error passes through',
      /boom/,
    );
    assert.is((await links.service('lib'))!.head_seq, 0, 'nothing of a failed transaction stays');
    await sql.tx(async () => {
      await links.nextSeq('lib');
      await sql.tx(() => links.nextSeq('lib')).then(() => undefined);
      await sql
        .tx(async () => {
          await links.nextSeq('lib');
          throw new Error('inner');
        })
        .catch(() => undefined);
    });
    assert.is((await links.service('lib'))!.head_seq, 2, 'a failed savepoint rolls back alone');

    let fail = true;
    mykeys.onLifecycle(async (e) => {
      await links.nextSeq('lib');
      if (fail && e.kind === 'created') throw new Error('listener');
    });
    await assertRefused(() => mykeys.createOrGet(cert(50), candidate, 1), 'the listener error passes through', /listener/);
    assert.is(await mykeys.bindingByFingerprint('fp-50'), undefined);
    assert.is((await links.service('lib'))!.head_seq, 2);
    fail = false;
    assert.ok('row' in (await mykeys.createOrGet(cert(50), candidate, 1)));
    assert.is((await links.service('lib'))!.head_seq, 3);
  });

  test('the write batcher commits a burst together and answers each write alone', async ({ store }) => {
    const batcher = createWriteBatcher(store.sql);
    const writes = Array.from({ length: 40 }, (_, i) => batcher.write(() => store.mykeys.createOrGet(cert(100 + i), candidate, 1)));
    const dup = batcher.write(() => store.mykeys.bulkCreate([{ id: 'DUP', cert: cert(100) }], 1));
    const results = await Promise.all(writes);
    assert.ok(results.every((r) => 'row' in r && r.created));
    await dup.then(
      () => assert.unreachable('a certificate already bound fails its own write'),
      (e) => assert.ok(isUniqueViolation(e), String(e)),
    );
    assert.is((await store.mykeys.counts()).active, 40);
  });

  test('concurrent registrations of one certificate make one MyKey ID', async ({ store }) => {
    const rs = await Promise.all(Array.from({ length: 8 }, () => store.mykeys.createOrGet(cert(200), candidate, 1)));
    const ids = new Set(rs.map((r) => ('row' in r ? r.row.id : '')));
    assert.is(ids.size, 1);
    assert.is(rs.filter((r) => 'row' in r && r.created).length, 1);
  });

  return test;
}

async function assertRefused(fn: () => Promise<unknown>, what: string, message?: RegExp): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (message) assert.match(String((e as Error).message), message);
    return;
  }
  assert.unreachable(what);
}

contract('SQLite', (dir) => openStore({ path: join(dir, 'hub.sqlite'), synchronous: 'NORMAL' }, dir)).run();
if (havePostgres) contract('PostgreSQL', async () => openStore({ path: '', synchronous: 'NORMAL', url: await freshPgDatabase() }, '')).run();
else console.log('skipped (PostgreSQL 15 not installed): store contract (PostgreSQL)');
