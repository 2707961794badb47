// HTTP routes of services and links: the operator's service management, the services' business
// systems (server to server) and the holder's own unlinking.
import type { Env, Hono } from 'hono';
import {
  CreateServiceRequest,
  CredentialCreated,
  CredentialRequest,
  HolderUnlinkRequest,
  HolderView,
  LinkRequest,
  LinkResponse,
  ServiceView,
  TouchAssuranceRequest,
  WebhookRequest,
} from '../../shared/messages.ts';
import type { Links } from '../links/links.ts';
import type { MyKeyService } from '../mykey/service.ts';
import type { AuditInput } from '../store/console-repo.ts';
import type { LinkRepo, ServiceRow } from '../store/link-repo.ts';
import { checkWebhookUrl, type WebhookUrlPolicy } from '../notify/url-policy.ts';
import { adminAuth, serviceAuth } from './auth.ts';
import type { OpenApi } from './openapi.ts';
import { problem } from './problem.ts';
import { rateLimit, type RateLimitOptions } from './rate-limit.ts';
import { createRouter, type BodyLimit } from './router.ts';

export interface LinksRoutesDeps extends BodyLimit {
  links: Links;
  linkRepo: LinkRepo;
  service: MyKeyService;
  adminToken: () => string;
  rateLimits: { register: RateLimitOptions };
  /** Records a service's explicit decisions (a moved service ID) in the audit log. */
  audit?: (e: AuditInput) => void | Promise<void>;
  /** Which webhook targets the operator allows (hub config `webhooks`); strict when absent. */
  webhookUrlPolicy?: WebhookUrlPolicy;
}

/** What a webhook URL may be refused with (hub/notify/url-policy.ts). */
const WEBHOOK_URL_ERRORS = ['webhook_url_invalid', 'webhook_url_insecure', 'webhook_url_private'] as const;

export async function serviceView(repo: LinkRepo, s: ServiceRow, extra: { webhookSecret?: string } = {}): Promise<ServiceView> {
  const counts = (await repo.linkCounts()).filter((r) => r.service_id === s.id);
  const h = await repo.webhookHealth(s.id);
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    headSeq: s.head_seq,
    webhookUrl: s.webhook_url,
    requireHolderProof: s.require_holder_proof === 1,
    touchAssurance: s.touch_assurance ?? 'possession',
    ...extra,
    links: { active: counts.find((c) => c.state === 'active')?.n ?? 0, suspended: counts.find((c) => c.state === 'suspended')?.n ?? 0 },
    webhook: { pending: h.pending ?? 0, delivered: h.delivered ?? 0, oldestPendingAt: h.oldest ? new Date(h.oldest).toISOString() : null, lastError: h.last_error },
  };
}

