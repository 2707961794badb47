// Repository of the operator console: operators, sessions, sign-in failure counters, enrollment
// tokens and the audit log. Plain statements; policy (lockout thresholds, expiry, roles) lives in
// hub/console.
import type { Db } from './db.ts';
import { CONSOLE_MIGRATIONS } from './schema/console.ts';

export type OperatorRole = 'operator' | 'service_admin';

export interface OperatorRow {
  name: string;
  role: OperatorRole;
  service_id: string | null;
  password_hash: string;
  disabled: number;
  created_at: number;
  last_sign_in_at: number | null;
}

export interface SessionRow {
  id_hash: string;
  operator: string;
  csrf_token: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

/**
 * Sign-in attempt counters: `account` (one name, all addresses), `address` (one client address or
 * IPv6 /64, all names), `account_address` (one name from one address).
 */
export interface FailureRow {
  kind: 'account' | 'address' | 'account_address';
  key: string;
  failures: number;
  window_start: number;
  locked_until: number | null;
  /** Locks so far (the back-off exponent). */
  strikes: number;
}

export interface EnrollmentTokenRow {
  id: string;
  secret_hash: string;
  service_id: string;
  edge_id: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  revoked_at: number | null;
  revoked_by: string | null;
  /** 1 when a platform operator allowed this token to enroll an edge id whose device was revoked. */
  allow_revoked: number;
}

export interface AuditRow {
  id: number;
  at: number;
  actor: string;
  role: string | null;
  action: string;
  target: string | null;
  service_id: string | null;
  outcome: string;
  detail: string | null;
  /** The service that owns the target when it is not `service_id` (a refused cross-service attempt); it sees the entry too. */
  owner_service_id: string | null;
}

export interface AuditFilter {
  /** The signed-in service administrator's service: only its entries. */
  serviceId?: string;
  before?: number;
  limit?: number;
  actor?: string;
  /** An action, or its family (`device` for `device.revoke`). */
  action?: string;
  service?: string;
  from?: number;
  to?: number;
}

export type AuditInput = Omit<AuditRow, 'id' | 'outcome' | 'detail' | 'role' | 'target' | 'service_id' | 'owner_service_id'> &
  Partial<Pick<AuditRow, 'role' | 'target' | 'service_id' | 'outcome' | 'owner_service_id'>> & { detail?: Record<string, unknown> };

/**
 * Applies the console migrations on their own (until they are part of hub/store/migrations.ts, after
 * which this finds them applied and does nothing).
 */
export function migrateConsole(db: Db): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  const done = new Set(db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[]);
  for (const m of CONSOLE_MIGRATIONS) {
    if (done.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
    })();
  }
}

