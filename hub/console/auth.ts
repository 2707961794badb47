// Operator sign-in: password check, lockout per account and per client address, server-side sessions
// with idle and absolute expiry, and the CSRF token bound to each session. Pure policy over the
// console repository; cookies and forms are the HTTP layer's business (hub/console/mount.tsx).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ConsoleRepo, FailureRow, OperatorRole, OperatorRow, SessionRow } from '../store/console-repo.ts';
import { dummyHash, verifyPassword } from './password.ts';

export interface LockoutPolicy {
  /** Failures of one account name within the window that lock it. */
  accountFailures: number;
  /** Failures from one client address within the window that lock the address. */
  addressFailures: number;
  windowMs: number;
  lockMs: number;
}

export interface SessionPolicy {
  /** A session unused for this long ends. */
  idleMs: number;
  /** A session ends this long after sign-in, used or not. */
  maxMs: number;
}

export const DEFAULT_LOCKOUT: LockoutPolicy = { accountFailures: 5, addressFailures: 20, windowMs: 15 * 60_000, lockMs: 15 * 60_000 };
export const DEFAULT_SESSION: SessionPolicy = { idleMs: 30 * 60_000, maxMs: 12 * 3600_000 };

/** Who is signed in, as the pages see it. */
export interface Operator {
  name: string;
  role: OperatorRole;
  /** The one service of a service administrator; undefined for a platform operator. */
  serviceId?: string;
}

export interface ActiveSession {
  operator: Operator;
  csrfToken: string;
  idHash: string;
  expiresAt: number;
}

export type SignInResult =
  | { ok: true; token: string; session: ActiveSession }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'locked'; until: number };

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

/** A session cookie value: 32 random bytes, base64url. */
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

export function operatorOf(row: OperatorRow): Operator {
  return { name: row.name, role: row.role, ...(row.service_id ? { serviceId: row.service_id } : {}) };
}

/** Constant-time equality of two strings (CSRF tokens). */
export function sameSecret(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y) && a.length === b.length;
}

export function createConsoleAuth(deps: { repo: ConsoleRepo; now?: () => number; lockout?: Partial<LockoutPolicy>; session?: Partial<SessionPolicy> }) {
  const { repo } = deps;
  const now = deps.now ?? Date.now;
  const lockout = { ...DEFAULT_LOCKOUT, ...deps.lockout };
  const policy = { ...DEFAULT_SESSION, ...deps.session };

  function lockedUntil(kind: FailureRow['kind'], key: string, t: number): number | undefined {
    const f = repo.failure(kind, key);
    return f?.locked_until && f.locked_until > t ? f.locked_until : undefined;
  }

  function recordFailure(kind: FailureRow['kind'], key: string, limit: number, t: number): number | undefined {
    const f = repo.failure(kind, key);
    const fresh = !f || t - f.window_start > lockout.windowMs || (f.locked_until !== null && f.locked_until <= t);
    const failures = fresh ? 1 : f.failures + 1;
    const locked = failures >= limit ? t + lockout.lockMs : null;
    repo.saveFailure({ kind, key, failures: locked ? 0 : failures, window_start: fresh ? t : f.window_start, locked_until: locked });
    return locked ?? undefined;
  }

  return {
    lockout,
    policy,

    /**
     * Checks a name and password. Locked accounts and addresses are refused before the password is
     * looked at; an unknown or disabled name costs the same scrypt as a wrong password.
     */
    async signIn(name: string, password: string, address: string): Promise<SignInResult> {
      const account = name.trim().toLowerCase();
      const t0 = now();
      const until = Math.max(lockedUntil('account', account, t0) ?? 0, lockedUntil('address', address, t0) ?? 0);
      if (until) return { ok: false, reason: 'locked', until };
      const row = repo.operator(account);
      const usable = row && !row.disabled;
      const good = await verifyPassword(password, usable ? row.password_hash : await dummyHash());
      const t = now();
      if (!good || !usable) {
        const a = recordFailure('account', account, lockout.accountFailures, t);
        const b = recordFailure('address', address, lockout.addressFailures, t);
        const lockedTill = Math.max(a ?? 0, b ?? 0);
        return lockedTill ? { ok: false, reason: 'locked', until: lockedTill } : { ok: false, reason: 'invalid' };
      }
      repo.clearFailure('account', account);
      repo.markSignedIn(row.name, t);
      repo.purgeSessions(t);
      const token = randomBytes(32).toString('base64url');
      const s: SessionRow = {
        id_hash: hashToken(token),
        operator: row.name,
        csrf_token: randomBytes(32).toString('base64url'),
        created_at: t,
        last_seen_at: t,
        expires_at: t + policy.maxMs,
      };
      repo.insertSession(s);
      return { ok: true, token, session: { operator: operatorOf(row), csrfToken: s.csrf_token, idHash: s.id_hash, expiresAt: s.expires_at } };
    },

    /** The live session of a cookie value, or undefined (unknown, expired, idle too long, operator disabled). */
    resolve(token: string | undefined): ActiveSession | undefined {
      if (!token || !TOKEN_RE.test(token)) return undefined;
      const idHash = hashToken(token);
      const s = repo.session(idHash);
      if (!s) return undefined;
      const t = now();
      const row = repo.operator(s.operator);
      if (t >= s.expires_at || t - s.last_seen_at >= policy.idleMs || !row || row.disabled) {
        repo.deleteSession(idHash);
        return undefined;
      }
      // Sliding idle expiry; written at most every few seconds to spare the disk.
      if (t - s.last_seen_at > 5_000) repo.touchSession(idHash, t);
      return { operator: operatorOf(row), csrfToken: s.csrf_token, idHash, expiresAt: Math.min(s.expires_at, t + policy.idleMs) };
    },

    signOut(session: ActiveSession): void {
      repo.deleteSession(session.idHash);
    },
  };
}

export type ConsoleAuth = ReturnType<typeof createConsoleAuth>;
