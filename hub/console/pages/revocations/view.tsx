// Revocation runs (定期的な失効確認): source, time, entries, matches, newly suspended, duration, error;
// and the CRLs currently applied.
import type { CrlStateRow, RevocationRunRow } from '../../../store/revocation-repo.ts';
import type { LinkageImportRow } from '../../../store/linkage-repo.ts';
import { Badge, Layout, type View } from '../../layout.tsx';
import { duration, when } from '../../i18n.ts';

export function RevocationsPage({ v, runs, crls, imports = [] }: { v: View; runs: RevocationRunRow[]; crls: CrlStateRow[]; imports?: LinkageImportRow[] }) {
  const { m } = v;
  const r = m.revocations;
  return (
    <Layout v={v} title={r.title}>
      <section class="card">
        {runs.length === 0 ? (
          <p class="empty">{m.hints.noRuns}</p>
        ) : (
          <div class="table-wrap">
            <table data-testid="revocation-runs">
              <thead>
                <tr>
                  <th>{r.time}</th>
                  <th>{r.source}</th>
                  <th>{m.common.status}</th>
                  <th>{r.crlNumber}</th>
                  <th class="num">{r.entries}</th>
                  <th class="num">{r.matched}</th>
                  <th class="num">{r.newlySuspended}</th>
                  <th class="num">{r.duration}</th>
                  <th>{r.error}</th>
                </tr>
              </thead>
              <tbody>
                {runs.map((x) => (
                  <tr>
                    <td>{when(x.started_at)}</td>
                    <td class="mono">{x.source}</td>
                    <td>{x.ok ? <Badge kind="ok">{r.ok}</Badge> : <Badge kind="bad">{r.failed}</Badge>}</td>
                    <td class="mono">{x.crl_number ?? '—'}</td>
                    <td class="num">{x.entries === null ? '—' : String(x.entries)}</td>
                    <td class="num">{x.matched === null ? '—' : String(x.matched)}</td>
                    <td class="num">{x.newly_suspended === null ? '—' : String(x.newly_suspended)}</td>
                    <td class="num">{x.duration_ms < 1000 ? `${x.duration_ms} ms` : duration(x.duration_ms, m)}</td>
                    {/* A refusal's error leads with its code; an applied run may carry a warning (a late CRL). */}
                    <td class="note">{x.error ?? (x.warning ? `⚠ ${x.warning}` : '')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <section class="card">
        <h2>{r.crls}</h2>
        {crls.length === 0 ? (
          <p class="empty">{m.overview.noCrls}</p>
        ) : (
          <div class="table-wrap">
            <table data-testid="crls">
              <thead>
                <tr>
                  <th>{r.source}</th>
                  <th>{r.crlNumber}</th>
                  <th>{r.thisUpdate}</th>
                  <th>{m.overview.nextUpdate}</th>
                  <th class="num">{r.entries}</th>
                </tr>
              </thead>
              <tbody>
                {crls.map((c) => (
                  <tr>
                    <td class="mono">{c.source}</td>
                    <td class="mono">{c.crl_number ?? '—'}</td>
                    <td>{when(c.this_update)}</td>
                    <td>
                      {c.next_update === null ? '—' : when(c.next_update)}{' '}
                      {c.next_update !== null && c.next_update < v.now && <Badge kind="bad">{m.overview.overdue}</Badge>}
                    </td>
                    <td class="num">{String(c.entries)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {/* Certificate linkage files (hub/linkage): counts per import, a refused file with its code. */}
      <section class="card">
        <h2>{r.linkage}</h2>
        {imports.length === 0 ? (
          <p class="empty">{r.noLinkage}</p>
        ) : (
          <div class="table-wrap">
            <table data-testid="linkage-imports">
              <thead>
                <tr>
                  <th>{r.time}</th>
                  <th>{r.source}</th>
                  <th>{m.common.status}</th>
                  <th class="num">{r.records}</th>
                  <th class="num">{r.carried}</th>
                  <th class="num">{r.alreadyCarried}</th>
                  <th class="num">{r.refused}</th>
                  <th>{r.error}</th>
                </tr>
              </thead>
              <tbody>
                {imports.map((x) => (
                  <tr>
                    <td>{when(x.started_at)}</td>
                    <td class="mono">{x.source}</td>
                    <td>{x.code ? <Badge kind="bad">{r.failed}</Badge> : <Badge kind="ok">{r.ok}</Badge>}</td>
                    <td class="num">{x.records === null ? '—' : String(x.records)}</td>
                    <td class="num">{x.carried === null ? '—' : String(x.carried)}</td>
                    <td class="num">{x.already === null ? '—' : String(x.already)}</td>
                    <td class="num">{x.refused === null ? '—' : String(x.refused)}</td>
                    <td class="note">{x.code ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </Layout>
  );
}
