// One-time enrollment tokens: an operator issues one for a service and an edge id; the technician's
// provisioning script redeems it once, before it expires, for the edge's device certificate. Only a
// hash of the secret is stored, so the database does not hold usable tokens.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ERROR_CODES, fail, MyKeyError, ok, type Result } from '../../shared/errors.ts';
import { isEdgeId, isServiceId } from '../../shared/ids.ts';
import type { ConsoleRepo, EnrollmentTokenRow } from '../store/console-repo.ts';
import { enrollConflict, type DeviceRepo, type EnrollConflict } from '../store/device-repo.ts';

export const DEFAULT_TOKEN_TTL_MS = 24 * 3600_000;
/** The longest a token may live: a token is a key to a device certificate. */
export const MAX_TOKEN_TTL_MS = 7 * 24 * 3600_000;

export type TokenState = 'active' | 'used' | 'expired' | 'revoked';

/** `mket_<12 hex id>.<43 base64url secret>` */
export const ENROLLMENT_TOKEN_PATTERN = '^mket_[0-9a-f]{12}\\.[A-Za-z0-9_-]{43}$';
const TOKEN_RE = new RegExp(ENROLLMENT_TOKEN_PATTERN);

const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');

export function tokenState(row: EnrollmentTokenRow, now: number): TokenState {
  if (row.revoked_at !== null) return 'revoked';
  if (row.used_at !== null) return 'used';
  return row.expires_at <= now ? 'expired' : 'active';
}

/** What an operator should know before handing a token out (the token is issued all the same). */
export type IssueWarning = { kind: 'enrolled'; serviceId: string; revoked: boolean } | { kind: 'unused'; ids: string[] };

export type TokenError = 'enrollment_token_invalid' | 'enrollment_token_expired' | 'enrollment_token_used' | EnrollConflict;

export function createEnrollmentTokens(deps: {
  repo: ConsoleRepo;
  /**
   * The enrolled devices, so that a token for an edge id of another service (or of a revoked device)
   * is refused when issued and when redeemed. Device enrollment checks again when it records the
   * certificate; without this the refusal comes only from there and is not filed for the owner.
   */
  devices?: Pick<DeviceRepo, 'get'>;
  now?: () => number;
  ttlMs?: number;
}) {
  const { repo } = deps;
  const now = deps.now ?? Date.now;
  const defaultTtl = deps.ttlMs ?? DEFAULT_TOKEN_TTL_MS;

  return {
    /**
     * Issues a token; the token text is returned only here. Refused (MyKeyError with the code and
     * `details.ownerServiceId`) when the edge id belongs to a live device of another service, or to a
     * revoked device and `allowRevoked` (a platform operator's decision: the caller checks the role)
     * is not set.
     */
    async issue(input: { serviceId: string; edgeId: string; by: string; ttlMs?: number; allowRevoked?: boolean }): Promise<{ id: string; token: string; expiresAt: number }> {
      if (!isServiceId(input.serviceId)) throw new MyKeyError('validation_failed', 'not a service id');
      if (!isEdgeId(input.edgeId)) throw new MyKeyError('validation_failed', 'an edge id is 2-64 lower-case letters, digits and hyphens');
      const ttl = input.ttlMs ?? defaultTtl;
      if (!(ttl >= 60_000 && ttl <= MAX_TOKEN_TTL_MS)) throw new MyKeyError('validation_failed', 'a token lives between 1 minute and 7 days');
      const device = await deps.devices?.get(input.edgeId);
      const conflict = enrollConflict(device, input.serviceId, input.allowRevoked);
      if (conflict) throw new MyKeyError(conflict, undefined, { details: { ownerServiceId: device!.service_id } });
      const id = randomBytes(6).toString('hex');
      const secret = randomBytes(32).toString('base64url');
      const t = now();
      await repo.insertToken({
        id,
        secret_hash: hashSecret(secret),
        service_id: input.serviceId,
        edge_id: input.edgeId,
        created_by: input.by,
        created_at: t,
        expires_at: t + ttl,
        allow_revoked: input.allowRevoked === true,
      });
      return { id, token: `mket_${id}.${secret}`, expiresAt: t + ttl };
    },

    /**
     * Claims a token for `edgeId`: afterwards it is used, and a second claim fails. The claim is
     * undone with `release` when issuing the certificate fails, so the technician can try again.
     */
    async claim(token: string, edgeId: string): Promise<Result<{ row: EnrollmentTokenRow; claimedAt: number }, TokenError>> {
      if (!TOKEN_RE.test(token)) return fail('enrollment_token_invalid', 'not an enrollment token');
      const [head, secret] = token.split('.');
      const row = await repo.token(head.slice('mket_'.length));
      const a = Buffer.from(row?.secret_hash ?? '0'.repeat(64), 'hex');
      const b = Buffer.from(hashSecret(secret), 'hex');
      if (!row || !timingSafeEqual(a, b)) return fail('enrollment_token_invalid', 'unknown enrollment token');
      const t = now();
      const state = tokenState(row, t);
      if (state === 'revoked') return fail('enrollment_token_invalid', 'the enrollment token was revoked');
      if (state === 'used') return fail('enrollment_token_used');
      if (state === 'expired') return fail('enrollment_token_expired');
      if (row.edge_id !== edgeId) return fail('enrollment_token_invalid', 'the enrollment token is for another edge id');
      // The edge may have been enrolled elsewhere (or revoked) since the token was issued: checked
      // again now, and the refusal is filed where the owning service sees it, naming who issued the token.
      const device = await deps.devices?.get(edgeId);
      const conflict = enrollConflict(device, row.service_id, row.allow_revoked === 1);
      if (conflict) {
        await repo.audit({
          at: t,
          actor: row.created_by,
          action: 'enrollment.redeem',
          target: `mket_${row.id}`,
          service_id: row.service_id,
          owner_service_id: device!.service_id === row.service_id ? null : device!.service_id,
          outcome: conflict,
          detail: { edgeId, redeemedBy: `edge:${edgeId}` },
        });
        return fail(conflict, ERROR_CODES[conflict].title);
      }
      if (!(await repo.claimToken(row.id, t))) return fail('enrollment_token_used');
      return ok({ row, claimedAt: t });
    },

    /** The edge id is enrolled already (maybe elsewhere, maybe revoked), or has unused tokens. */
    async warnings(edgeId: string): Promise<IssueWarning[]> {
      const out: IssueWarning[] = [];
      const d = await deps.devices?.get(edgeId);
      if (d) out.push({ kind: 'enrolled', serviceId: d.service_id, revoked: d.status === 'revoked' });
      const unused = await repo.unusedTokensFor(edgeId, now());
      if (unused.length) out.push({ kind: 'unused', ids: unused.map((t) => `mket_${t.id}`) });
      return out;
    },

    async release(id: string, claimedAt: number): Promise<void> {
      await repo.releaseToken(id, claimedAt);
    },

    /** Revokes an unused token. False when unknown, used or already revoked. */
    revoke(id: string, by: string): Promise<boolean> {
      return repo.revokeToken(id, by, now());
    },

    async list(serviceId?: string): Promise<(EnrollmentTokenRow & { state: TokenState })[]> {
      const t = now();
      return (await repo.tokens(serviceId)).map((r) => ({ ...r, state: tokenState(r, t) }));
    },
  };
}

export type EnrollmentTokens = ReturnType<typeof createEnrollmentTokens>;
