// The audit log: every operator action (who, what, when, on what, outcome), newest first, paged. A
// service administrator sees the entries of their service and the refused attempts of others on
// what their service owns (an edge id another service tried to take).
import type { AuditRow } from '../../store/console-repo.ts';
import { Badge, Layout, type View } from '../layout.tsx';
import { when } from '../i18n.ts';

export function AuditPage({ v, rows, older }: { v: View; rows: AuditRow[]; older?: number }) {
  const { m } = v;
  const a = m.audit;
  return (
    <Layout v={v} title={a.title}>
      <p class="lead">{a.intro}</p>
      <section class="card">
        {rows.length === 0 ? (
          <p class="empty">{m.common.none}</p>
        ) : (
          <div class="table-wrap">
            <table data-testid="audit">
              <thead>
                <tr>
                  <th>{a.when}</th>
                  <th>{a.who}</th>
                  <th>{a.what}</th>
                  <th>{a.target}</th>
                  <th>{m.common.service}</th>
                  <th>{a.ownerService}</th>
                  <th>{a.outcome}</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr data-audit-id={String(r.id)}>
                    <td>{when(r.at)}</td>
                    <td>{r.actor}</td>
                    <td class="mono">{r.action}</td>
                    <td class="mono">{r.target ?? ''}</td>
                    <td class="mono">{r.service_id ?? ''}</td>
                    <td class="mono">
                      {r.owner_service_id ?? ''}
                      {r.owner_service_id !== null && r.owner_service_id === v.op.serviceId && (
                        <>
                          {' '}
                          <Badge kind="warn">{a.concernsYou}</Badge>
                        </>
                      )}
                    </td>
                    <td>{r.outcome === 'ok' ? <Badge kind="ok">ok</Badge> : <Badge kind="bad">{r.outcome}</Badge>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {older !== undefined && (
          <p>
            <a href={`/console/audit?before=${older}`}>{a.older} →</a>
          </p>
        )}
      </section>
    </Layout>
  );
}
