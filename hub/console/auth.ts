// Operator sign-in: password check, lockout per account and per client address, server-side sessions
// with idle and absolute expiry, and the CSRF token bound to each session. Pure policy over the
// console repository; cookies and forms are the HTTP layer's business (hub/console/mount.tsx).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ConsoleRepo, FailureRow, OperatorRole, OperatorRow, SessionRow } from '../store/console-repo.ts';
import { addressKey } from './address-key.ts';
import { dummyHash, verifyPassword } from './password.ts';

/**
 * Sign-in limits. Every attempt is counted before its password hash runs (so parallel guesses cannot
 * outrun the limit) and refunded when it succeeds. Three counters: one account name from one client
 * address, one address over all names, one name over all addresses. Locks of an address (and of a
 * name from an address) double with each repeat, up to `maxLockMs`; a lock of a name over all
 * addresses never grows, so nobody can lock an operator out for long, and the operator signs in from
 * another address meanwhile (a stranger at one address reaches that address's limits long before
 * the name's).
 */
export interface LockoutPolicy {
  /** Attempts at one account name from one client address within the window that lock that name for that address. */
  accountFailures: number;
  /** Attempts from one client address (IPv4 address, IPv6 /64) within the window, whatever the names, that lock the address. */
  addressFailures: number;
  /** Attempts at one account name from all addresses within the window that lock the name everywhere, for `lockMs` only. */
  accountTotalFailures: number;
  windowMs: number;
  /** The first lock; each further lock of the same address, or name from that address, is twice as long. */
  lockMs: number;
  /** The longest lock; strikes are forgotten once a lock has been over this long. */
  maxLockMs: number;
}

export interface SessionPolicy {
  /** A session unused for this long ends. */
  idleMs: number;
  /** A session ends this long after sign-in, used or not. */
  maxMs: number;
}

export const DEFAULT_LOCKOUT: LockoutPolicy = {
  accountFailures: 5,
  addressFailures: 20,
  accountTotalFailures: 100,
  windowMs: 15 * 60_000,
  lockMs: 15 * 60_000,
  maxLockMs: 24 * 3600_000,
};
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

