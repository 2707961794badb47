// The audit log, filtered by actor, action, service and time (JST dates), paged by id. A service
// administrator sees the entries of their service only.
import type { ConsoleApp, ConsoleContext } from '../../context.tsx';
import { AuditQuery, parseFields } from '../../forms.ts';
import { AuditPage } from './view.tsx';

const PAGE = 100;
/** A JST calendar date (the console shows JST) as the epoch ms of its midnight. */
const jstMidnight = (d: string) => Date.parse(`${d}T00:00:00+09:00`);

export function mountAuditRoutes(r: ConsoleApp, x: ConsoleContext): void {
  r.get('/audit', async (c) => {
    const v = x.view(c);
    const p = parseFields(AuditQuery, (k) => c.req.query(k));
    const f = p.ok ? p.value : { actor: '', action: '', service: '', from: '', to: '', before: '' };
    const rows = await x.deps.repo.auditLog({
      serviceId: c.get('session').operator.serviceId,
      before: Number(f.before) || undefined,
      limit: PAGE,
      actor: f.actor || undefined,
      action: f.action || undefined,
      service: f.service || undefined,
      from: f.from ? jstMidnight(f.from) : undefined,
      to: f.to ? jstMidnight(f.to) + 86400_000 : undefined,
    });
    const older = rows.length === PAGE ? rows[rows.length - 1].id : undefined;
    return x.html(c, <AuditPage v={v} rows={rows} older={older} filter={p.raw} errors={p.ok ? undefined : p.errors} />, p.ok ? 200 : 400);
  });
}
