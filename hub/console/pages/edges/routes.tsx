// Edges: the list (filtered by service, state and version, searched by edge id, sorted and paged in
// SQL; CSV export of the whole selection), one edge's page, and revoking its device certificate
// after a confirmation with a reason.
import { isEdgeId } from '../../../../shared/ids.ts';
import type { EdgeListQuery, EdgeSort } from '../../../store/device-repo.ts';
import { ConfirmPage } from '../../components/revoke.tsx';
import type { C, ConsoleApp, ConsoleContext } from '../../context.tsx';
import { EdgeQuery, parseFields, ReasonForm } from '../../forms.ts';
import { Flash } from '../../layout.tsx';
import { edgesCsv } from './csv.ts';
import { EdgePage, EdgesPage } from './view.tsx';

export const EDGES_PER_PAGE = 50;

export function mountEdgeRoutes(r: ConsoleApp, x: ConsoleContext): void {
  const { deps } = x;

  /** The list's query from the URL; a service administrator's list is always their service's. */
  async function listQuery(c: C) {
    const p = parseFields(EdgeQuery, (k) => c.req.query(k));
    const raw = p.raw;
    const f = p.ok ? p.value : { service: '', state: '', version: '', q: '', sort: '', dir: '', page: '' };
    const own = c.get('session').operator.serviceId;
    // Versions newest first: the newest is what `outdated` compares with, all are the filter's choices.
    const versions = (await deps.devices?.versions(own ?? (f.service || undefined)))?.map((row) => row.version) ?? [];
    const q: EdgeListQuery = {
      serviceId: own ?? (f.service || undefined),
      state: (f.state || undefined) as EdgeListQuery['state'],
      version: f.version || undefined,
      search: f.q || undefined,
      sort: (f.sort || 'edge') as EdgeSort,
      desc: f.dir === 'desc',
      latest: versions[0],
    };
    return { q, raw, errors: p.ok ? undefined : p.errors, page: Math.max(1, Number(f.page) || 1), versions, latest: versions[0] };
  }

  r.get('/edges', async (c) => {
    const v = x.view(c);
    const l = await listQuery(c);
    const res = (await deps.devices?.page({ ...l.q, limit: EDGES_PER_PAGE, offset: (l.page - 1) * EDGES_PER_PAGE })) ?? { rows: [], total: 0 };
    // Sparklines show the newest samples of the page's edges only; the edge's own page has the whole history.
    const samples = new Map<string, Awaited<ReturnType<NonNullable<typeof deps.devices>['lagHistory']>>>();
    for (const d of res.rows) if (d.status === 'active') samples.set(d.edge_id, (await deps.devices!.lagHistory(d.edge_id)).slice(-40));
    const services = (await deps.linkRepo.services()).filter((s) => x.mayManage(c, s.id)).map((s) => s.id);
    // An empty page of an empty fleet says how to enroll the first edge; otherwise, to reset the filter.
    const fleetEmpty = res.total === 0 && ((await deps.devices?.page({ serviceId: l.q.serviceId, state: 'all', limit: 0 }))?.total ?? 0) === 0;
    return x.html(
      c,
      <EdgesPage
        v={v}
        rows={res.rows}
        total={res.total}
        page={l.page}
        perPage={EDGES_PER_PAGE}
        samples={samples}
        filter={l.raw}
        errors={l.errors}
        services={services}
        versions={l.versions}
        latest={l.latest}
        fleetEmpty={fleetEmpty}
      />,
      l.errors ? 400 : 200,
    );
  });

  r.get('/edges.csv', async (c) => {
    const l = await listQuery(c);
    if (l.errors) return c.text(x.view(c).m.errors.fix, 400);
    const res = (await deps.devices?.page({ ...l.q, limit: 100_000, offset: 0 })) ?? { rows: [], total: 0 };
    await x.audit(c, 'edges.export', { serviceId: l.q.serviceId ?? null, detail: { rows: res.rows.length, state: l.q.state ?? null } });
    return c.body(edgesCsv(res.rows, l.latest), 200, { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': 'attachment; filename="edges.csv"' });
  });

  /** The edge of the URL, when this person may manage it; otherwise the response to send. */
  async function edgeOf(c: C, action: string) {
    const id = c.req.param('edge') ?? '';
    const d = isEdgeId(id) ? await deps.devices?.get(id) : undefined;
    if (!d) return { res: x.isOperator(c) ? x.notFound(c) : x.forbidden(c, action, id.slice(0, 64)) };
    if (!x.mayManage(c, d.service_id)) return { res: x.forbidden(c, action, id) };
    return { d };
  }

  r.get('/edges/:edge', async (c) => {
    const e = await edgeOf(c, 'edge.view');
    if (!e.d) return e.res;
    const latest = (await deps.devices!.versions(e.d.service_id))[0]?.version;
    return x.html(c, <EdgePage v={x.view(c)} d={e.d} samples={await deps.devices!.lagHistory(e.d.edge_id)} latest={latest} flash={x.takeFlash(c)} />);
  });

  function confirmPage(c: C, id: string, status = 200, reason = '', error = false) {
    const v = x.view(c);
    return x.html(
      c,
      <ConfirmPage v={v} what={v.m.confirm.device(id)} action={`/console/edges/${id}/revoke`} submit={v.m.confirm.doDevice} back={`/console/edges/${id}`} reason={reason} error={error} />,
      status,
    );
  }

  r.get('/edges/:edge/revoke', async (c) => {
    const e = await edgeOf(c, 'device.revoke');
    if (!e.d) return e.res;
    if (e.d.status !== 'active') return c.redirect(`/console/edges/${e.d.edge_id}`, 303);
    return confirmPage(c, e.d.edge_id);
  });

  r.post('/edges/:edge/revoke', async (c) => {
    const e = await edgeOf(c, 'device.revoke');
    if (!e.d) return e.res;
    const enrollment = x.enrollment();
    if (!enrollment) return x.notFound(c);
    const p = parseFields(ReasonForm, (k) => c.get('form').get(k));
    if (!p.ok) return confirmPage(c, e.d.edge_id, 400, p.raw.reason, true);
    const by = c.get('session').operator.name;
    const res = await enrollment.revoke(e.d.edge_id, `console:${by}`);
    if (res.ok) await deps.devices!.noteRevocation(e.d.edge_id, by, p.value.reason);
    await x.audit(c, 'device.revoke', { target: e.d.edge_id, serviceId: e.d.service_id, outcome: res.ok ? 'ok' : res.code, detail: { reason: p.value.reason } });
    const m = x.view(c).m;
    const flash = res.ok ? (
      <Flash kind="ok">
        <span data-testid="done">{m.confirm.deviceDone(e.d.edge_id)}</span>
      </Flash>
    ) : (
      <Flash kind="bad">{m.confirm.already}</Flash>
    );
    return x.redirectWith(c, `/console/edges/${e.d.edge_id}`, flash);
  });
}
