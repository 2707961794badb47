// A CRL run's chunk of suspensions is written set-wise (hub/store/mykey-repo.ts applyRevocations, the
// links' lifecycle listener in hub/links/change-log.ts): a few statements a chunk instead of ten a
// suspension. These tests pin the rows it leaves to what the hits written one after another leave: the
// same bindings marked, MyKey IDs suspended and events, and the same change-log entries (seqs, order,
// JSON), MQTT outbox rows and webhook notices. Run against both stores: SQLite (a file) and PostgreSQL
// (a fresh database on a throwaway cluster, test/helpers/pg.ts).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLinks, type Links } from '../../../hub/links/links.ts';
import type { CertIdentity, RevocationHit } from '../../../hub/store/mykey-repo.ts';
import { openStore, type Store } from '../../../hub/store/store.ts';
import { MYKEY_ALPHABET } from '../../../shared/ids.ts';
import { LEGACY_KEY_SCHEME } from '../../../shared/sync.ts';
import { serviceLogTopic } from '../../../shared/topics.ts';
import { freshPgDatabase, havePostgres } from '../../helpers/pg.ts';

type Ctx = { store: Store; links: Links; dir: string };

const T0 = Date.UTC(2026, 10, 30, 9);
const T1 = T0 + 3_600_000;
let clock = T0;

const cert = (i: number): CertIdentity => ({
  fingerprint: `fp-${i}`,
  issuerKey: 'a'.repeat(32),
  issuerKeyId: 'b'.repeat(40),
  serialHex: (0x1000 + i).toString(16),
  aki: 'b'.repeat(40),
  notAfter: Date.UTC(2031, 0, 1),
});
/** The i-th MyKey ID of a block: 8 characters of MYKEY_ALPHABET. */
const mykeyId = (block: string, i: number) => `${block}${[0, 1, 2, 3].map((d) => MYKEY_ALPHABET[Math.floor(i / MYKEY_ALPHABET.length ** d) % MYKEY_ALPHABET.length]).join('')}`;