export function mountLinksRoutes<E extends Env>(app: Hono<E>, api: OpenApi, deps: LinksRoutesDeps): void {
  const { links, linkRepo } = deps;
  const r = createRouter(api, { operator: adminAuth(deps.adminToken), service: serviceAuth((t) => links.authenticate(t)) }, { maxBodyBytes: deps.maxBodyBytes });
  /** An operator's action through the admin API, in the audit log (`via: 'api'` beside the console's). */
  const auditAdmin = (e: Omit<AuditInput, 'at' | 'actor' | 'role'>) => deps.audit?.({ at: Date.now(), actor: 'api:admin', role: 'operator', ...e, detail: { ...e.detail, via: 'api' } });

  r.route(
    {
      method: 'get',
      path: '/v1/admin/services',
      tag: 'Operator',
      auth: 'operator',
      summary: 'List services with link counts and webhook health',
      responses: { 200: { description: 'services', schema: ServiceView } },
    },
    async (c) => c.json(await Promise.all((await links.services()).map((s) => serviceView(linkRepo, s)))),
  );

  r.route(
    {
      method: 'post',
      path: '/v1/admin/services',
      tag: 'Operator',
      auth: 'operator',
      summary: 'Create a service (a library, a museum, a shopping street)',
      body: CreateServiceRequest,
      responses: { 201: { description: 'created; webhookSecret is shown once', schema: ServiceView } },
      errors: ['conflict', ...WEBHOOK_URL_ERRORS],
    },
    async (c) => {
      const b = c.get('body');
      if (b.webhookUrl) checkWebhookUrl(b.webhookUrl, deps.webhookUrlPolicy);
      const r = await links.createService(b);
      await auditAdmin({ action: 'service.create', target: r.service.id, service_id: r.service.id, detail: { name: r.service.name, webhook: !!b.webhookUrl } });
      return c.json(await serviceView(linkRepo, r.service, { webhookSecret: r.webhookSecret }), 201);
    },
  );

  r.route(
    {
      method: 'put',
      path: '/v1/admin/services/{serviceId}/webhook',
      tag: 'Operator',
      auth: 'operator',
      summary: "Set or clear a service's webhook; a new signing secret is returned once",
      body: WebhookRequest,
      responses: { 200: { description: 'the service', schema: ServiceView } },
      errors: ['not_found', ...WEBHOOK_URL_ERRORS],
    },
    async (c) => {
      const id = c.req.param('serviceId')!;
      const { url } = c.get('body');
      if (url) checkWebhookUrl(url, deps.webhookUrlPolicy);
      const r = await links.setWebhook(id, url);
      await auditAdmin({ action: 'webhook.set', target: id, service_id: id, detail: { cleared: !url } });
      return c.json(await serviceView(linkRepo, (await links.service(id))!, r));
    },
  );

  r.route(
    {
      method: 'put',
      path: '/v1/admin/services/{serviceId}/touch-assurance',
      tag: 'Operator',
      auth: 'operator',
      summary: "Set what a touch at the service's readers proves: possession (no PIN) or pin (PIN and JPKI signature checked at the reader)",
      description:
        "Edges of the service learn it with their device config (at start, on reconnect, at every catch-up poll). An edge too old to know the field keeps answering on possession alone: upgrade the service's edges first.",
      body: TouchAssuranceRequest,
      responses: { 200: { description: 'the service', schema: ServiceView } },
      errors: ['not_found', 'forbidden'],
    },
    async (c) => {
      const id = c.req.param('serviceId')!;
      const level = c.get('body').touchAssurance;
      await links.setTouchAssurance(id, level);
      await auditAdmin({ action: 'service.touch_assurance', target: id, service_id: id, detail: { touchAssurance: level } });
      return c.json(await serviceView(linkRepo, (await links.service(id))!));
    },
  );

  r.route(
    {
      method: 'post',
      path: '/v1/admin/services/{serviceId}/credentials',
      tag: 'Operator',
      auth: 'operator',
      summary: "Issue an API credential for the service's business system (the token is shown once)",
      body: CredentialRequest,
      responses: { 201: { description: 'the credential', schema: CredentialCreated } },
      errors: ['not_found'],
    },
    async (c) => {
      const cred = await links.issueCredential(c.req.param('serviceId')!, c.get('body').label);
      await auditAdmin({ action: 'credential.issue', target: cred.id, service_id: c.req.param('serviceId')!, detail: { label: c.get('body').label } });
      return c.json(cred, 201);
    },
  );

  r.route(
    {
      method: 'delete',
      path: '/v1/admin/services/{serviceId}/credentials/{credentialId}',
      tag: 'Operator',
      auth: 'operator',
      summary: 'Revoke an API credential',
      responses: { 204: { description: 'revoked' } },
      errors: ['not_found'],
    },
    async (c) => {
      const done = await links.revokeCredential(c.req.param('serviceId')!, c.req.param('credentialId')!);
      await auditAdmin({ action: 'credential.revoke', target: c.req.param('credentialId')!.slice(0, 32), service_id: c.req.param('serviceId')!.slice(0, 32), outcome: done ? 'ok' : 'not_found' });
      return done ? c.body(null, 204) : problem(c, 'not_found', 'no such active credential');
    },
  );

  r.route(
    {
      method: 'post',
      path: '/v1/services/{serviceId}/links',
      tag: 'Service',
      auth: 'service',
      summary: 'Link a service ID to a MyKey ID (linking again replaces the previous service ID)',
      description:
        'A service ID already linked to another MyKey ID is refused (service_user_id_taken) unless the request says `move: true`: the service moves it, and the move is recorded in the audit log.',
      body: LinkRequest,
      responses: { 201: { description: 'linked', schema: LinkResponse }, 200: { description: 'already linked so', schema: LinkResponse } },
      errors: ['not_found', 'mykey_id_malformed', 'mykey_id_not_found', 'mykey_id_suspended', 'mykey_id_invalidated', 'service_user_id_taken'],
    },
    async (c) => {
      const b = c.get('body');
      const serviceId = c.req.param('serviceId')!;
      const credentialId = c.get('credentialId');
      await links.prepareKeys(serviceId, b.mykeyId); // keyed identities derived off the event loop
      const r = await links.link({ serviceId, mykeyId: b.mykeyId, serviceUserId: b.serviceUserId, by: `api:${credentialId}`, move: b.move === true });
      // The service's own decision to move a service ID is audited (who: its credential). The IDs
      // themselves stay in the change log only.
      if (r.moved)
        await deps.audit?.({ at: Date.now(), actor: `api:${credentialId}`, role: 'service', action: 'link.move', target: credentialId, service_id: serviceId, detail: { seq: r.entry?.seq ?? null } });
      const body: LinkResponse = {
        serviceId,
        serviceUserId: b.serviceUserId,
        seq: r.entry?.seq ?? null,
        ...(r.replaced ? { replaced: r.replaced } : {}),
        ...(r.moved ? { moved: true } : {}),
      };
      return c.json(body, r.unchanged ? 200 : 201);
    },
  );

  r.route(
    {
      method: 'delete',
      path: '/v1/services/{serviceId}/links/{serviceUserId}',
      tag: 'Service',
      auth: 'service',
      summary: 'Cancel a service ID: unlinked everywhere, edges purge it',
      responses: { 200: { description: 'unlinked', schema: LinkResponse } },
      errors: ['not_found'],
    },
    async (c) => {
      const r = await links.unlink({ serviceId: c.req.param('serviceId')!, serviceUserId: c.req.param('serviceUserId')!, by: `api:${c.get('credentialId')}`, reason: 'cancelled_by_service' });
      return c.json({ serviceId: r.link.service_id, serviceUserId: r.link.service_user_id, seq: r.entry.seq } satisfies LinkResponse);
    },
  );

  r.route(
    {
      method: 'post',
      path: '/v1/holder/unlink',
      tag: 'MyKey ID',
      auth: 'public',
      summary: 'The holder unlinks a service',
      body: HolderUnlinkRequest,
      rateLimit: rateLimit({ ...deps.rateLimits.register, scope: 'links-register' }),
      responses: { 200: { description: 'the MyKey ID after the change', schema: HolderView } },
      description: 'The proof is made over an `unlink` challenge for this service (POST /v1/challenges with purpose `unlink` and `serviceId`).',
      errors: [
        'challenge_unknown',
        'challenge_expired',
        'challenge_replayed',
        'challenge_operation_mismatch',
        'challenge_parameters_mismatch',
        'cert_revoked',
        'cert_revoked_superseded',
        'signature_invalid',
        'mykey_id_not_found',
        'not_found',
      ],
    },
    async (c) => {
      const b = c.get('body');
      const before = await deps.service.forUnlink(b.proof, b.serviceId);
      await links.unlink({ serviceId: b.serviceId, mykeyId: before.mykeyId, by: 'holder', reason: 'unlinked_by_holder' });
      return c.json({ ...before, links: await links.linksOf(before.mykeyId) });
    },
  );
  r.mount(app);
}
