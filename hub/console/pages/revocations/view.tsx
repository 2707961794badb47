// Revocation runs (定期的な失効確認): source, time, entries, matches, newly suspended, duration, error;
// and the CRLs currently applied.
import type { CrlStateRow, RevocationRunRow } from '../../../store/revocation-repo.ts';
import type { LinkageImportRow } from '../../../store/linkage-repo.ts';
import { DataTable } from '../../components/data-table.tsx';
import { Badge, Layout, type View } from '../../layout.tsx';
import { duration, when } from '../../i18n.ts';

/** A count that may not be known (a run refused before counting): a dash then. */
const count = (n: number | null) => (n === null ? '—' : String(n));

export function RevocationsPage({ v, runs, crls, imports = [] }: { v: View; runs: RevocationRunRow[]; crls: CrlStateRow[]; imports?: LinkageImportRow[] }) {
  const { m } = v;
  const r = m.revocations;
  return (
    <Layout v={v} title={r.title}>
      <section class="card">
        <DataTable
          testid="revocation-runs"
          rows={runs}
          empty={m.hints.noRuns}
          columns={[
            { label: r.time, cell: (x) => when(x.started_at) },
            { label: r.source, mono: true, cell: (x) => x.source },
            { label: m.common.status, cell: (x) => (x.ok ? <Badge kind="ok">{r.ok}</Badge> : <Badge kind="bad">{r.failed}</Badge>) },
            { label: r.crlNumber, mono: true, cell: (x) => x.crl_number ?? '—' },
            { label: r.entries, num: true, cell: (x) => count(x.entries) },
            { label: r.matched, num: true, cell: (x) => count(x.matched) },
            { label: r.newlySuspended, num: true, cell: (x) => count(x.newly_suspended) },
            { label: r.duration, num: true, cell: (x) => (x.duration_ms < 1000 ? `${x.duration_ms} ms` : duration(x.duration_ms, m)) },
            // A refusal's error leads with its code; an applied run may carry a warning (a late CRL).
            { label: r.error, note: true, cell: (x) => x.error ?? (x.warning ? `⚠ ${x.warning}` : '') },
          ]}
        />
      </section>
      <section class="card">
        <h2>{r.crls}</h2>
        <DataTable
          testid="crls"
          rows={crls}
          empty={m.overview.noCrls}
          columns={[
            { label: r.source, mono: true, cell: (c) => c.source },
            { label: r.crlNumber, mono: true, cell: (c) => c.crl_number ?? '—' },
            { label: r.thisUpdate, cell: (c) => when(c.this_update) },
            {
              label: m.overview.nextUpdate,
              cell: (c) => (
                <>
                  {c.next_update === null ? '—' : when(c.next_update)} {c.next_update !== null && c.next_update < v.now && <Badge kind="bad">{m.overview.overdue}</Badge>}
                </>
              ),
            },
            { label: r.entries, num: true, cell: (c) => String(c.entries) },
          ]}
        />
      </section>
      {/* Certificate linkage files (hub/linkage): counts per import, a refused file with its code. */}
      <section class="card">
        <h2>{r.linkage}</h2>
        <DataTable
          testid="linkage-imports"
          rows={imports}
          empty={r.noLinkage}
          columns={[
            { label: r.time, cell: (x) => when(x.started_at) },
            { label: r.source, mono: true, cell: (x) => x.source },
            { label: m.common.status, cell: (x) => (x.code ? <Badge kind="bad">{r.failed}</Badge> : <Badge kind="ok">{r.ok}</Badge>) },
            { label: r.records, num: true, cell: (x) => count(x.records) },
            { label: r.carried, num: true, cell: (x) => count(x.carried) },
            { label: r.alreadyCarried, num: true, cell: (x) => count(x.already) },
            { label: r.refused, num: true, cell: (x) => count(x.refused) },
            { label: r.error, note: true, cell: (x) => x.code ?? '' },
          ]}
        />
      </section>
    </Layout>
  );
}
