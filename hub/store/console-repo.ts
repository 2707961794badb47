// Repository of the operator console: operators, sessions, sign-in failure counters, enrollment
// tokens and the audit log. Plain statements; policy (lockout thresholds, expiry, roles) lives in
// hub/console.
import type { Db } from './db.ts';
import { sqlOf, type Sql } from './sql.ts';
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

const Q = {
  operator: 'SELECT * FROM console_operators WHERE name = ?',
  operators: 'SELECT * FROM console_operators ORDER BY name',
  insertOperator: 'INSERT INTO console_operators (name, role, service_id, password_hash, created_at) VALUES (?, ?, ?, ?, ?)',
  setPassword: 'UPDATE console_operators SET password_hash = ? WHERE name = ?',
  setDisabled: 'UPDATE console_operators SET disabled = ? WHERE name = ?',
  signedIn: 'UPDATE console_operators SET last_sign_in_at = ? WHERE name = ?',

  insertSession: 'INSERT INTO console_sessions (id_hash, operator, csrf_token, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
  session: 'SELECT * FROM console_sessions WHERE id_hash = ?',
  touchSession: 'UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ?',
  deleteSession: 'DELETE FROM console_sessions WHERE id_hash = ?',
  deleteSessionsOf: 'DELETE FROM console_sessions WHERE operator = ?',
  purgeSessions: 'DELETE FROM console_sessions WHERE expires_at <= ?',

  failure: 'SELECT * FROM console_sign_in_failures WHERE kind = ? AND key = ?',
  upsertFailure: `INSERT INTO console_sign_in_failures (kind, key, failures, window_start, locked_until, strikes) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (kind, key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start, locked_until = excluded.locked_until, strikes = excluded.strikes`,
  clearFailure: 'DELETE FROM console_sign_in_failures WHERE kind = ? AND key = ?',
  purgeFailures: 'DELETE FROM console_sign_in_failures WHERE window_start < ? AND (locked_until IS NULL OR locked_until < ?)',

  insertToken: 'INSERT INTO enrollment_tokens (id, secret_hash, service_id, edge_id, created_by, created_at, expires_at, allow_revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  token: 'SELECT * FROM enrollment_tokens WHERE id = ?',
  tokens: 'SELECT * FROM enrollment_tokens ORDER BY created_at DESC, id LIMIT ?',
  tokensOf: 'SELECT * FROM enrollment_tokens WHERE service_id = ? ORDER BY created_at DESC, id LIMIT ?',
  // The claim is one statement, so two redemptions of one token cannot both succeed.
  claimToken: 'UPDATE enrollment_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?',
  releaseToken: 'UPDATE enrollment_tokens SET used_at = NULL WHERE id = ? AND used_at = ?',
  unusedTokensFor: 'SELECT * FROM enrollment_tokens WHERE edge_id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at',
  revokeToken: 'UPDATE enrollment_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL',

  audit: `INSERT INTO audit_log (at, actor, role, action, target, service_id, outcome, detail, owner_service_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
     RETURNING id`,
  auditPage: 'SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?',
  // A service sees its own entries and the refused attempts of others on what it owns.
  auditPageOf: `SELECT * FROM (
       SELECT * FROM audit_log WHERE service_id = ? AND id < ?
       UNION SELECT * FROM audit_log WHERE owner_service_id = ? AND id < ?
     ) AS own ORDER BY id DESC LIMIT ?`,
};

/** The advisory lock key of `atomically` on PostgreSQL (any constant; 'mykeyco1' as a 64-bit number). */
const ATOMIC_LOCK = '7885681097389061937';

