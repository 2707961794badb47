// Repository of MyKey IDs and the certificates bound to them. Every method that changes state runs
// in one transaction and appends its lifecycle event in the same transaction.
import type { CertRef } from '../../shared/cert-identity.ts';
import type { Db } from './db.ts';
import { listStatement, repeated, single } from './list-statements.ts';
import { isUniqueViolation, sqlOf, type Dialect, type Sql } from './sql.ts';

export type MyKeyStatus = 'active' | 'suspended' | 'invalidated';
export type BindingState = 'current' | 'carried_over' | 'ended';

export interface MyKeyRow {
  id: string;
  status: MyKeyStatus;
  status_reason: string | null;
  created_at: number;
  status_changed_at: number;
}

export interface BindingRow {
  id: number;
  mykey_id: string;
  state: BindingState;
  fingerprint: string;
  issuer_key: string;
  /** The issuing anchor's key id (TrustAnchor.keyId); '' for a row bound before it was recorded and not yet filled in. */
  issuer_key_id: string;
  serial_hex: string;
  /** The certificate's authorityKeyIdentifier keyIdentifier (hex); '' none; null not yet known (see schema version 3). */
  cert_aki: string | null;
  subject_cn: string | null;
  not_after: number;
  bound_at: number;
  unbound_at: number | null;
  revoked_at: number | null;
  revocation_reason: string | null;
}

/** What the hub knows of a certificate when it binds it. */
export interface CertIdentity {
  fingerprint: string;
  /** Hash of the issuer Name (shared/cert-identity.ts): the name part of the identity edges see. */
  issuerKey: string;
  /** Key id of the trust anchor whose key signed the certificate (TrustAnchor.keyId). */
  issuerKeyId: string;
  serialHex: string;
  /** authorityKeyIdentifier keyIdentifier of the certificate (hex); absent or '' when it has none. */
  aki?: string;
  subjectCn?: string;
  notAfter: number;
}

export type MyKeyEventKind = 'created' | 'id_changed' | 'suspended' | 'resumed' | 'invalidated' | 'carried_over';

export interface MyKeyEvent {
  seq: number;
  mykey_id: string;
  kind: MyKeyEventKind;
  reason: string | null;
  detail: string | null;
  at: number;
}

/** A lifecycle change, as listeners see it inside the transaction that makes it. */
export interface MyKeyLifecycleEvent {
  mykeyId: string;
  kind: MyKeyEventKind;
  reason: string | null;
  at: number;
  /** id_changed: the old id. carried_over: the previous and the new certificate. */
  from?: string;
  previousCert?: CertRef;
  newCert?: CertRef;
  /** carried_over: made by a linkage record (hub/linkage), not the holder; `resumes`: a suspended MyKey ID resumes with it. */
  via?: 'linkage';
  resumes?: boolean;
  /** suspended: the MyKey ID's current certificate, the one revoked. */
  cert?: CertRef;
}

/**
 * Runs inside the transaction of the change: what it writes commits or rolls back with it. The
 * links feature uses this to append its change-log entries atomically with the lifecycle change.
 */
export type MyKeyLifecycleListener = (e: MyKeyLifecycleEvent) => Promise<void>;

/**
 * The same for the changes of one step of a transaction at once: all of one kind, in the order they
 * were made (a chunk of a CRL run's suspensions together; any other change alone).
 */
export type MyKeyLifecycleBatchListener = (events: readonly MyKeyLifecycleEvent[]) => Promise<void>;

/** A bound certificate found revoked by a CRL (hub/revocation/crl-match.ts): what applyRevocations writes. */
export interface RevocationHit {
  bindingId: number;
  mykeyId: string;
  /** The binding's state when it was matched. */
  state: BindingState;
  revokedAt: number;
  reason: string;
}

/** A binding as a CRL is matched against it. */
export interface UnrevokedBinding {
  id: number;
  mykey_id: string;
  state: BindingState;
  serial_hex: string;
}

/** Thrown inside a transaction when a candidate id collides; the caller retries with another. */
export class IdTakenError extends Error {}

