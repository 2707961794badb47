// HTTP routes of the MyKey ID lifecycle.
import type { Env, Hono } from 'hono';
import { CarryOverRequest, ChallengeRequest, ChallengeResponse, ChangeIdRequest, HolderRequest, HolderView, RegisterResponse } from '../../shared/messages.ts';
import { MyKeyError, type ErrorCode } from '../../shared/errors.ts';
import { normalizeMyKeyId } from '../../shared/ids.ts';
import type { ChallengeBinding, ChallengeStore } from '../mykey/challenges.ts';
import type { MyKeyService } from '../mykey/service.ts';
import type { OpenApi } from './openapi.ts';
import { problem } from './problem.ts';
import { clientKey, rateLimit, type RateLimitOptions } from './rate-limit.ts';
import { createRouter, type BodyLimit } from './router.ts';

/** What a JPKI proof can be refused for (body and rate-limit errors are added by the registrar). */
const PROOF_ERRORS: ErrorCode[] = [
  'challenge_unknown',
  'challenge_expired',
  'challenge_replayed',
  'challenge_operation_mismatch',
  'challenge_parameters_mismatch',
  'cert_malformed',
  'cert_unknown_issuer',
  'cert_chain_broken',
  'cert_expired',
  'cert_not_yet_valid',
  'cert_revoked',
  'cert_revoked_superseded',
  'cert_revocation_unknown',
  'cert_key_usage',
  'cert_policy',
  'cert_key_type',
  'cert_critical_extension',
  'signature_invalid',
  'signature_malformed',
];

export interface MyKeyRoutesDeps extends BodyLimit {
  service: MyKeyService;
  /** The services a MyKey ID is linked with, added to the holder's view. */
  linksOf?: (mykeyId: string) => Promise<NonNullable<import('../../shared/messages.ts').HolderView['links']>>;
  challenges: ChallengeStore;
  rateLimits: { challenge: RateLimitOptions; register: RateLimitOptions };
}

/**
 * What a challenge request binds the challenge to: the operation and exactly the parameters that
 * operation takes (a parameter given for another operation is refused, not ignored).
 */
export function bindingOf(b: ChallengeRequest): ChallengeBinding {
  const extra = (allowed: string[]) => {
    for (const k of ['mykeyId', 'role', 'serviceId'] as const) {
      if (b[k] !== undefined && !allowed.includes(k)) throw new MyKeyError('validation_failed', `${k} is not a parameter of ${b.purpose}`);
    }
    for (const k of allowed) if (b[k as keyof ChallengeRequest] === undefined) throw new MyKeyError('validation_failed', `${b.purpose} needs ${k}`);
  };
  switch (b.purpose) {
    case 'change_id': {
      extra(['mykeyId']);
      const mykeyId = normalizeMyKeyId(b.mykeyId!);
      if (!mykeyId) throw new MyKeyError('mykey_id_malformed');
      return { operation: 'change_id', params: { mykeyId } };
    }
    case 'carry_over':
      extra(['role']);
      return { operation: 'carry_over', params: { role: b.role! } };
    case 'unlink':
      extra(['serviceId']);
      return { operation: 'unlink', params: { serviceId: b.serviceId! } };
    default:
      extra([]);
      return { operation: b.purpose };
  }
}

