// Repository of MyKey IDs and the certificates bound to them. Every method that changes state runs
// in one transaction and appends its lifecycle event in the same transaction.
import type { CertRef } from '../../shared/cert-identity.ts';
import type { Db } from './db.ts';

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
}

/**
 * Runs inside the transaction of the change: what it writes commits or rolls back with it. The
 * links feature uses this to append its change-log entries atomically with the lifecycle change.
 */
export type MyKeyLifecycleListener = (e: MyKeyLifecycleEvent) => void;

/** A binding as a CRL is matched against it. */
export interface UnrevokedBinding {
  id: number;
  mykey_id: string;
  state: BindingState;
  serial_hex: string;
}

/** Thrown inside a transaction when a candidate id collides; the caller retries with another. */
export class IdTakenError extends Error {}

/** A binding as its certificate identity needs it; an AKI not yet known falls back to the anchor key id it was filed under. */
function refOf(b: BindingRow): CertRef {
  return { issuerKey: b.issuer_key, serialHex: b.serial_hex, aki: b.cert_aki ?? b.issuer_key_id };
}

export function createMyKeyRepo(db: Db) {
  const q = {
    getId: db.prepare<[string], MyKeyRow>('SELECT * FROM mykey_ids WHERE id = ?'),
    idUsed: db
      .prepare<[string, string], number>('SELECT 1 FROM mykey_ids WHERE id = ? UNION ALL SELECT 1 FROM retired_mykey_ids WHERE id = ?')
      .pluck(),
    insertId: db.prepare('INSERT INTO mykey_ids (id, status, status_reason, created_at, status_changed_at) VALUES (?, ?, NULL, ?, ?)'),
    setStatus: db.prepare('UPDATE mykey_ids SET status = ?, status_reason = ?, status_changed_at = ? WHERE id = ?'),
    suspendIfActive: db.prepare("UPDATE mykey_ids SET status = 'suspended', status_reason = ?, status_changed_at = ? WHERE id = ? AND status = 'active'"),
    bindingByFingerprint: db.prepare<[string], BindingRow>(
      "SELECT * FROM cert_bindings WHERE fingerprint = ? ORDER BY (state = 'current') DESC, id DESC LIMIT 1",
    ),
    liveBindingsBySerial: db.prepare<[string, string], BindingRow>(
      "SELECT * FROM cert_bindings WHERE issuer_key = ? AND serial_hex = ? AND state <> 'ended' LIMIT 2",
    ),
    // The binding of this very certificate: same issuer name, same issuing key, same serial. A row
    // whose key id is not yet known ('') matches only the same certificate (fingerprint), so a serial
    // reused under another key never finds it. Written as `issuer_key_id IN (key, '')` so that both
    // cases are seeks on cert_bindings_live_serial (issuer_key, issuer_key_id, serial_hex); with the
    // key id only inside an OR, SQLite used the index's first column alone and scanned every live
    // binding of the issuer name on each registration.
    liveBindingOfCert: db.prepare<[string, string, string, string, string], BindingRow>(
      `SELECT * FROM cert_bindings WHERE issuer_key = ? AND issuer_key_id IN (?, '') AND serial_hex = ? AND state <> 'ended'
         AND (issuer_key_id = ? OR fingerprint = ?) ORDER BY issuer_key_id DESC LIMIT 1`,
    ),
    currentBinding: db.prepare<[string], BindingRow>("SELECT * FROM cert_bindings WHERE mykey_id = ? AND state = 'current'"),
    bindingsOf: db.prepare<[string], BindingRow>('SELECT * FROM cert_bindings WHERE mykey_id = ? ORDER BY id'),
    insertBinding: db.prepare(
      `INSERT INTO cert_bindings (mykey_id, state, fingerprint, issuer_key, issuer_key_id, serial_hex, cert_aki, subject_cn, not_after, bound_at)
       VALUES (?, 'current', ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    endBinding: db.prepare('UPDATE cert_bindings SET state = ?, unbound_at = ? WHERE id = ?'),
    moveBindings: db.prepare('UPDATE cert_bindings SET mykey_id = ? WHERE mykey_id = ?'),
    copyId: db.prepare('INSERT INTO mykey_ids (id, status, status_reason, created_at, status_changed_at) VALUES (?, ?, ?, ?, ?)'),
    deleteId: db.prepare('DELETE FROM mykey_ids WHERE id = ?'),
    retire: db.prepare('INSERT INTO retired_mykey_ids (id, retired_at) VALUES (?, ?)'),
    event: db.prepare('INSERT INTO mykey_events (mykey_id, kind, reason, detail, at) VALUES (?, ?, ?, ?, ?)'),
    markRevoked: db.prepare('UPDATE cert_bindings SET revoked_at = ?, revocation_reason = ? WHERE id = ? AND revoked_at IS NULL'),
    unrevokedByKey: db.prepare<[string], UnrevokedBinding>(
      "SELECT id, mykey_id, state, serial_hex FROM cert_bindings WHERE issuer_key_id = ? AND revoked_at IS NULL AND state <> 'ended'",
    ),
    unrevokedUnknownKey: db.prepare<[string], UnrevokedBinding>(
      "SELECT id, mykey_id, state, serial_hex FROM cert_bindings WHERE issuer_key = ? AND issuer_key_id = '' AND revoked_at IS NULL AND state <> 'ended'",
    ),
    // The AKI of such a row is not stored either: the anchor's key id is what it names (schema v3).
    fillKeyId: db.prepare("UPDATE cert_bindings SET issuer_key_id = ?, cert_aki = COALESCE(cert_aki, ?) WHERE issuer_key = ? AND issuer_key_id = ''"),
    unknownKeyCount: db.prepare<[], number>("SELECT COUNT(*) FROM cert_bindings WHERE issuer_key_id = '' AND state <> 'ended'").pluck(),
    eventsAfter: db.prepare<[number, number], MyKeyEvent>('SELECT * FROM mykey_events WHERE seq > ? ORDER BY seq LIMIT ?'),
    // Kept by triggers (migration 20): three rows, whatever the number of MyKey IDs.
    counts: db.prepare<[], { status: MyKeyStatus; n: number }>('SELECT status, n FROM mykey_counts'),
    // A CRL entry's bound certificates, through cert_bindings_live_serial (issuer name, key id, serial):
    // the issuing key's rows, and rows of that name whose key is not yet known.
    unrevokedBySerial: db.prepare<[string, string, string], UnrevokedBinding & { issuer_key_id: string }>(
      `SELECT id, mykey_id, state, serial_hex, issuer_key_id FROM cert_bindings
        WHERE issuer_key = ? AND issuer_key_id IN (?, '') AND serial_hex = ? AND state <> 'ended' AND revoked_at IS NULL`,
    ),
    // The same when no binding without a key id is left: one seek instead of two.
    unrevokedBySerialOfKey: db.prepare<[string, string, string], UnrevokedBinding>(
      `SELECT id, mykey_id, state, serial_hex FROM cert_bindings
        WHERE issuer_key = ? AND issuer_key_id = ? AND serial_hex = ? AND state <> 'ended' AND revoked_at IS NULL`,
    ),
    // Live unrevoked bindings of one issuer key by id, a page at a time: a range of the key index
    // (issuer_key_id, then rowid), so a page is one seek.
    unrevokedOfKeyAfter: db.prepare<[string, number, number], UnrevokedBinding & { issuer_key: string }>(
      `SELECT id, mykey_id, state, serial_hex, issuer_key FROM cert_bindings
        WHERE issuer_key_id = ? AND id > ? AND revoked_at IS NULL AND state <> 'ended' ORDER BY id LIMIT ?`,
    ),
    maxBindingId: db.prepare<[], number>('SELECT COALESCE(MAX(id), 0) FROM cert_bindings').pluck(),
  };

  const listeners: MyKeyLifecycleListener[] = [];
  const addEvent = (id: string, kind: MyKeyEventKind, at: number, reason?: string | null, extra: Partial<MyKeyLifecycleEvent> = {}) => {
    const detail = extra.from ? { from: extra.from } : extra.newCert ? { serial: extra.newCert.serialHex } : undefined;
    q.event.run(id, kind, reason ?? null, detail === undefined ? null : JSON.stringify(detail), at);
    const e: MyKeyLifecycleEvent = { mykeyId: id, kind, reason: reason ?? null, at, ...extra };
    for (const l of listeners) l(e);
  };

  return {
    /** Adds a listener called inside every lifecycle transaction (see MyKeyLifecycleListener). */
    onLifecycle(l: MyKeyLifecycleListener): void {
      listeners.push(l);
    },
    /** The current certificate of a MyKey ID (issuer key, serial, AKI), if any. */
    currentCert(id: string): CertRef | undefined {
      const b = q.currentBinding.get(id);
      return b ? refOf(b) : undefined;
    },
    get: (id: string): MyKeyRow | undefined => q.getId.get(id),
    isIdUsed: (id: string): boolean => q.idUsed.get(id, id) !== undefined,
    bindingByFingerprint: (fp: string): BindingRow | undefined => q.bindingByFingerprint.get(fp),
    /**
     * The live binding of an issuer name and serial, when there is exactly one. Two CA keys under one
     * name may each have issued the serial: then this is ambiguous and gives undefined; callers that
     * know the issuing key use liveBindingOfCert.
     */
    liveBindingBySerial(issuerKey: string, serialHex: string): BindingRow | undefined {
      const rows = q.liveBindingsBySerial.all(issuerKey, serialHex);
      return rows.length === 1 ? rows[0] : undefined;
    },
    /** The live binding of this certificate, matched by issuer name, issuing key and serial. */
    liveBindingOfCert: (cert: CertIdentity): BindingRow | undefined =>
      q.liveBindingOfCert.get(cert.issuerKey, cert.issuerKeyId, cert.serialHex, cert.issuerKeyId, cert.fingerprint),
    currentBinding: (id: string): BindingRow | undefined => q.currentBinding.get(id),
    bindingsOf: (id: string): BindingRow[] => q.bindingsOf.all(id),
    counts(): Record<MyKeyStatus, number> {
      const out: Record<MyKeyStatus, number> = { active: 0, suspended: 0, invalidated: 0 };
      for (const r of q.counts.all()) out[r.status] = r.n;
      return out;
    },
    eventsAfter: (seq: number, limit = 1000): MyKeyEvent[] => q.eventsAfter.all(seq, limit),

    /**
     * Unrevoked live bindings of the certificate with this serial under an issuer key (and rows of
     * the issuer name whose key is not yet known): an index lookup, what a new CRL entry is matched
     * with. `serialHex` in the bindings' form (lower-case hex, no leading zero bytes). Rows without a
     * key id are left out when `withUnknownKey` is false (the caller knows there are none).
     */
    unrevokedBySerial: (issuerKey: string, issuerKeyId: string, serialHex: string, withUnknownKey = true): UnrevokedBinding[] =>
      withUnknownKey
        ? q.unrevokedBySerial.all(issuerKey, issuerKeyId, serialHex).map(({ issuer_key_id: _k, ...b }) => b)
        : q.unrevokedBySerialOfKey.all(issuerKey, issuerKeyId, serialHex),
    /**
     * One page of live unrevoked bindings of an issuer key ('' for rows whose key is not yet known)
     * with an id above `afterId`, in id order: bindings made since a CRL was last matched, or a whole
     * scan in pages that leave the event loop free between them.
     */
    unrevokedOfKeyAfter: (issuerKeyId: string, afterId: number, limit: number) => q.unrevokedOfKeyAfter.all(issuerKeyId, afterId, limit),
    /** The highest binding id so far (0 when none): a CRL run's mark of what it has matched. */
    maxBindingId: (): number => q.maxBindingId.get() ?? 0,

    /**
     * Registers many MyKey IDs at once, each bound to its certificate, in one transaction (imports,
     * benchmarks): the same rows and events as createOrGet, without its per-call checks; an id or a
     * certificate already present fails the whole batch.
     */
    bulkCreate: db.transaction((items: readonly { id: string; cert: CertIdentity }[], now: number): number => {
      for (const { id, cert } of items) {
        q.insertId.run(id, 'active', now, now);
        q.insertBinding.run(id, cert.fingerprint, cert.issuerKey, cert.issuerKeyId, cert.serialHex, cert.aki ?? '', cert.subjectCn ?? null, cert.notAfter, now);
        addEvent(id, 'created', now);
      }
      return items.length;
    }),

    /**
     * Creates a MyKey ID bound to a certificate, or returns the one already bound to it. The check
     * and the insert run in one transaction, so two concurrent registrations of one certificate
     * cannot make two MyKey IDs. `candidate` is called until it yields a free id.
     */
    createOrGet: db.transaction(
      (cert: CertIdentity, candidate: () => string, now: number): { row: MyKeyRow; created: boolean } | { superseded: true } => {
        const existing = q.liveBindingOfCert.get(cert.issuerKey, cert.issuerKeyId, cert.serialHex, cert.issuerKeyId, cert.fingerprint);
        if (existing) {
          if (existing.state === 'carried_over') return { superseded: true };
          return { row: q.getId.get(existing.mykey_id)!, created: false };
        }
        let id = candidate();
        for (let tries = 0; q.idUsed.get(id, id) !== undefined; tries++) {
          if (tries > 50) throw new Error('could not find a free MyKey ID');
          id = candidate();
        }
        q.insertId.run(id, 'active', now, now);
        q.insertBinding.run(id, cert.fingerprint, cert.issuerKey, cert.issuerKeyId, cert.serialHex, cert.aki ?? '', cert.subjectCn ?? null, cert.notAfter, now);
        addEvent(id, 'created', now);
        return { row: q.getId.get(id)!, created: true };
      },
    ),

    /** Moves a MyKey ID to a new free id; the old id is retired forever. */
    changeId: db.transaction((oldId: string, newId: string, now: number): void => {
      if (q.idUsed.get(newId, newId) !== undefined) throw new IdTakenError(newId);
      // SQLite cannot defer the foreign key here, so: new row, move bindings, drop old row.
      const row = q.getId.get(oldId)!;
      q.copyId.run(newId, row.status, row.status_reason, row.created_at, row.status_changed_at);
      q.moveBindings.run(newId, oldId);
      q.deleteId.run(oldId);
      q.retire.run(oldId, now);
      addEvent(newId, 'id_changed', now, null, { from: oldId });
    }),

    /** The holder invalidates their MyKey ID: it ends, its bindings end, the id is never reused. */
    invalidate: db.transaction((id: string, now: number): void => {
      q.setStatus.run('invalidated', 'holder', now, id);
      const cur = q.currentBinding.get(id);
      if (cur) q.endBinding.run('ended', now, cur.id);
      addEvent(id, 'invalidated', now, 'holder');
    }),

    /** Binds a new certificate in place of the current one; a MyKey ID suspended as `superseded` resumes. */
    carryOver: db.transaction((id: string, cert: CertIdentity, now: number): { resumed: boolean } => {
      const cur = q.currentBinding.get(id);
      if (cur) q.endBinding.run('carried_over', now, cur.id);
      q.insertBinding.run(id, cert.fingerprint, cert.issuerKey, cert.issuerKeyId, cert.serialHex, cert.aki ?? '', cert.subjectCn ?? null, cert.notAfter, now);
      addEvent(id, 'carried_over', now, null, {
        previousCert: cur ? refOf(cur) : undefined,
        newCert: { issuerKey: cert.issuerKey, serialHex: cert.serialHex, aki: cert.aki ?? '' },
      });
      const row = q.getId.get(id)!;
      if (row.status === 'suspended') {
        q.setStatus.run('active', null, now, id);
        addEvent(id, 'resumed', now, 'carried_over');
        return { resumed: true };
      }
      return { resumed: false };
    }),

    /**
     * Bindings of an issuer key not yet known to be revoked: what a new CRL of that key is matched
     * against. With `legacyIssuerKey`, also the rows of that issuer name whose key id is still
     * unknown (bound before key ids were recorded, under a name several anchors share).
     */
    *unrevokedBindings(issuerKeyId: string, legacyIssuerKey?: string): Generator<UnrevokedBinding> {
      yield* q.unrevokedByKey.iterate(issuerKeyId);
      if (legacyIssuerKey !== undefined) yield* q.unrevokedUnknownKey.iterate(legacyIssuerKey);
    },

    /**
     * Fills in the issuer key id of rows bound before it was recorded, for every issuer name that
     * exactly one anchor has (with several, which key signed a row cannot be told from the row).
     * Returns how many rows were filled and how many stay unknown.
     */
    fillIssuerKeyIds: db.transaction((anchors: readonly { issuerKey: string; keyId: string }[]): { filled: number; unknown: number } => {
      const byName = new Map<string, Set<string>>();
      for (const a of anchors) byName.set(a.issuerKey, (byName.get(a.issuerKey) ?? new Set()).add(a.keyId));
      let filled = 0;
      for (const [issuerKey, ids] of byName) if (ids.size === 1) {
        const keyId = [...ids][0];
        filled += q.fillKeyId.run(keyId, keyId, issuerKey).changes;
      }
      return { filled, unknown: q.unknownKeyCount.get() ?? 0 };
    }),

    /**
     * Records revocations found in a CRL, in one transaction: each binding is marked revoked, and a
     * MyKey ID whose current certificate was revoked is suspended with the RFC 5280 reason.
     */
    applyRevocations: db.transaction(
      (hits: { bindingId: number; mykeyId: string; state: BindingState; revokedAt: number; reason: string }[], now: number) => {
        let suspended = 0;
        for (const h of hits) {
          if (q.markRevoked.run(h.revokedAt, h.reason, h.bindingId).changes === 0) continue;
          if (h.state !== 'current') continue;
          // One statement: only an active MyKey ID is suspended (never an invalidated one).
          if (q.suspendIfActive.run(h.reason, now, h.mykeyId).changes === 1) {
            addEvent(h.mykeyId, 'suspended', now, h.reason);
            suspended++;
          }
        }
        return suspended;
      },
    ),
  };
}

export type MyKeyRepo = ReturnType<typeof createMyKeyRepo>;