export function createConsoleRepo(db: Db) {
  const q = {
    operator: db.prepare<[string], OperatorRow>('SELECT * FROM console_operators WHERE name = ?'),
    operators: db.prepare<[], OperatorRow>('SELECT * FROM console_operators ORDER BY name'),
    insertOperator: db.prepare('INSERT INTO console_operators (name, role, service_id, password_hash, created_at) VALUES (?, ?, ?, ?, ?)'),
    setPassword: db.prepare('UPDATE console_operators SET password_hash = ? WHERE name = ?'),
    setDisabled: db.prepare('UPDATE console_operators SET disabled = ? WHERE name = ?'),
    signedIn: db.prepare('UPDATE console_operators SET last_sign_in_at = ? WHERE name = ?'),

    insertSession: db.prepare('INSERT INTO console_sessions (id_hash, operator, csrf_token, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)'),
    session: db.prepare<[string], SessionRow>('SELECT * FROM console_sessions WHERE id_hash = ?'),
    touchSession: db.prepare('UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ?'),
    deleteSession: db.prepare('DELETE FROM console_sessions WHERE id_hash = ?'),
    deleteSessionsOf: db.prepare('DELETE FROM console_sessions WHERE operator = ?'),
    purgeSessions: db.prepare('DELETE FROM console_sessions WHERE expires_at <= ?'),

    failure: db.prepare<[string, string], FailureRow>('SELECT * FROM console_sign_in_failures WHERE kind = ? AND key = ?'),
    upsertFailure: db.prepare(
      `INSERT INTO console_sign_in_failures (kind, key, failures, window_start, locked_until, strikes) VALUES (@kind, @key, @failures, @window_start, @locked_until, @strikes)
       ON CONFLICT (kind, key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start, locked_until = excluded.locked_until, strikes = excluded.strikes`,
    ),
    clearFailure: db.prepare('DELETE FROM console_sign_in_failures WHERE kind = ? AND key = ?'),
    purgeFailures: db.prepare('DELETE FROM console_sign_in_failures WHERE window_start < ? AND (locked_until IS NULL OR locked_until < ?)'),

    insertToken: db.prepare(
      'INSERT INTO enrollment_tokens (id, secret_hash, service_id, edge_id, created_by, created_at, expires_at, allow_revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    token: db.prepare<[string], EnrollmentTokenRow>('SELECT * FROM enrollment_tokens WHERE id = ?'),
    tokens: db.prepare<[number], EnrollmentTokenRow>('SELECT * FROM enrollment_tokens ORDER BY created_at DESC, id LIMIT ?'),
    tokensOf: db.prepare<[string, number], EnrollmentTokenRow>('SELECT * FROM enrollment_tokens WHERE service_id = ? ORDER BY created_at DESC, id LIMIT ?'),
    // The claim is one statement, so two redemptions of one token cannot both succeed.
    claimToken: db.prepare('UPDATE enrollment_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?'),
    releaseToken: db.prepare('UPDATE enrollment_tokens SET used_at = NULL WHERE id = ? AND used_at = ?'),
    unusedTokensFor: db.prepare<[string, number], EnrollmentTokenRow>('SELECT * FROM enrollment_tokens WHERE edge_id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at'),
    revokeToken: db.prepare('UPDATE enrollment_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL'),

    audit: db.prepare(
      'INSERT INTO audit_log (at, actor, role, action, target, service_id, outcome, detail, owner_service_id) VALUES (@at, @actor, @role, @action, @target, @service_id, @outcome, @detail, @owner_service_id)',
    ),
    auditPage: db.prepare<[number, number], AuditRow>('SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?'),
    // A service sees its own entries and the refused attempts of others on what it owns.
    auditPageOf: db.prepare<{ s: string; before: number; limit: number }, AuditRow>(
      `SELECT * FROM (
         SELECT * FROM audit_log WHERE service_id = @s AND id < @before
         UNION SELECT * FROM audit_log WHERE owner_service_id = @s AND id < @before
       ) ORDER BY id DESC LIMIT @limit`,
    ),
  };

  const auditStatements = new Map<string, ReturnType<typeof db.prepare<Record<string, unknown>, AuditRow>>>();
  return {
    operator: (name: string): OperatorRow | undefined => q.operator.get(name),
    operators: (): OperatorRow[] => q.operators.all(),
    insertOperator: (o: { name: string; role: OperatorRole; serviceId: string | null; passwordHash: string; at: number }) =>
      void q.insertOperator.run(o.name, o.role, o.serviceId, o.passwordHash, o.at),
    setPassword: (name: string, hash: string): boolean => q.setPassword.run(hash, name).changes > 0,
    setDisabled: (name: string, disabled: boolean): boolean => q.setDisabled.run(disabled ? 1 : 0, name).changes > 0,
    markSignedIn: (name: string, at: number) => void q.signedIn.run(at, name),

    insertSession: (s: SessionRow) => void q.insertSession.run(s.id_hash, s.operator, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at),
    session: (idHash: string): SessionRow | undefined => q.session.get(idHash),
    touchSession: (idHash: string, at: number) => void q.touchSession.run(at, idHash),
    deleteSession: (idHash: string) => void q.deleteSession.run(idHash),
    deleteSessionsOf: (operator: string): number => q.deleteSessionsOf.run(operator).changes,
    purgeSessions: (now: number): number => q.purgeSessions.run(now).changes,

    failure: (kind: FailureRow['kind'], key: string): FailureRow | undefined => q.failure.get(kind, key),
    saveFailure: (row: FailureRow) => void q.upsertFailure.run(row),
    clearFailure: (kind: FailureRow['kind'], key: string) => void q.clearFailure.run(kind, key),
    /** Forgets counters whose window ended before `windowStartBefore` and that hold no lock at `now`. */
    purgeFailures: (windowStartBefore: number, now: number): number => q.purgeFailures.run(windowStartBefore, now).changes,
    /** Runs `fn` in one transaction (several counters updated as one write). */
    atomically: <T>(fn: () => T): T => db.transaction(fn)(),

    insertToken: (t: Pick<EnrollmentTokenRow, 'id' | 'secret_hash' | 'service_id' | 'edge_id' | 'created_by' | 'created_at' | 'expires_at'> & { allow_revoked?: boolean }) =>
      void q.insertToken.run(t.id, t.secret_hash, t.service_id, t.edge_id, t.created_by, t.created_at, t.expires_at, t.allow_revoked ? 1 : 0),
    token: (id: string): EnrollmentTokenRow | undefined => q.token.get(id),
    tokens: (serviceId?: string, limit = 200): EnrollmentTokenRow[] => (serviceId === undefined ? q.tokens.all(limit) : q.tokensOf.all(serviceId, limit)),
    claimToken: (id: string, now: number): boolean => q.claimToken.run(now, id, now).changes === 1,
    releaseToken: (id: string, claimedAt: number) => void q.releaseToken.run(id, claimedAt),
    /** Tokens for this edge id (in any service) that could still be redeemed at `now`. */
    unusedTokensFor: (edgeId: string, now: number): EnrollmentTokenRow[] => q.unusedTokensFor.all(edgeId, now),
    revokeToken: (id: string, by: string, at: number): boolean => q.revokeToken.run(at, by, id).changes === 1,

    audit: (e: AuditInput): number =>
      Number(
        q.audit.run({
          at: e.at,
          actor: e.actor,
          role: e.role ?? null,
          action: e.action,
          target: e.target ?? null,
          service_id: e.service_id ?? null,
          outcome: e.outcome ?? 'ok',
          detail: e.detail ? JSON.stringify(e.detail) : null,
          owner_service_id: e.owner_service_id ?? null,
        }).lastInsertRowid,
      ),
    /**
     * Newest first, before the id `before` (keyset paging); only one service's entries when given
     * (with the refused attempts of others on what it owns); filtered by actor, action, the service
     * acted on, and time [from, to).
     */
    auditLog: (opts: AuditFilter = {}): AuditRow[] => {
      const before = opts.before ?? Number.MAX_SAFE_INTEGER;
      const limit = opts.limit ?? 100;
      const filtered = opts.actor || opts.action || opts.service || opts.from !== undefined || opts.to !== undefined;
      if (!filtered) return opts.serviceId === undefined ? q.auditPage.all(before, limit) : q.auditPageOf.all({ s: opts.serviceId, before, limit });
      const parts = ['id < @before'];
      if (opts.serviceId !== undefined) parts.push('(service_id = @own OR owner_service_id = @own)');
      if (opts.actor) parts.push('actor = @actor');
      if (opts.action) parts.push("(action = @action OR action LIKE @actionPrefix ESCAPE '\\')");
      if (opts.service) parts.push('(service_id = @service OR owner_service_id = @service)');
      if (opts.from !== undefined) parts.push('at >= @from');
      if (opts.to !== undefined) parts.push('at < @to');
      const sql = `SELECT * FROM audit_log WHERE ${parts.join(' AND ')} ORDER BY id DESC LIMIT @limit`;
      let st = auditStatements.get(sql);
      if (!st) {
        st = db.prepare<Record<string, unknown>, AuditRow>(sql);
        auditStatements.set(sql, st);
      }
      return st.all({
        before,
        limit,
        own: opts.serviceId ?? null,
        actor: opts.actor ?? null,
        action: opts.action ?? null,
        // "device" finds device.revoke and device.*: a prefix up to a dot.
        actionPrefix: opts.action ? `${opts.action.replace(/[\\%_]/g, (c) => `\\${c}`)}.%` : null,
        service: opts.service ?? null,
        from: opts.from ?? null,
        to: opts.to ?? null,
      });
    },

  };
}

export type ConsoleRepo = ReturnType<typeof createConsoleRepo>;
