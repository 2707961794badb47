// Enrollment tokens: issue one (with warnings when the edge id is enrolled already or has an unused
// token), list them with when each was used, revoke an unused one after a confirmation.
import type { Child } from 'hono/jsx';
import { X509Certificate } from 'node:crypto';
import { MyKeyError } from '../../../../shared/errors.ts';
import { isServiceId } from '../../../../shared/ids.ts';
import type { FormState } from '../../components/field.tsx';
import { ConfirmPage } from '../../components/revoke.tsx';
import type { C, ConsoleApp, ConsoleContext } from '../../context.tsx';
import { EnrollmentForm, parseFields, ReasonForm } from '../../forms.ts';
import { CONSOLE_BASE, Flash } from '../../layout.tsx';
import { EnrollmentsPage, issuedTokenFlash, type EnrollTarget } from './view.tsx';

type Refusal = 'edge_enrolled_elsewhere' | 'edge_service_move' | 'device_reenroll_revoked' | 'reenroll_needs_operator';

export function mountEnrollmentRoutes(r: ConsoleApp, x: ConsoleContext): void {
  const { deps, tokens } = x;
  let fingerprintOf: { pem: string; fingerprint: string } | undefined;
  /** The device API URL and the device CA fingerprint (node's fingerprint256 form), once the hub has them. */
  function enrollTarget(): EnrollTarget {
    const hubUrl = typeof deps.deviceApiUrl === 'function' ? deps.deviceApiUrl() : deps.deviceApiUrl;
    const pem = x.enrollment()?.caPem;
    if (pem && fingerprintOf?.pem !== pem) fingerprintOf = { pem, fingerprint: new X509Certificate(pem).fingerprint256 };
    return { ...(hubUrl ? { hubUrl } : {}), ...(pem ? { caFingerprint: fingerprintOf!.fingerprint } : {}) };
  }

  async function page(c: C, flash: Child = x.takeFlash(c), status = 200, form?: FormState) {
    const own = c.get('session').operator.serviceId;
    const services = (await deps.links.services()).filter((s) => s.status === 'active' && x.mayManage(c, s.id)).map((s) => ({ id: s.id, name: s.name }));
    return x.html(c, <EnrollmentsPage v={x.view(c)} tokens={await tokens.list(own)} services={services} target={enrollTarget()} flash={flash} form={form} />, status);
  }

  /** A refused enrollment action: 403 with its code on the page. */
  function refused(c: C, code: Refusal, form: FormState) {
    return page(
      c,
      <Flash kind="bad">
        <span data-testid="refused" data-code={code}>
          {x.view(c).m.enrollments.refused[code]}
        </span>
      </Flash>,
      403,
      form,
    );
  }

  r.get('/enrollments', async (c) => page(c));

  r.post('/enrollments', async (c) => {
    const p = parseFields(EnrollmentForm, (k) => c.get('form').get(k));
    const { serviceId, edgeId } = p.raw;
    const allowRevoked = p.raw.allowRevoked === '1';
    const known = isServiceId(serviceId) && (await deps.linkRepo.service(serviceId)) !== undefined;
    if (known && !x.mayManage(c, serviceId)) return x.forbidden(c, 'enrollment.issue', serviceId);
    if (!x.isOperator(c) && !known) return x.forbidden(c, 'enrollment.issue', serviceId.slice(0, 32));
    if (!p.ok || !known) {
      const errors = p.ok ? { serviceId: true as const } : p.errors;
      return page(c, <Flash kind="bad">{x.view(c).m.errors.fix}</Flash>, 400, { raw: p.raw, errors });
    }
    // Bringing a revoked device back (or moving one between services) is a platform operator's call.
    if (allowRevoked && !x.isOperator(c)) {
      await x.audit(c, 'enrollment.issue', { serviceId, outcome: 'reenroll_needs_operator', detail: { edgeId, allowRevoked } });
      return refused(c, 'reenroll_needs_operator', p);
    }
    const warn = await tokens.warnings(edgeId);
    try {
      const hours = Number(p.value.hours);
      const t = await tokens.issue({ serviceId, edgeId, by: c.get('session').operator.name, ttlMs: hours * 3600_000, allowRevoked });
      // An operator's permission to take over a revoked edge id of another service is shown to that service too.
      const from = allowRevoked ? (await deps.devices?.get(edgeId))?.service_id : undefined;
      await x.audit(c, 'enrollment.issue', {
        target: `mket_${t.id}`,
        serviceId,
        ownerServiceId: from !== serviceId ? from : null,
        detail: { edgeId, hours, ...(allowRevoked ? { allowRevoked } : {}), ...(warn.length ? { warnings: warn.map((w) => w.kind) } : {}) },
      });
      return x.redirectWith(c, `${CONSOLE_BASE}/enrollments`, issuedTokenFlash(x.view(c), { token: t.token, edgeId, serviceId, expiresAt: t.expiresAt }, enrollTarget(), warn));
    } catch (e) {
      if (e instanceof MyKeyError && (e.code === 'edge_enrolled_elsewhere' || e.code === 'edge_service_move' || e.code === 'device_reenroll_revoked')) {
        // Filed under the actor's service and shown to the service that owns the edge as well.
        const owner = typeof e.details?.ownerServiceId === 'string' ? e.details.ownerServiceId : null;
        await x.audit(c, 'enrollment.issue', { target: edgeId, serviceId, ownerServiceId: owner !== serviceId ? owner : null, outcome: e.code, detail: { edgeId } });
        return refused(c, e.code, p);
      }
      await x.audit(c, 'enrollment.issue', { serviceId, outcome: e instanceof MyKeyError ? e.code : 'error', detail: { edgeId } });
      return page(c, <Flash kind="bad">{x.failure(c, e)}</Flash>, 400, p);
    }
  });

  /** The token of the URL, when this person may manage it; otherwise the response to send. */
  async function tokenOf(c: C) {
    const id = c.req.param('id') ?? '';
    const row = /^[0-9a-f]{12}$/.test(id) ? await deps.repo.token(id) : undefined;
    if (!row) return { res: x.isOperator(c) ? x.notFound(c) : x.forbidden(c, 'enrollment.revoke', id.slice(0, 32)) };
    if (!x.mayManage(c, row.service_id)) return { res: x.forbidden(c, 'enrollment.revoke', `mket_${id}`) };
    return { row };
  }
  function confirm(c: C, id: string, status = 200, reason = '', error = false) {
    const v = x.view(c);
    return x.html(
      c,
      <ConfirmPage
        v={v}
        what={v.m.confirm.token(`mket_${id}`)}
        action={`${CONSOLE_BASE}/enrollments/${id}/revoke`}
        submit={v.m.confirm.doToken}
        back={`${CONSOLE_BASE}/enrollments`}
        reason={reason}
        error={error}
      />,
      status,
    );
  }

  r.get('/enrollments/:id/revoke', async (c) => {
    const t = await tokenOf(c);
    if (!t.row) return t.res;
    if (t.row.used_at !== null || t.row.revoked_at !== null) return c.redirect(`${CONSOLE_BASE}/enrollments`, 303);
    return confirm(c, t.row.id);
  });

  r.post('/enrollments/:id/revoke', async (c) => {
    const t = await tokenOf(c);
    if (!t.row) return t.res;
    const p = parseFields(ReasonForm, (k) => c.get('form').get(k));
    if (!p.ok) return confirm(c, t.row.id, 400, p.raw.reason, true);
    const done = await tokens.revoke(t.row.id, c.get('session').operator.name);
    await x.audit(c, 'enrollment.revoke', { target: `mket_${t.row.id}`, serviceId: t.row.service_id, outcome: done ? 'ok' : 'conflict', detail: { edgeId: t.row.edge_id, reason: p.value.reason } });
    const m = x.view(c).m;
    return x.redirectWith(
      c,
      `${CONSOLE_BASE}/enrollments`,
      done ? (
        <Flash kind="ok">
          <span data-testid="done">{m.confirm.tokenDone(`mket_${t.row.id}`)}</span>
        </Flash>
      ) : (
        <Flash kind="bad">{m.confirm.already}</Flash>
      ),
    );
  });
}