function suspensions(name: string, open: (dir: string) => Promise<Store>) {
  const test = suite<Ctx>(`a chunk of suspensions written set-wise (${name})`);
  test.before.each(async (ctx) => {
    clock = T0;
    ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-suspensions-'));
    ctx.store = await open(ctx.dir);
    ctx.links = createLinks({ sql: ctx.store.sql, repo: ctx.store.links, mykeys: ctx.store.mykeys, now: () => clock });
  });
  test.after.each(async (ctx) => {
    await ctx.store.close();
    rmSync(ctx.dir, { recursive: true, force: true });
  });

  test('gives exactly the rows of the hits written one after another: links of several services and states, IDs already suspended or invalidated', async ({ store, links }) => {
    const { mykeys, sql } = store;
    // lib has a webhook, shop none; museum is still on the legacy derivation (its keys computed, not stored).
    await links.createService({ id: 'lib', name: 'Library', webhookUrl: 'https://lib.example/notify' });
    await links.createService({ id: 'museum', name: 'Museum' });
    await links.createService({ id: 'shop', name: 'Shop street' });
    await store.links.setKeyScheme('museum', LEGACY_KEY_SCHEME);

    const ID = {
      G: 'GGGG2222', // linked with all three services
      A: 'AAAA2222', // lib and shop
      B: 'BBBB2222', // lib, and shop where its link is already suspended
      C: 'CCCC2222', // its only link (shop) unlinked: suspended, nothing to append
      D: 'DDDD2222', // suspended by an earlier CRL: its binding already revoked
      H: 'HHHH2222', // suspended while its binding is not revoked: marked, not suspended again
      E: 'EEEE2222', // invalidated by its holder after the match: marked, never suspended
      F: 'FFFF2222', // a hit on a binding carried over before the match
      K: 'KKKK2222', // carried over between the match and the write: marked, stays active
    };
    const order = Object.values(ID);
    await mykeys.bulkCreate(
      order.map((id, i) => ({ id, cert: cert(i) })),
      T0,
    );
    const keys: Record<string, Record<string, string[]>> = { lib: {}, museum: {}, shop: {} };
    const link = async (serviceId: string, id: string) => {
      const r = await links.link({ serviceId, mykeyId: id, serviceUserId: `${serviceId}-${id}`, by: 'counter' });
      keys[serviceId][id] = r.entry!.set!.keys;
    };
    for (const s of ['lib', 'museum', 'shop']) await link(s, ID.G);
    for (const s of ['lib', 'shop']) await link(s, ID.A);
    for (const s of ['lib', 'shop']) await link(s, ID.B);
    await link('shop', ID.C);
    await link('lib', ID.D);
    await link('shop', ID.H);
    await link('lib', ID.E);
    await link('lib', ID.F);
    await link('shop', ID.K);

    const binding = async (id: string) => (await mykeys.currentBinding(id))!.id;
    const b = Object.fromEntries(await Promise.all(order.map(async (id) => [id, await binding(id)] as const)));
    await store.links.setLinkState('shop', ID.B, 'suspended');
    await links.unlink({ serviceId: 'shop', mykeyId: ID.C, by: 'service', reason: 'cancelled' });
    assert.is(await mykeys.applyRevocations([{ bindingId: b[ID.D], mykeyId: ID.D, state: 'current', revokedAt: T0 - 5000, reason: 'keyCompromise' }], T0), 1);
    await sql.run("UPDATE mykey_ids SET status = 'suspended', status_reason = 'superseded' WHERE id = ?", [ID.H]);
    await mykeys.invalidate(ID.E, T0);
    await mykeys.carryOver(ID.F, cert(20), T0);
    await mykeys.carryOver(ID.K, cert(21), T0);

    const before = {
      event: (await sql.get<{ n: number }>('SELECT COALESCE(MAX(seq), 0) AS n FROM mykey_events'))!.n,
      mqtt: (await sql.get<{ n: number }>('SELECT COALESCE(MAX(id), 0) AS n FROM mqtt_outbox'))!.n,
      webhook: (await sql.get<{ n: number }>('SELECT COALESCE(MAX(id), 0) AS n FROM webhook_outbox'))!.n,
      head: Object.fromEntries(await Promise.all(['lib', 'museum', 'shop'].map(async (s) => [s, await links.headSeq(s)] as const))),
    };
    clock = T1;
    const hit = (id: string, reason: string, revokedAt: number, state: RevocationHit['state'] = 'current'): RevocationHit => ({ bindingId: b[id], mykeyId: id, state, revokedAt, reason });
    const chunk = [
      hit(ID.G, 'keyCompromise', T0 + 1),
      hit(ID.A, 'cACompromise', T0 + 2),
      hit(ID.B, 'superseded', T0 + 3),
      hit(ID.C, 'affiliationChanged', T0 + 4),
      hit(ID.D, 'superseded', T0 + 5),
      hit(ID.H, 'keyCompromise', T0 + 6),
      hit(ID.E, 'keyCompromise', T0 + 7),
      hit(ID.F, 'superseded', T0 + 8, 'carried_over'),
      hit(ID.A, 'unspecified', T0 + 9), // the same binding again: its first hit counts
      hit(ID.K, 'keyCompromise', T0 + 10),
    ];
    assert.is(await mykeys.applyRevocations(chunk, T1), 4);

    // The bindings: each marked by its first hit; the one revoked earlier keeps its mark.
    const marks = await sql.all<{ id: number; revoked_at: number; revocation_reason: string }>(
      `SELECT id, revoked_at, revocation_reason FROM cert_bindings WHERE id IN (${order.map(() => '?').join(', ')}) ORDER BY id`,
      order.map((id) => b[id]),
    );
    assert.equal(
      marks.map((m) => [m.id, m.revoked_at, m.revocation_reason]),
      [
        [b[ID.G], T0 + 1, 'keyCompromise'],
        [b[ID.A], T0 + 2, 'cACompromise'],
        [b[ID.B], T0 + 3, 'superseded'],
        [b[ID.C], T0 + 4, 'affiliationChanged'],
        [b[ID.D], T0 - 5000, 'keyCompromise'],
        [b[ID.H], T0 + 6, 'keyCompromise'],
        [b[ID.E], T0 + 7, 'keyCompromise'],
        [b[ID.F], T0 + 8, 'superseded'],
        [b[ID.K], T0 + 10, 'keyCompromise'],
      ],
    );
    const statuses = Object.fromEntries(await Promise.all(order.map(async (id) => [id, await mykeys.get(id)] as const)));
    assert.equal(
      order.map((id) => [id, statuses[id]!.status, statuses[id]!.status_reason, statuses[id]!.status_changed_at]),
      [
        [ID.G, 'suspended', 'keyCompromise', T1],
        [ID.A, 'suspended', 'cACompromise', T1],
        [ID.B, 'suspended', 'superseded', T1],
        [ID.C, 'suspended', 'affiliationChanged', T1],
        [ID.D, 'suspended', 'keyCompromise', T0],
        [ID.H, 'suspended', 'superseded', statuses[ID.H]!.status_changed_at],
        [ID.E, 'invalidated', 'holder', T0],
        [ID.F, 'active', null, T0],
        [ID.K, 'active', null, T0],
      ],
    );
    assert.equal(
      (await mykeys.eventsAfter(before.event)).map((e) => [e.mykey_id, e.kind, e.reason, e.detail, e.at]),
      [
        [ID.G, 'suspended', 'keyCompromise', null, T1],
        [ID.A, 'suspended', 'cACompromise', null, T1],
        [ID.B, 'suspended', 'superseded', null, T1],
        [ID.C, 'suspended', 'affiliationChanged', null, T1],
      ],
    );

    // The change log: per MyKey ID in hit order, its services in id order; each service's seqs follow on.
    const at = new Date(T1).toISOString();
    const expected = [
      { s: 'lib', id: ID.G, reason: 'keyCompromise' },
      { s: 'museum', id: ID.G, reason: 'keyCompromise' },
      { s: 'shop', id: ID.G, reason: 'keyCompromise' },
      { s: 'lib', id: ID.A, reason: 'cACompromise' },
      { s: 'shop', id: ID.A, reason: 'cACompromise' },
      { s: 'lib', id: ID.B, reason: 'superseded' },
    ];
    const seqs = { ...before.head };
    const entries = expected.map((x) => {
      const seq = ++seqs[x.s];
      const entry = JSON.stringify({ seq, kind: 'suspend', at, remove: keys[x.s][x.id], reason: x.reason, ...(x.s === 'museum' ? {} : { keyScheme: 'scrypt-v3' }) });
      return { ...x, seq, entry };
    });
    assert.equal(
      await sql.all('SELECT topic, payload, created_at FROM mqtt_outbox WHERE id > ? ORDER BY id', [before.mqtt]),
      entries.map((x) => ({ topic: serviceLogTopic(x.s), payload: x.entry, created_at: T1 })),
    );
    assert.equal(
      await sql.all('SELECT service_id, seq, kind, mykey_id, service_user_id, by, entry, at FROM link_changes WHERE at = ? ORDER BY service_id, seq', [T1]),
      [...entries]
        .sort((x, y) => (x.s === y.s ? x.seq - y.seq : x.s < y.s ? -1 : 1))
        .map((x) => ({ service_id: x.s, seq: x.seq, kind: 'suspend', mykey_id: x.id, service_user_id: `${x.s}-${x.id}`, by: 'hub:revocation', entry: x.entry, at: T1 })),
    );
    assert.equal(seqs, { lib: before.head.lib + 3, museum: before.head.museum + 1, shop: before.head.shop + 2 });
    assert.equal(Object.fromEntries(await Promise.all(['lib', 'museum', 'shop'].map(async (s) => [s, await links.headSeq(s)] as const))), seqs);
    // Notices only where the service has a webhook.
    assert.equal(
      await sql.all('SELECT service_id, event, created_at, next_attempt_at, attempts, delivered_at FROM webhook_outbox WHERE id > ? ORDER BY id', [before.webhook]),
      entries
        .filter((x) => x.s === 'lib')
        .map((x) => ({
          service_id: 'lib',
          event: JSON.stringify({ id: `lib-${x.seq}`, type: 'link.suspended', serviceId: 'lib', serviceUserId: `lib-${x.id}`, reason: x.reason, seq: x.seq, at }),
          created_at: T1,
          next_attempt_at: T1,
          attempts: 0,
          delivered_at: null,
        })),
    );
    const states = await sql.all<{ service_id: string; mykey_id: string; state: string }>('SELECT service_id, mykey_id, state FROM links ORDER BY service_id, mykey_id');
    assert.equal(
      states.map((l) => `${l.service_id}/${l.mykey_id}/${l.state}`),
      [
        `lib/${ID.A}/suspended`,
        `lib/${ID.B}/suspended`,
        `lib/${ID.D}/suspended`,
        `lib/${ID.F}/active`,
        `lib/${ID.G}/suspended`,
        `museum/${ID.G}/suspended`,
        `shop/${ID.A}/suspended`,
        `shop/${ID.B}/suspended`,
        `shop/${ID.G}/suspended`,
        `shop/${ID.H}/active`,
        `shop/${ID.K}/active`,
      ],
    );

    // Written again (a run retried), the chunk changes nothing.
    clock = T1 + 1000;
    assert.is(await mykeys.applyRevocations(chunk, T1 + 1000), 0);
    assert.is((await sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM mqtt_outbox WHERE id > ?', [before.mqtt]))!.n, entries.length);
    assert.is((await mykeys.eventsAfter(before.event)).length, 4);
  });

  test('a chunk longer than the largest statement of the set path suspends every MyKey ID, its entries in hit order without a gap', async ({ store, links }) => {
    const { mykeys, sql } = store;
    await links.createService({ id: 'museum', name: 'Museum' });
    await store.links.setKeyScheme('museum', LEGACY_KEY_SCHEME);
    const N = 1100; // past the 1,024 rows of one statement
    const ids = Array.from({ length: N }, (_, i) => mykeyId('MANY', i));
    await mykeys.bulkCreate(
      ids.map((id, i) => ({ id, cert: cert(100 + i) })),
      T0,
    );
    await sql.tx(async () => {
      for (const id of ids) await store.links.upsertLink('museum', id, `u-${id}`, T0, 'import');
    });
    // Hits in reverse id order: entries follow the hits, not the ids.
    const hits: RevocationHit[] = [];
    for (const id of [...ids].reverse()) hits.push({ bindingId: (await mykeys.currentBinding(id))!.id, mykeyId: id, state: 'current', revokedAt: T0, reason: 'superseded' });
    clock = T1;
    assert.is(await mykeys.applyRevocations(hits, T1), N);
    const rows = await sql.all<{ payload: string }>('SELECT payload FROM mqtt_outbox ORDER BY id');
    const log = rows.map((r) => JSON.parse(r.payload) as { seq: number; kind: string });
    const suspends = log.filter((e) => e.kind === 'suspend');
    assert.is(suspends.length, N);
    assert.equal(
      suspends.map((e) => e.seq),
      Array.from({ length: N }, (_, i) => i + 1),
    );
    const changes = await sql.all<{ mykey_id: string }>('SELECT mykey_id FROM link_changes WHERE service_id = ? ORDER BY seq', ['museum']);
    assert.equal(
      changes.map((c) => c.mykey_id),
      [...ids].reverse(),
    );
    assert.equal(await mykeys.counts(), { active: 0, suspended: N, invalidated: 0 });
    assert.equal(await store.links.linkCountsOf('museum'), { active: 0, suspended: N });
  });

  return test;
}

suspensions('SQLite', (dir) => openStore({ path: join(dir, 'hub.sqlite'), synchronous: 'NORMAL' }, dir)).run();
if (havePostgres) suspensions('PostgreSQL', async () => openStore({ path: '', synchronous: 'NORMAL', url: await freshPgDatabase() }, '')).run();
else console.log('skipped (PostgreSQL 15 not installed): a chunk of suspensions written set-wise (PostgreSQL)');
