// The audit log: every operator action (who, what, when, on what, outcome), newest first, paged. A
// service administrator sees the entries of their service and the refused attempts of others on
// what their service owns (an edge id another service tried to take).
import type { AuditRow } from '../../../store/console-repo.ts';
import { DataTable } from '../../components/data-table.tsx';
import { Field } from '../../components/field.tsx';
import type { FieldErrors } from '../../forms.ts';
import { Badge, Flash, Layout, WarnAfter, type View } from '../../layout.tsx';
import { when } from '../../i18n.ts';

/** The detail of an entry (which edge a token was for, the reason given), as short key=value pairs. */
function Detail({ json }: { json: string | null }) {
  if (!json) return <span />;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return <span />;
  }
  return (
    <span class="note mono">
      {Object.entries(o)
        .map(([k, val]) => `${k}=${typeof val === 'string' ? val : JSON.stringify(val)}`)
        .join(' ')}
    </span>
  );
}

export function AuditPage({ v, rows, older, filter, errors }: { v: View; rows: AuditRow[]; older?: number; filter: Record<string, string>; errors?: FieldErrors }) {
  const { m } = v;
  const a = m.audit;
  const fs = { raw: filter, errors };
  const keep = new URLSearchParams(Object.entries(filter).filter(([k, val]) => k !== 'before' && val));
  return (
    <Layout v={v} title={a.title}>
      <p class="lead">{a.intro}</p>
      {errors && <Flash kind="bad">{m.errors.fix}</Flash>}
      <section class="card">
        <form method="get" action="/console/audit" class="form-row filters" data-testid="audit-filter">
          <Field v={v} f={fs} name="actor" label={m.fields.actor} maxlength={64} />
          <Field v={v} f={fs} name="action" label={m.fields.action} maxlength={64} placeholder="device.revoke" />
          {v.op.role === 'operator' && <Field v={v} f={fs} name="service" label={m.fields.service} maxlength={32} />}
          <Field v={v} f={fs} name="from" label={m.fields.from} type="date" />
          <Field v={v} f={fs} name="to" label={m.fields.to} type="date" />
          <label>
            <span>&nbsp;</span>
            <button type="submit">{m.list.apply}</button>
            <small class="reset">
              <a href="/console/audit">{m.list.reset}</a>
            </small>
          </label>
        </form>
      </section>
      <section class="card">
        <DataTable
          testid="audit"
          rows={rows}
          empty={m.hints.noAudit}
          rowAttrs={(r) => ({ 'data-audit-id': String(r.id) })}
          columns={[
            { label: a.when, cell: (r) => when(r.at) },
            { label: a.who, cell: (r) => r.actor },
            { label: a.what, mono: true, cell: (r) => r.action },
            { label: a.target, mono: true, cell: (r) => r.target ?? '' },
            { label: m.common.service, mono: true, cell: (r) => r.service_id ?? '' },
            {
              label: a.ownerService,
              mono: true,
              cell: (r) => (
                <>
                  {r.owner_service_id ?? ''}
                  <WarnAfter show={r.owner_service_id !== null && r.owner_service_id === v.op.serviceId}>{a.concernsYou}</WarnAfter>
                </>
              ),
            },
            { label: a.outcome, cell: (r) => (r.outcome === 'ok' ? <Badge kind="ok">{a.ok}</Badge> : <Badge kind="bad">{r.outcome}</Badge>) },
            { label: a.detail, cell: (r) => <Detail json={r.detail} /> },
          ]}
        />
        {older !== undefined && (
          <p>
            <a href={`/console/audit?${keep.toString() ? `${keep.toString()}&` : ''}before=${older}`}>{a.older} →</a>
          </p>
        )}
      </section>
    </Layout>
  );
}