export function mountMyKeyRoutes<E extends Env>(app: Hono<E>, api: OpenApi, { service, challenges, rateLimits, linksOf, maxBodyBytes }: MyKeyRoutesDeps): void {
  const withLinks = async <V extends { mykeyId: string }>(v: V) => (linksOf ? { ...v, links: await linksOf(v.mykeyId) } : v);
  const tag = 'MyKey ID';
  const challengeLimit = rateLimit({ ...rateLimits.challenge, scope: 'challenge' });
  const registerLimit = rateLimit({ ...rateLimits.register, scope: 'register' });
  const r = createRouter(api, {}, { maxBodyBytes });

  r.route(
    {
      method: 'post',
      path: '/v1/challenges',
      tag,
      auth: 'public',
      summary: 'Issue a one-time challenge for the card to sign',
      description:
        'Valid once, for a short time, for one operation and its parameters: a proof over it is refused by any other operation (challenge_operation_mismatch) or with other parameters (challenge_parameters_mismatch). The card signs the challenge bytes with its user-authentication key (PIN). Each client (IPv4 address or IPv6 /64) may hold a bounded number of unused challenges (challenge_quota_exceeded).',
      body: ChallengeRequest,
      rateLimit: challengeLimit,
      responses: { 201: { description: 'the challenge', schema: ChallengeResponse } },
      errors: ['mykey_id_malformed', 'challenge_quota_exceeded', 'unavailable'],
    },
    async (c) => {
      const issued = await challenges.issue(bindingOf(c.get('body')), clientKey(c));
      if (!issued.ok) return problem(c, issued.code, issued.message);
      return c.json({ challenge: issued.value.challenge, expiresAt: new Date(issued.value.expiresAt).toISOString() }, 201);
    },
  );

  r.route(
    {
      method: 'post',
      path: '/v1/mykey-ids',
      tag,
      auth: 'public',
      summary: 'Create a MyKey ID (or get the one this certificate already has)',
      description:
        'The hub verifies the certificate to the configured JPKI trust anchors (chain, validity, key usage, policy), its revocation (CRL, OCSP) and the signature over the challenge. 201 when created, 200 when the certificate already had a MyKey ID.',
      body: HolderRequest,
      rateLimit: registerLimit,
      responses: { 201: { description: 'created', schema: RegisterResponse }, 200: { description: 'already registered', schema: RegisterResponse } },
      errors: [...PROOF_ERRORS, 'cert_superseded'],
    },
    async (c) => {
      const r = await service.register(c.get('body').proof);
      return c.json(r, r.created ? 201 : 200);
    },
  );

  r.route(
    {
      method: 'post',
      path: '/v1/holder/status',
      tag,
      auth: 'public',
      summary: "Read the holder's MyKey ID, its status and certificate history",
      body: HolderRequest,
      rateLimit: registerLimit,
      responses: { 200: { description: 'the MyKey ID', schema: HolderView } },
      errors: [...PROOF_ERRORS, 'mykey_id_not_found', 'cert_superseded'],
    },
    async (c) => c.json(await withLinks(await service.status(c.get('body').proof))),
  );

  r.route(
    {
      method: 'post',
      path: '/v1/holder/mykey-id',
      tag,
      auth: 'public',
      summary: 'Choose another free MyKey ID',
      description: 'The old MyKey ID is retired and never assigned again.',
      body: ChangeIdRequest,
      rateLimit: registerLimit,
      responses: { 200: { description: 'the MyKey ID after the change', schema: HolderView } },
      errors: [...PROOF_ERRORS, 'mykey_id_malformed', 'mykey_id_taken', 'mykey_id_not_found', 'mykey_id_suspended', 'mykey_id_invalidated'],
    },
    async (c) => {
      const b = c.get('body');
      return c.json(await withLinks(await service.changeId(b.proof, b.mykeyId)));
    },
  );

  r.route(
    {
      method: 'post',
      path: '/v1/holder/invalidate',
      tag,
      auth: 'public',
      summary: 'Invalidate the MyKey ID',
      body: HolderRequest,
      rateLimit: registerLimit,
      responses: { 200: { description: 'the invalidated MyKey ID', schema: HolderView } },
      errors: [...PROOF_ERRORS, 'mykey_id_not_found', 'mykey_id_invalidated'],
    },
    async (c) => c.json(await withLinks(await service.invalidate(c.get('body').proof))),
  );

  r.route(
    {
      method: 'post',
      path: '/v1/holder/carry-over',
      tag,
      auth: 'public',
      summary: 'Carry the MyKey ID over to a renewed certificate or a new card',
      description: 'Proofs from both cards: `proof` with the new certificate, `previous.proof` with the one currently bound (which may have expired or been revoked as superseded, not for a loss).',
      body: CarryOverRequest,
      rateLimit: registerLimit,
      responses: { 200: { description: 'the MyKey ID after the carry-over', schema: HolderView } },
      errors: [...PROOF_ERRORS, 'mykey_id_not_found', 'mykey_id_invalidated', 'mykey_id_suspended', 'carry_over_same_certificate', 'carry_over_new_cert_bound', 'cert_superseded'],
    },
    async (c) => {
      const b = c.get('body');
      return c.json(await withLinks(await service.carryOver(b.proof, b.previous.proof)));
    },
  );
  r.mount(app);
}
