// Services: the list, creating one, and one service's page: its API credentials (issue; revoke after
// a confirmation with a reason), its readers, its webhook and the holder-proof setting.
import type { Child } from 'hono/jsx';
import { isServiceId } from '../../../../shared/ids.ts';
import { serviceView } from '../../../http/links-routes.ts';
import { checkWebhookUrl } from '../../../notify/url-policy.ts';
import { ConfirmPage } from '../../components/revoke.tsx';
import type { FormState } from '../../components/field.tsx';
import type { C, ConsoleApp, ConsoleContext } from '../../context.tsx';
import { CredentialForm, HolderProofForm, parseFields, TouchAssuranceForm, ReasonForm, ServiceForm, WebhookForm } from '../../forms.ts';
import { CONSOLE_BASE, Flash, ShownOnce } from '../../layout.tsx';
import { issuedCredentialFlash, ServicePage, ServicesPage, type ServiceItem } from './view.tsx';

export function mountServiceRoutes(r: ConsoleApp, x: ConsoleContext): void {
  const { deps } = x;
  const { links, linkRepo } = deps;

  const serviceList = async (c: C) => Promise.all((await links.services()).filter((s) => x.mayManage(c, s.id)).map(async (s) => (await serviceView(linkRepo, s)) as ServiceItem));

  const listPage = async (c: C, status = 200, flash?: Child, form?: FormState) =>
    x.html(c, <ServicesPage v={x.view(c)} services={await serviceList(c)} canCreate={x.isOperator(c)} flash={flash} form={form} />, status);

  r.get('/services', async (c) => listPage(c));

  r.post('/services', async (c) => {
    if (!x.isOperator(c)) return x.forbidden(c, 'service.create');
    const v = x.view(c);
    const p = parseFields(ServiceForm, (k) => c.get('form').get(k));
    if (!p.ok) return listPage(c, 400, <Flash kind="bad">{v.m.errors.fix}</Flash>, p);
    const input = { id: p.value.id, name: p.value.name, webhookUrl: p.value.webhookUrl || undefined };
    try {
      if (input.webhookUrl) checkWebhookUrl(input.webhookUrl, deps.webhookUrlPolicy);
      const res = await links.createService(input);
      await x.audit(c, 'service.create', { target: input.id, serviceId: input.id, detail: { name: input.name, webhook: !!input.webhookUrl } });
      const flash = (
        <Flash kind="ok">
          <b>{v.m.services.created}</b>
          {res.webhookSecret && <ShownOnce v={v} label={v.m.services.webhookSecret} value={res.webhookSecret} testid="webhook-secret" />}
        </Flash>
      );
      return x.redirectWith(c, `${CONSOLE_BASE}/services/${input.id}`, flash);
    } catch (e) {
      await x.audit(c, 'service.create', { target: input.id, outcome: (e as { code?: string }).code ?? 'error' });
      return listPage(c, (e as { status?: number }).status ?? 500, <Flash kind="bad">{x.failure(c, e)}</Flash>, { raw: p.raw });
    }
  });

  async function servicePage(c: C, id: string, flash: Child = x.takeFlash(c), status = 200, form?: FormState) {
    const s = (await linkRepo.service(id))!;
    const readers = (await deps.devices?.page({ serviceId: id, state: 'all', limit: 200 }))?.rows ?? [];
    const latest = (await deps.devices?.versions())?.[0]?.version;
    return x.html(
      c,
      <ServicePage v={x.view(c)} s={(await serviceView(linkRepo, s)) as ServiceItem} credentials={await linkRepo.credentials(id)} readers={readers} latest={latest} flash={flash} form={form} />,
      status,
    );
  }

  /** Runs a service action after the role and existence checks. */
  function serviceAction(action: string, fn: (c: C, id: string) => Promise<Response> | Response) {
    return async (c: C) => {
      const id = c.req.param('id')!;
      if (!isServiceId(id) || !(await linkRepo.service(id))) return x.isOperator(c) ? x.notFound(c) : x.forbidden(c, action, id.slice(0, 32));
      if (!x.mayManage(c, id)) return x.forbidden(c, action, id);
      return fn(c, id);
    };
  }

  r.get(
    '/services/:id',
    serviceAction('service.view', (c, id) => servicePage(c, id)),
  );

  r.post(
    '/services/:id/credentials',
    serviceAction('credential.issue', async (c, id) => {
      const p = parseFields(CredentialForm, (k) => c.get('form').get(k));
      if (!p.ok) return servicePage(c, id, <Flash kind="bad">{x.view(c).m.errors.fix}</Flash>, 400, p);
      try {
        const cred = await links.issueCredential(id, p.value.label);
        await x.audit(c, 'credential.issue', { target: cred.id, serviceId: id, detail: { label: p.value.label } });
        return x.redirectWith(c, `${CONSOLE_BASE}/services/${id}`, issuedCredentialFlash(x.view(c), cred.token));
      } catch (e) {
        await x.audit(c, 'credential.issue', { serviceId: id, outcome: (e as { code?: string }).code ?? 'error' });
        return servicePage(c, id, <Flash kind="bad">{x.failure(c, e)}</Flash>, 400, { raw: p.raw });
      }
    }),
  );

  const credentialOf = async (id: string, cred: string) => (await linkRepo.credentials(id)).find((k) => k.id === cred);
  function confirmCredential(c: C, id: string, cred: string, status = 200, reason = '', error = false) {
    const v = x.view(c);
    const base = `${CONSOLE_BASE}/services/${id}`;
    return x.html(
      c,
      <ConfirmPage v={v} what={v.m.confirm.credential(cred)} action={`${base}/credentials/${cred}/revoke`} submit={v.m.confirm.doCredential} back={base} reason={reason} error={error} />,
      status,
    );
  }

  r.get(
    '/services/:id/credentials/:cred/revoke',
    serviceAction('credential.revoke', async (c, id) => {
      const cred = await credentialOf(id, c.req.param('cred') ?? '');
      if (!cred || cred.revoked_at) return c.redirect(`${CONSOLE_BASE}/services/${id}`, 303);
      return confirmCredential(c, id, cred.id);
    }),
  );

  r.post(
    '/services/:id/credentials/:cred/revoke',
    serviceAction('credential.revoke', async (c, id) => {
      const cred = (c.req.param('cred') ?? '').slice(0, 32);
      const p = parseFields(ReasonForm, (k) => c.get('form').get(k));
      if (!p.ok) return confirmCredential(c, id, cred.replace(/[^A-Za-z0-9_-]/g, ''), 400, p.raw.reason, true);
      const done = await links.revokeCredential(id, cred);
      await x.audit(c, 'credential.revoke', { target: cred, serviceId: id, outcome: done ? 'ok' : 'not_found', detail: { reason: p.value.reason } });
      const m = x.view(c).m;
      return x.redirectWith(
        c,
        `${CONSOLE_BASE}/services/${id}`,
        done ? (
          <Flash kind="ok">
            <span data-testid="done">{m.confirm.credentialDone(cred)}</span>
          </Flash>
        ) : (
          <Flash kind="bad">{m.confirm.already}</Flash>
        ),
      );
    }),
  );

  // Trust hardening (proofs): the per-service "holder proof at the counter" setting, audited.
  r.post(
    '/services/:id/holder-proof',
    serviceAction('service.holder_proof', async (c, id) => {
      const p = parseFields(HolderProofForm, (k) => c.get('form').get(k));
      if (!p.ok) return servicePage(c, id, <Flash kind="bad">{x.view(c).m.errors.fix}</Flash>, 400);
      await links.setRequireHolderProof(id, p.value.required === '1');
      await x.audit(c, 'service.holder_proof', { target: id, serviceId: id, detail: { required: p.value.required === '1' } });
      return c.redirect(`${CONSOLE_BASE}/services/${id}`, 303);
    }),
  );

  // PIN-checked touch (#14): possession or PIN at the service's readers, audited.
  r.post(
    '/services/:id/touch-assurance',
    serviceAction('service.touch_assurance', async (c, id) => {
      const p = parseFields(TouchAssuranceForm, (k) => c.get('form').get(k));
      if (!p.ok) return servicePage(c, id, <Flash kind="bad">{x.view(c).m.errors.fix}</Flash>, 400);
      await links.setTouchAssurance(id, p.value.level);
      await x.audit(c, 'service.touch_assurance', { target: id, serviceId: id, detail: { touchAssurance: p.value.level } });
      return c.redirect(`${CONSOLE_BASE}/services/${id}`, 303);
    }),
  );

  r.post(
    '/services/:id/webhook',
    serviceAction('webhook.set', async (c, id) => {
      const v = x.view(c);
      const p = parseFields(WebhookForm, (k) => c.get('form').get(k));
      if (!p.ok) return servicePage(c, id, <Flash kind="bad">{v.m.errors.fix}</Flash>, 400, p);
      const url = p.value.url;
      try {
        if (url) checkWebhookUrl(url, deps.webhookUrlPolicy);
        const res = await links.setWebhook(id, url || null);
        await x.audit(c, 'webhook.set', { target: id, serviceId: id, detail: { cleared: !url } });
        return x.redirectWith(
          c,
          `${CONSOLE_BASE}/services/${id}`,
          <Flash kind="ok">
            <b>{v.m.services.webhookSaved}</b>
            {res.webhookSecret && <ShownOnce v={v} label={v.m.services.webhookSecret} value={res.webhookSecret} testid="webhook-secret" />}
          </Flash>,
        );
      } catch (e) {
        await x.audit(c, 'webhook.set', { target: id, serviceId: id, outcome: (e as { code?: string }).code ?? 'error' });
        return servicePage(c, id, <Flash kind="bad">{x.failure(c, e)}</Flash>, 400, { raw: p.raw });
      }
    }),
  );
}