/** The columns of a binding that name its certificate. */
type CertColumns = Pick<BindingRow, 'issuer_key' | 'serial_hex' | 'cert_aki' | 'issuer_key_id'>;
const CERT_COLUMNS = 'issuer_key, serial_hex, cert_aki, issuer_key_id';

/** A binding as its certificate identity needs it; an AKI not yet known falls back to the anchor key id it was filed under. */
function refOf(b: CertColumns): CertRef {
  return { issuerKey: b.issuer_key, serialHex: b.serial_hex, aki: b.cert_aki ?? b.issuer_key_id };
}

// Plain SQL for both engines (hub/store/sql.ts).
const Q = {
  getId: 'SELECT * FROM mykey_ids WHERE id = ?',
  idUsed: 'SELECT 1 AS used FROM mykey_ids WHERE id = ? UNION ALL SELECT 1 AS used FROM retired_mykey_ids WHERE id = ?',
  insertId: 'INSERT INTO mykey_ids (id, status, status_reason, created_at, status_changed_at) VALUES (?, ?, NULL, ?, ?)',
  setStatus: 'UPDATE mykey_ids SET status = ?, status_reason = ?, status_changed_at = ? WHERE id = ?',
  bindingByFingerprint: "SELECT * FROM cert_bindings WHERE fingerprint = ? ORDER BY (state = 'current') DESC, id DESC LIMIT 1",
  liveBindingsBySerial: "SELECT * FROM cert_bindings WHERE issuer_key = ? AND serial_hex = ? AND state <> 'ended' LIMIT 2",
  // The binding of this very certificate: same issuer name, same issuing key, same serial. A row
  // whose key id is not yet known ('') matches only the same certificate (fingerprint), so a serial
  // reused under another key never finds it. Two seeks of cert_bindings_live_serial (issuer name,
  // key id, serial): written with an OR, SQLite used the index for the issuer name alone and read
  // every binding of the issuer (a quarter of a second per registration at a million bindings).
  liveBindingOfCert: `SELECT * FROM (
       SELECT * FROM cert_bindings WHERE issuer_key = ? AND issuer_key_id = ? AND serial_hex = ? AND state <> 'ended'
       UNION ALL
       SELECT * FROM cert_bindings WHERE issuer_key = ? AND issuer_key_id = '' AND serial_hex = ? AND state <> 'ended' AND fingerprint = ?
     ) AS b ORDER BY issuer_key_id DESC LIMIT 1`,
  currentBinding: "SELECT * FROM cert_bindings WHERE mykey_id = ? AND state = 'current'",
  bindingsOf: 'SELECT * FROM cert_bindings WHERE mykey_id = ? ORDER BY id',
  insertBinding: `INSERT INTO cert_bindings (mykey_id, state, fingerprint, issuer_key, issuer_key_id, serial_hex, cert_aki, subject_cn, not_after, bound_at)
     VALUES (?, 'current', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
  endBinding: 'UPDATE cert_bindings SET state = ?, unbound_at = ? WHERE id = ?',
  moveBindings: 'UPDATE cert_bindings SET mykey_id = ? WHERE mykey_id = ?',
  copyId: 'INSERT INTO mykey_ids (id, status, status_reason, created_at, status_changed_at) VALUES (?, ?, ?, ?, ?)',
  deleteId: 'DELETE FROM mykey_ids WHERE id = ?',
  retire: 'INSERT INTO retired_mykey_ids (id, retired_at) VALUES (?, ?)',
  // The AKI of such a row is not stored either: the anchor's key id is what it names (schema v3).
  fillKeyId: "UPDATE cert_bindings SET issuer_key_id = ?, cert_aki = COALESCE(cert_aki, ?) WHERE issuer_key = ? AND issuer_key_id = ''",
  unknownKeyCount: "SELECT COUNT(*) AS n FROM cert_bindings WHERE issuer_key_id = '' AND state <> 'ended'",
  eventsAfter: 'SELECT * FROM mykey_events WHERE seq > ? ORDER BY seq LIMIT ?',
  // Kept by triggers (migration 20): three rows, whatever the number of MyKey IDs.
  counts: 'SELECT status, n FROM mykey_counts',
  // A CRL entry's bound certificates, through cert_bindings_live_serial (issuer name, key id, serial):
  // the issuing key's rows, and rows of that name whose key is not yet known.
  unrevokedBySerial: `SELECT id, mykey_id, state, serial_hex FROM cert_bindings
      WHERE issuer_key = ? AND issuer_key_id IN (?, '') AND serial_hex = ? AND state <> 'ended' AND revoked_at IS NULL`,
  // The same when no binding without a key id is left: one seek instead of two.
  unrevokedBySerialOfKey: `SELECT id, mykey_id, state, serial_hex FROM cert_bindings
      WHERE issuer_key = ? AND issuer_key_id = ? AND serial_hex = ? AND state <> 'ended' AND revoked_at IS NULL`,
  // Live unrevoked bindings of one issuer key by id, a page at a time: a range of the key index
  // (issuer_key_id, then id), so a page is one seek.
  unrevokedOfKeyAfter: `SELECT id, mykey_id, state, serial_hex, issuer_key FROM cert_bindings
      WHERE issuer_key_id = ? AND id > ? AND revoked_at IS NULL AND state <> 'ended' ORDER BY id LIMIT ?`,
  maxBindingId: 'SELECT COALESCE(MAX(id), 0) AS n FROM cert_bindings',
};

/**
 * Serials per statement of unrevokedBySerials: one statement text (a short batch repeats its last
 * serial), so SQLite and PostgreSQL each prepare it once.
 */
export const SERIAL_BATCH = 64;
const serialList = Array.from({ length: SERIAL_BATCH }, () => '?').join(', ');
const EVENT_COLUMNS = ['mykey_id', 'kind', 'reason', 'detail', 'at'] as const;

/**
 * Statements over lists (hub/store/list-statements.ts) in a dialect's form. PostgreSQL types a bare
 * parameter of VALUES as text, which an integer column is not compared with: there an integer is
 * CAST. SQLite takes it bare: with the CAST its planner stopped joining v through the rowid once v
 * had a few hundred rows, and read cert_bindings whole instead (a quarter of a millisecond a row at
 * 400,000 bindings, against about one microsecond).
 */
function listQueries(dialect: Dialect) {
  const int = dialect === 'postgres' ? 'CAST(? AS BIGINT)' : '?';
  return {
    currentCerts: listStatement((n) => `SELECT mykey_id, ${CERT_COLUMNS} FROM cert_bindings WHERE mykey_id IN (${repeated(n)}) AND state = 'current'`),
    // Each binding's first revocation only (revoked_at IS NULL); returns the bindings it marked, with their certificates.
    markRevoked: listStatement(
      (n) => `WITH v (binding_id, revoked_at, reason) AS (VALUES ${repeated(n, `(${int}, ${int}, ?)`)})
        UPDATE cert_bindings SET revoked_at = v.revoked_at, revocation_reason = v.reason FROM v
        WHERE cert_bindings.id = v.binding_id AND cert_bindings.revoked_at IS NULL RETURNING cert_bindings.id, ${CERT_COLUMNS}`,
    ),
    // Only an active MyKey ID (never an invalidated one), and only while the revoked binding is still
    // its current one: a carry-over (the holder's, or a linkage record's) committed between a CRL
    // run's match and its write keeps the MyKey ID active. A MyKey ID has one current binding at most
    // (cert_bindings_one_current), so at most one of its rows of v can suspend it.
    suspendIfActive: listStatement(
      (n) => `WITH v (mykey_id, binding_id, reason) AS (VALUES ${repeated(n, `(?, ${int}, ?)`)})
        UPDATE mykey_ids SET status = 'suspended', status_reason = v.reason, status_changed_at = ? FROM v
        WHERE mykey_ids.id = v.mykey_id AND mykey_ids.status = 'active'
          AND EXISTS (SELECT 1 FROM cert_bindings b WHERE b.id = v.binding_id AND b.mykey_id = v.mykey_id AND b.state = 'current')
        RETURNING mykey_ids.id`,
    ),
  };
}
const QL = { sqlite: listQueries('sqlite'), postgres: listQueries('postgres') };

const QB = {
  unrevokedBySerials: `SELECT id, mykey_id, state, serial_hex FROM cert_bindings
      WHERE issuer_key = ? AND issuer_key_id IN (?, '') AND serial_hex IN (${serialList}) AND state <> 'ended' AND revoked_at IS NULL`,
  unrevokedBySerialsOfKey: `SELECT id, mykey_id, state, serial_hex FROM cert_bindings
      WHERE issuer_key = ? AND issuer_key_id = ? AND serial_hex IN (${serialList}) AND state <> 'ended' AND revoked_at IS NULL`,
};

/** The repository over an executor (or a SQLite connection, through its executor). */
export function createMyKeyRepo(target: Sql | Db) {
  const sql = sqlOf(target);
  const ql = QL[sql.dialect];
  const listeners: MyKeyLifecycleBatchListener[] = [];
  const getId = (id: string) => sql.get<MyKeyRow>(Q.getId, [id]);
  const idUsed = async (id: string) => (await sql.get(Q.idUsed, [id, id])) !== undefined;
  const currentBinding = (id: string) => sql.get<BindingRow>(Q.currentBinding, [id]);
  const liveBindingOfCert = (cert: CertIdentity) => sql.get<BindingRow>(Q.liveBindingOfCert, [cert.issuerKey, cert.issuerKeyId, cert.serialHex, cert.issuerKey, cert.serialHex, cert.fingerprint]);
  /** Inserts the current binding of a MyKey ID; returns its id. */
  const insertBinding = async (id: string, cert: CertIdentity, now: number): Promise<number> =>
    Number((await sql.get<{ id: number }>(Q.insertBinding, [id, cert.fingerprint, cert.issuerKey, cert.issuerKeyId, cert.serialHex, cert.aki ?? '', cert.subjectCn ?? null, cert.notAfter, now]))!.id);
  /**
   * Records lifecycle events of one kind and tells the listeners, inside the caller's transaction.
   * The event rows are queued (sql.insertLater): nothing reads them back before the commit, and a
   * chunk's are written as multi-row INSERTs.
   */
  const addEvents = async (events: readonly MyKeyLifecycleEvent[]) => {
    for (const e of events) {
      const detail = e.from ? { from: e.from } : e.newCert ? { serial: e.newCert.serialHex } : undefined;
      await sql.insertLater('mykey_events', EVENT_COLUMNS, [e.mykeyId, e.kind, e.reason, detail === undefined ? null : JSON.stringify(detail), e.at]);
    }
    for (const l of listeners) await l(events);
  };
  const addEvent = (id: string, kind: MyKeyEventKind, at: number, reason?: string | null, extra: Partial<MyKeyLifecycleEvent> = {}) =>
    addEvents([{ mykeyId: id, kind, reason: reason ?? null, at, ...extra }]);

  /**
   * Marks each binding revoked (its first hit only, as one after another would) and suspends the
   * MyKey IDs whose current binding was revoked; returns the hits that suspended one, in order, with
   * the revoked (still current) certificate.
   */
  async function revokeAll(hits: readonly RevocationHit[], now: number): Promise<{ hit: RevocationHit; cert: CertRef }[]> {
    const firsts = new Map<number, RevocationHit>();
    for (const h of hits) if (!firsts.has(h.bindingId)) firsts.set(h.bindingId, h);
    const marked = new Map<number, CertRef>();
    for (const { text, params } of ql.markRevoked.slices([...firsts.values()], (h) => [h.bindingId, h.revokedAt, h.reason])) {
      for (const r of await sql.all<CertColumns & { id: number }>(text, params)) marked.set(Number(r.id), refOf(r));
    }
    const candidates = [...firsts.values()].filter((h) => h.state === 'current' && marked.has(h.bindingId));
    const suspended = new Set<string>();
    for (const { text, params } of ql.suspendIfActive.slices(candidates, (h) => [h.mykeyId, h.bindingId, h.reason])) {
      for (const r of await sql.all<{ id: string }>(text, [...params, now])) suspended.add(r.id);
    }
    // A MyKey ID named by two hits (a carry-over between the match and the write) is suspended once.
    return candidates.filter((h) => suspended.delete(h.mykeyId)).map((hit) => ({ hit, cert: marked.get(hit.bindingId)! }));
  }

  /** The check-then-insert of createOrGet; runs inside a transaction. */
  async function createOrGetIn(cert: CertIdentity, candidate: () => string, now: number): Promise<{ row: MyKeyRow; created: boolean } | { superseded: true }> {
    const existing = await liveBindingOfCert(cert);
    if (existing) {
      if (existing.state === 'carried_over') return { superseded: true };
      return { row: (await getId(existing.mykey_id))!, created: false };
    }
    let id = candidate();
    for (let tries = 0; await idUsed(id); tries++) {
      if (tries > 50) throw new Error('could not find a free MyKey ID');
      id = candidate();
    }
    await sql.run(Q.insertId, [id, 'active', now, now]);
    await insertBinding(id, cert, now);
    await addEvent(id, 'created', now);
    // The row just inserted, as Q.insertId wrote it (no default or trigger changes it): not read back.
    const row: MyKeyRow = { id, status: 'active', status_reason: null, created_at: now, status_changed_at: now };
    return { row, created: true };
  }

  return {
    /** Adds a listener called inside every lifecycle transaction, once per event (see MyKeyLifecycleListener). */
    onLifecycle(l: MyKeyLifecycleListener): void {
      listeners.push(async (events) => {
        for (const e of events) await l(e);
      });
    },
    /** Adds a listener called inside every lifecycle transaction with a step's events at once (see MyKeyLifecycleBatchListener). */
    onLifecycleBatch(l: MyKeyLifecycleBatchListener): void {
      listeners.push(l);
    },
    /** The current certificate of a MyKey ID (issuer key, serial, AKI), if any. */
    async currentCert(id: string): Promise<CertRef | undefined> {
      const b = await currentBinding(id);
      return b ? refOf(b) : undefined;
    },
    /** The current certificates of many MyKey IDs, by MyKey ID (those without one are absent): a statement per slice of ids. */
    async currentCerts(ids: readonly string[]): Promise<Map<string, CertRef>> {
      const out = new Map<string, CertRef>();
      for (const { text, params } of ql.currentCerts.slices(ids, single)) {
        for (const b of await sql.all<CertColumns & { mykey_id: string }>(text, params)) out.set(b.mykey_id, refOf(b));
      }
      return out;
    },
    get: (id: string): Promise<MyKeyRow | undefined> => getId(id),
    isIdUsed: (id: string): Promise<boolean> => idUsed(id),
    bindingByFingerprint: (fp: string): Promise<BindingRow | undefined> => sql.get<BindingRow>(Q.bindingByFingerprint, [fp]),
    /**
     * The live binding of an issuer name and serial, when there is exactly one. Two CA keys under one
     * name may each have issued the serial: then this is ambiguous and gives undefined; callers that
     * know the issuing key use liveBindingOfCert.
     */
    async liveBindingBySerial(issuerKey: string, serialHex: string): Promise<BindingRow | undefined> {
      const rows = await sql.all<BindingRow>(Q.liveBindingsBySerial, [issuerKey, serialHex]);
      return rows.length === 1 ? rows[0] : undefined;
    },
    /** The live binding of this certificate, matched by issuer name, issuing key and serial. */
    liveBindingOfCert: (cert: CertIdentity): Promise<BindingRow | undefined> => liveBindingOfCert(cert),
    currentBinding: (id: string): Promise<BindingRow | undefined> => currentBinding(id),
    bindingsOf: (id: string): Promise<BindingRow[]> => sql.all<BindingRow>(Q.bindingsOf, [id]),
    async counts(): Promise<Record<MyKeyStatus, number>> {
      const out: Record<MyKeyStatus, number> = { active: 0, suspended: 0, invalidated: 0 };
      for (const r of await sql.all<{ status: MyKeyStatus; n: number }>(Q.counts)) out[r.status] = r.n;
      return out;
    },
    eventsAfter: (seq: number, limit = 1000): Promise<MyKeyEvent[]> => sql.all<MyKeyEvent>(Q.eventsAfter, [seq, limit]),

    /**
     * Unrevoked live bindings of the certificate with this serial under an issuer key (and rows of
     * the issuer name whose key is not yet known): an index lookup, what a new CRL entry is matched
     * with. `serialHex` in the bindings' form (lower-case hex, no leading zero bytes). Rows without a
     * key id are left out when `withUnknownKey` is false (the caller knows there are none).
     */
    unrevokedBySerial: (issuerKey: string, issuerKeyId: string, serialHex: string, withUnknownKey = true): Promise<UnrevokedBinding[]> =>
      sql.all<UnrevokedBinding>(withUnknownKey ? Q.unrevokedBySerial : Q.unrevokedBySerialOfKey, [issuerKey, issuerKeyId, serialHex]),
    /**
     * unrevokedBySerial for up to SERIAL_BATCH serials in one statement (the same index seeks, one
     * round through the driver instead of one per CRL entry); rows in no particular order, each
     * carrying its serial_hex.
     */
    unrevokedBySerials: async (issuerKey: string, issuerKeyId: string, serialsHex: readonly string[], withUnknownKey = true): Promise<UnrevokedBinding[]> => {
      if (serialsHex.length === 0) return [];
      if (serialsHex.length > SERIAL_BATCH) throw new RangeError(`at most ${SERIAL_BATCH} serials a statement`);
      const params: string[] = [issuerKey, issuerKeyId];
      for (let i = 0; i < SERIAL_BATCH; i++) params.push(serialsHex[Math.min(i, serialsHex.length - 1)]);
      return sql.all<UnrevokedBinding>(withUnknownKey ? QB.unrevokedBySerials : QB.unrevokedBySerialsOfKey, params);
    },
    /**
     * One page of live unrevoked bindings of an issuer key ('' for rows whose key is not yet known)
     * with an id above `afterId`, in id order: bindings made since a CRL was last matched, or a whole
     * scan in pages that leave the event loop free between them.
     */
    unrevokedOfKeyAfter: (issuerKeyId: string, afterId: number, limit: number) => sql.all<UnrevokedBinding & { issuer_key: string }>(Q.unrevokedOfKeyAfter, [issuerKeyId, afterId, limit]),
    /** The highest binding id so far (0 when none): a CRL run's mark of what it has matched. */
    maxBindingId: async (): Promise<number> => (await sql.get<{ n: number }>(Q.maxBindingId))?.n ?? 0,

    /**
     * Registers many MyKey IDs at once, each bound to its certificate, in one transaction (imports,
     * benchmarks): the same rows and events as createOrGet, without its per-call checks; an id or a
     * certificate already present fails the whole batch.
     */
    bulkCreate: (items: readonly { id: string; cert: CertIdentity }[], now: number): Promise<number> =>
      sql.tx(async () => {
        for (const { id, cert } of items) {
          await sql.run(Q.insertId, [id, 'active', now, now]);
          await insertBinding(id, cert, now);
          await addEvent(id, 'created', now);
        }
        return items.length;
      }),

    /**
     * Creates a MyKey ID bound to a certificate, or returns the one already bound to it. The check
     * and the insert run in one transaction, so two concurrent registrations of one certificate
     * cannot make two MyKey IDs (on PostgreSQL the second one's insert meets the unique index of live
     * serials; it then finds the first one's binding). `candidate` is called until it yields a free id.
     */
    createOrGet: (cert: CertIdentity, candidate: () => string, now: number): Promise<{ row: MyKeyRow; created: boolean } | { superseded: true }> =>
      sql.tx(async () => {
        // SQLite runs one writer at a time: the check cannot race.
        if (sql.dialect === 'sqlite') return createOrGetIn(cert, candidate, now);
        try {
          return await sql.tx(() => createOrGetIn(cert, candidate, now));
        } catch (e) {
          if (!isUniqueViolation(e)) throw e;
          return await createOrGetIn(cert, candidate, now);
        }
      }),

    /** Moves a MyKey ID to a new free id; the old id is retired forever. */
    changeId: (oldId: string, newId: string, now: number): Promise<void> =>
      sql.tx(async () => {
        if (await idUsed(newId)) throw new IdTakenError(newId);
        // The foreign key cannot be deferred on SQLite, so: new row, move bindings, drop old row.
        const row = (await getId(oldId))!;
        await sql.run(Q.copyId, [newId, row.status, row.status_reason, row.created_at, row.status_changed_at]);
        await sql.run(Q.moveBindings, [newId, oldId]);
        await sql.run(Q.deleteId, [oldId]);
        await sql.run(Q.retire, [oldId, now]);
        await addEvent(newId, 'id_changed', now, null, { from: oldId });
      }),

    /** The holder invalidates their MyKey ID: it ends, its bindings end, the id is never reused. */
    invalidate: (id: string, now: number): Promise<void> =>
      sql.tx(async () => {
        await sql.run(Q.setStatus, ['invalidated', 'holder', now, id]);
        const cur = await currentBinding(id);
        if (cur) await sql.run(Q.endBinding, ['ended', now, cur.id]);
        await addEvent(id, 'invalidated', now, 'holder');
      }),

    /**
     * Binds a new certificate in place of the current one; a MyKey ID suspended as `superseded` resumes.
     * `via: 'linkage'` when a linkage record (hub/linkage), not the holder, carries it.
     */
    carryOver: (id: string, cert: CertIdentity, now: number, via?: 'linkage'): Promise<{ resumed: boolean; bindingId: number }> =>
      sql.tx(async () => {
        const cur = await currentBinding(id);
        if (cur) await sql.run(Q.endBinding, ['carried_over', now, cur.id]);
        const bindingId = await insertBinding(id, cert, now);
        const resumes = (await getId(id))!.status === 'suspended';
        await addEvent(id, 'carried_over', now, via ?? null, {
          previousCert: cur ? refOf(cur) : undefined,
          newCert: { issuerKey: cert.issuerKey, serialHex: cert.serialHex, aki: cert.aki ?? '' },
          ...(via ? { via, resumes } : {}),
        });
        if (resumes) {
          await sql.run(Q.setStatus, ['active', null, now, id]);
          await addEvent(id, 'resumed', now, via ?? 'carried_over');
          return { resumed: true, bindingId };
        }
        return { resumed: false, bindingId };
      }),

    /**
     * Fills in the issuer key id of rows bound before it was recorded, for every issuer name that
     * exactly one anchor has (with several, which key signed a row cannot be told from the row).
     * Returns how many rows were filled and how many stay unknown.
     */
    fillIssuerKeyIds: (anchors: readonly { issuerKey: string; keyId: string }[]): Promise<{ filled: number; unknown: number }> =>
      sql.tx(async () => {
        const byName = new Map<string, Set<string>>();
        for (const a of anchors) byName.set(a.issuerKey, (byName.get(a.issuerKey) ?? new Set()).add(a.keyId));
        let filled = 0;
        for (const [issuerKey, ids] of byName)
          if (ids.size === 1) {
            const keyId = [...ids][0];
            filled += (await sql.run(Q.fillKeyId, [keyId, keyId, issuerKey])).changes;
          }
        return { filled, unknown: (await sql.get<{ n: number }>(Q.unknownKeyCount))?.n ?? 0 };
      }),

    /**
     * Records revocations found in a CRL, in one write transaction (taken at once on SQLite: BEGIN
     * IMMEDIATE): each binding is marked revoked, and a MyKey ID whose current certificate was
     * revoked is suspended with the RFC 5280 reason. Returns how many MyKey IDs were suspended.
     */
    applyRevocations: (hits: readonly RevocationHit[], now: number): Promise<number> =>
      sql.tx(
        async () => {
          // A few statements a chunk, whatever its size; the listeners get its suspensions at once.
          const suspended = await revokeAll(hits, now);
          if (suspended.length > 0) await addEvents(suspended.map(({ hit, cert }) => ({ mykeyId: hit.mykeyId, kind: 'suspended', reason: hit.reason, at: now, cert })));
          return suspended.length;
        },
        { immediate: true },
      ),
  };
}

export type MyKeyRepo = ReturnType<typeof createMyKeyRepo>;