/** The repository over an executor (or a SQLite connection, through its executor). */
export function createConsoleRepo(target: Sql | Db) {
  const sql = sqlOf(target);
  const run = async (text: string, params: readonly unknown[]): Promise<void> => void (await sql.run(text, params));
  const changes = async (text: string, params: readonly unknown[]): Promise<number> => (await sql.run(text, params)).changes;
  return {
    operator: (name: string): Promise<OperatorRow | undefined> => sql.get<OperatorRow>(Q.operator, [name]),
    operators: (): Promise<OperatorRow[]> => sql.all<OperatorRow>(Q.operators),
    insertOperator: (o: { name: string; role: OperatorRole; serviceId: string | null; passwordHash: string; at: number }) => run(Q.insertOperator, [o.name, o.role, o.serviceId, o.passwordHash, o.at]),
    setPassword: async (name: string, hash: string): Promise<boolean> => (await changes(Q.setPassword, [hash, name])) > 0,
    setDisabled: async (name: string, disabled: boolean): Promise<boolean> => (await changes(Q.setDisabled, [disabled ? 1 : 0, name])) > 0,
    markSignedIn: (name: string, at: number) => run(Q.signedIn, [at, name]),

    insertSession: (s: SessionRow) => run(Q.insertSession, [s.id_hash, s.operator, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at]),
    session: (idHash: string): Promise<SessionRow | undefined> => sql.get<SessionRow>(Q.session, [idHash]),
    touchSession: (idHash: string, at: number) => run(Q.touchSession, [at, idHash]),
    deleteSession: (idHash: string) => run(Q.deleteSession, [idHash]),
    deleteSessionsOf: (operator: string): Promise<number> => changes(Q.deleteSessionsOf, [operator]),
    purgeSessions: (now: number): Promise<number> => changes(Q.purgeSessions, [now]),

    failure: (kind: FailureRow['kind'], key: string): Promise<FailureRow | undefined> => sql.get<FailureRow>(Q.failure, [kind, key]),
    saveFailure: (row: FailureRow) => run(Q.upsertFailure, [row.kind, row.key, row.failures, row.window_start, row.locked_until, row.strikes]),
    clearFailure: (kind: FailureRow['kind'], key: string) => run(Q.clearFailure, [kind, key]),
    /** Forgets counters whose window ended before `windowStartBefore` and that hold no lock at `now`. */
    purgeFailures: (windowStartBefore: number, now: number): Promise<number> => changes(Q.purgeFailures, [windowStartBefore, now]),
    /** Runs `fn` in one transaction (several counters updated as one write). */
    atomically: <T>(fn: () => Promise<T>): Promise<T> =>
      sql.tx(
        async () => {
          // PostgreSQL: one such transaction at a time across every hub on the database (a
          // transaction-level advisory lock), as SQLite's single writer gives on one machine, so two
          // attempts never both read a counter before either writes it.
          if (sql.dialect === 'postgres') await sql.get('SELECT pg_advisory_xact_lock(?) AS locked', [ATOMIC_LOCK]);
          return fn();
        },
        { immediate: true },
      ),

    insertToken: (t: Pick<EnrollmentTokenRow, 'id' | 'secret_hash' | 'service_id' | 'edge_id' | 'created_by' | 'created_at' | 'expires_at'> & { allow_revoked?: boolean }) =>
      run(Q.insertToken, [t.id, t.secret_hash, t.service_id, t.edge_id, t.created_by, t.created_at, t.expires_at, t.allow_revoked ? 1 : 0]),
    token: (id: string): Promise<EnrollmentTokenRow | undefined> => sql.get<EnrollmentTokenRow>(Q.token, [id]),
    tokens: (serviceId?: string, limit = 200): Promise<EnrollmentTokenRow[]> =>
      serviceId === undefined ? sql.all<EnrollmentTokenRow>(Q.tokens, [limit]) : sql.all<EnrollmentTokenRow>(Q.tokensOf, [serviceId, limit]),
    claimToken: async (id: string, now: number): Promise<boolean> => (await changes(Q.claimToken, [now, id, now])) === 1,
    releaseToken: (id: string, claimedAt: number) => run(Q.releaseToken, [id, claimedAt]),
    /** Tokens for this edge id (in any service) that could still be redeemed at `now`. */
    unusedTokensFor: (edgeId: string, now: number): Promise<EnrollmentTokenRow[]> => sql.all<EnrollmentTokenRow>(Q.unusedTokensFor, [edgeId, now]),
    revokeToken: async (id: string, by: string, at: number): Promise<boolean> => (await changes(Q.revokeToken, [at, by, id])) === 1,

    audit: async (e: AuditInput): Promise<number> =>
      (await sql.get<{ id: number }>(Q.audit, [
        e.at,
        e.actor,
        e.role ?? null,
        e.action,
        e.target ?? null,
        e.service_id ?? null,
        e.outcome ?? 'ok',
        e.detail ? JSON.stringify(e.detail) : null,
        e.owner_service_id ?? null,
      ]))!.id,
    /**
     * Newest first, before the id `before` (keyset paging); only one service's entries when given
     * (with the refused attempts of others on what it owns); filtered by actor, action, the service
     * acted on, and time [from, to).
     */
    auditLog: (opts: AuditFilter = {}): Promise<AuditRow[]> => {
      const before = opts.before ?? Number.MAX_SAFE_INTEGER;
      const limit = opts.limit ?? 100;
      const filtered = opts.actor || opts.action || opts.service || opts.from !== undefined || opts.to !== undefined;
      if (!filtered) {
        return opts.serviceId === undefined ? sql.all<AuditRow>(Q.auditPage, [before, limit]) : sql.all<AuditRow>(Q.auditPageOf, [opts.serviceId, before, opts.serviceId, before, limit]);
      }
      const parts = ['id < ?'];
      const params: unknown[] = [before];
      if (opts.serviceId !== undefined) {
        parts.push('(service_id = ? OR owner_service_id = ?)');
        params.push(opts.serviceId, opts.serviceId);
      }
      if (opts.actor) {
        parts.push('actor = ?');
        params.push(opts.actor);
      }
      if (opts.action) {
        // "device" finds device.revoke and device.*: a prefix up to a dot.
        parts.push("(action = ? OR action LIKE ? ESCAPE '\\')");
        params.push(opts.action, `${opts.action.replace(/[\\%_]/g, (c) => `\\${c}`)}.%`);
      }
      if (opts.service) {
        parts.push('(service_id = ? OR owner_service_id = ?)');
        params.push(opts.service, opts.service);
      }
      if (opts.from !== undefined) {
        parts.push('at >= ?');
        params.push(opts.from);
      }
      if (opts.to !== undefined) {
        parts.push('at < ?');
        params.push(opts.to);
      }
      params.push(limit);
      return sql.all<AuditRow>(`SELECT * FROM audit_log WHERE ${parts.join(' AND ')} ORDER BY id DESC LIMIT ?`, params);
    },
  };
}

export type ConsoleRepo = ReturnType<typeof createConsoleRepo>;