export type SignInResult = { ok: true; token: string; session: ActiveSession } | { ok: false; reason: 'invalid' } | { ok: false; reason: 'locked'; until: number };

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

  type Counter = { kind: FailureRow['kind']; key: string; limit: number; escalate: boolean };
  /** What a reservation changed, to undo on success. */
  type Reserved = { c: Counter; prev: FailureRow | undefined; lockedNow: boolean };

  async function lockedUntil(c: Counter, t: number): Promise<number | undefined> {
    const f = await repo.failure(c.kind, c.key);
    return f?.locked_until && f.locked_until > t ? f.locked_until : undefined;
  }

  /** Counts one attempt; the attempt that reaches the limit locks the counter (and is still checked). */
  async function reserve(c: Counter, t: number): Promise<Reserved> {
    const f = await repo.failure(c.kind, c.key);
    // A quiet day after the last lock ended forgets the strikes.
    const strikes = f && !(f.locked_until !== null && t - f.locked_until > lockout.maxLockMs) ? f.strikes : 0;
    // A new window after the old one ran out, or once a lock has ended.
    const fresh = !f || t - f.window_start >= lockout.windowMs || (f.locked_until !== null && f.locked_until <= t && f.window_start < f.locked_until);
    const failures = (fresh ? 0 : f.failures) + 1;
    if (failures >= c.limit) {
      const lockFor = c.escalate ? Math.min(lockout.maxLockMs, lockout.lockMs * 2 ** Math.min(strikes, 30)) : lockout.lockMs;
      await repo.saveFailure({ kind: c.kind, key: c.key, failures: 0, window_start: t, locked_until: t + lockFor, strikes: strikes + 1 });
      return { c, prev: f, lockedNow: true };
    }
    await repo.saveFailure({ kind: c.kind, key: c.key, failures, window_start: fresh ? t : f.window_start, locked_until: f?.locked_until ?? null, strikes });
    return { c, prev: f, lockedNow: false };
  }

  /** A successful attempt gives its count back; a lock its own count set is undone (the right password was given). */
  async function refund(r: Reserved): Promise<void> {
    if (r.c.kind === 'account_address' || (r.lockedNow && !r.prev)) return repo.clearFailure(r.c.kind, r.c.key);
    if (r.lockedNow) return repo.saveFailure(r.prev!);
    const f = await repo.failure(r.c.kind, r.c.key);
    if (f) await repo.saveFailure({ ...f, failures: Math.max(0, f.failures - 1) });
  }

  let attempts = 0;

  return {
    lockout,
    policy,

    /**
     * Checks a name and password from a client address. The attempt is counted (and locks refused)
     * in one transaction that serializes with every other attempt's, before the password hash is awaited, so no number of parallel guesses gets more
     * hash checks than the limits allow. An unknown or disabled name costs the same scrypt as a
     * wrong password.
     */
    async signIn(name: string, password: string, address: string): Promise<SignInResult> {
      const account = name.trim().toLowerCase();
      const where = addressKey(address);
      const counters: Counter[] = [
        { kind: 'account_address', key: `${account}\n${where}`, limit: lockout.accountFailures, escalate: true },
        { kind: 'address', key: where, limit: lockout.addressFailures, escalate: true },
        { kind: 'account', key: account, limit: lockout.accountTotalFailures, escalate: false },
      ];
      const t0 = now();
      const admitted = await repo.atomically(async (): Promise<{ until: number; reserved?: undefined } | { until?: undefined; reserved: Reserved[] }> => {
        let until = 0;
        for (const c of counters) until = Math.max(until, (await lockedUntil(c, t0)) ?? 0);
        if (until) return { until };
        if (++attempts % 100 === 0) await repo.purgeFailures(t0 - lockout.windowMs, t0 - lockout.maxLockMs);
        const reserved: Reserved[] = [];
        for (const c of counters) reserved.push(await reserve(c, t0));
        return { reserved };
      });
      if (admitted.until !== undefined) return { ok: false, reason: 'locked', until: admitted.until };
      const row = await repo.operator(account);
      const usable = row && !row.disabled;
      const good = await verifyPassword(password, usable ? row.password_hash : await dummyHash());
      const t = now();
      if (!good || !usable) {
        let lockedTill = 0;
        for (const c of counters) lockedTill = Math.max(lockedTill, (await lockedUntil(c, t)) ?? 0);
        return lockedTill ? { ok: false, reason: 'locked', until: lockedTill } : { ok: false, reason: 'invalid' };
      }
      await repo.atomically(async () => {
        for (const r of admitted.reserved) await refund(r);
      });
      await repo.markSignedIn(row.name, t);
      await repo.purgeSessions(t);
      const token = randomBytes(32).toString('base64url');
      const s: SessionRow = {
        id_hash: hashToken(token),
        operator: row.name,
        csrf_token: randomBytes(32).toString('base64url'),
        created_at: t,
        last_seen_at: t,
        expires_at: t + policy.maxMs,
      };
      await repo.insertSession(s);
      return { ok: true, token, session: { operator: operatorOf(row), csrfToken: s.csrf_token, idHash: s.id_hash, expiresAt: s.expires_at } };
    },

    /** The live session of a cookie value, or undefined (unknown, expired, idle too long, operator disabled). */
    async resolve(token: string | undefined): Promise<ActiveSession | undefined> {
      if (!token || !TOKEN_RE.test(token)) return undefined;
      const idHash = hashToken(token);
      const s = await repo.session(idHash);
      if (!s) return undefined;
      const t = now();
      const row = await repo.operator(s.operator);
      if (t >= s.expires_at || t - s.last_seen_at >= policy.idleMs || !row || row.disabled) {
        await repo.deleteSession(idHash);
        return undefined;
      }
      // Sliding idle expiry; written at most every few seconds to spare the disk.
      if (t - s.last_seen_at > 5_000) await repo.touchSession(idHash, t);
      return { operator: operatorOf(row), csrfToken: s.csrf_token, idHash, expiresAt: Math.min(s.expires_at, t + policy.idleMs) };
    },

    async signOut(session: ActiveSession): Promise<void> {
      await repo.deleteSession(session.idHash);
    },
  };
}

export type ConsoleAuth = ReturnType<typeof createConsoleAuth>;
