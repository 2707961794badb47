// Edges: each edge's state (its own reported health, offline, revoked) and whether it runs an older
// version, last seen, applied sequence and lag with a sparkline; filters, sorting, paging, CSV. One
// edge's page has the lag chart over time, the device certificate, and who revoked it, when and why.
import type { Child } from 'hono/jsx';
import { compareVersions, type DeviceRow, type LagSample } from '../../../store/device-repo.ts';
import { DataTable } from '../../components/data-table.tsx';
import { Field } from '../../components/field.tsx';
import { KeyValue } from '../../components/key-value.tsx';
import { RevokeButton } from '../../components/revoke.tsx';
import type { FieldErrors } from '../../forms.ts';
import { when } from '../../i18n.ts';
import { LagChart } from '../../lag-chart.tsx';
import { Ago, Badge, Flash, Layout, WarnAfter, type View } from '../../layout.tsx';
import { STATE_KIND } from './health.ts';

const isOutdated = (d: DeviceRow, latest?: string) => d.status === 'active' && !!latest && d.version !== null && compareVersions(d.version, latest) < 0;

export function StateBadge({ v, d, latest }: { v: View; d: DeviceRow; latest?: string }) {
  return (
    <span class="states" data-state={d.state} title={v.m.stateHelp[d.state]}>
      <Badge kind={STATE_KIND[d.state]}>{v.m.states[d.state]}</Badge>
      <WarnAfter show={isOutdated(d, latest)}>{v.m.states.outdated}</WarnAfter>
    </span>
  );
}

function Lag({ d }: { d: DeviceRow }) {
  // A revoked or offline edge's lag is not live: shown as unknown, never as a green 0.
  if (d.lag === null || d.state === 'revoked') return <span class="note">—</span>;
  const kind = d.state === 'offline' ? 'off' : d.lag === 0 ? 'ok' : d.lag < 50 ? 'warn' : 'bad';
  return <Badge kind={kind}>{String(d.lag)}</Badge>;
}

export interface EdgesPageProps {
  v: View;
  rows: DeviceRow[];
  total: number;
  page: number;
  perPage: number;
  samples: Map<string, LagSample[]>;
  filter: Record<string, string>;
  errors?: FieldErrors;
  services: string[];
  versions: string[];
  /** The newest version in the fleet (older ones are flagged). */
  latest?: string;
  /** No edge at all (not even revoked): the empty list says how to enroll the first. */
  fleetEmpty: boolean;
}

const STATE_CHOICES = ['', 'ok', 'degraded', 'stale', 'clock_unsure', 'reader_missing', 'offline', 'outdated', 'revoked', 'all'] as const;
const SORTS = ['edge', 'service', 'state', 'last_seen', 'lag', 'version'] as const;

export function EdgesPage(p: EdgesPageProps) {
  const { v } = p;
  const { m } = v;
  const e = m.edges;
  const f = p.filter;
  const params = (over: Record<string, string>) => {
    const u = new URLSearchParams(Object.entries({ ...f, ...over }).filter(([, val]) => val));
    return u.toString() ? `?${u}` : '';
  };
  const pages = Math.max(1, Math.ceil(p.total / p.perPage));
  const from = p.total === 0 ? 0 : (p.page - 1) * p.perPage + 1;
  const to = Math.min(p.total, p.page * p.perPage);
  const sortLabel: Record<(typeof SORTS)[number], string> = { edge: e.edgeId, service: m.common.service, state: e.health, last_seen: e.lastSeen, lag: e.lag, version: e.version };
  return (
    <Layout v={v} title={e.title}>
      {p.errors && <Flash kind="bad">{m.errors.fix}</Flash>}
      <section class="card">
        <form method="get" action="/console/edges" class="form-row filters" data-testid="edge-filter">
          <Field v={v} f={{ raw: f, errors: p.errors }} name="q" label={m.list.search} maxlength={64} placeholder="library-" />
          {v.op.role === 'operator' && (
            <Field v={v} name="service" label={m.common.service} f={{ errors: p.errors }}>
              <select name="service">
                <option value="">{m.list.allServices}</option>
                {p.services.map((s) => (
                  <option value={s} selected={f.service === s}>
                    {s}
                  </option>
                ))}
              </select>
            </Field>
          )}
          <Field v={v} name="state" label={e.health} f={{ errors: p.errors }}>
            <select name="state">
              {STATE_CHOICES.map((s) => (
                <option value={s} selected={f.state === s}>
                  {s === '' ? m.states.current : m.states[s]}
                </option>
              ))}
            </select>
          </Field>
          <Field v={v} name="version" label={e.version} f={{ errors: p.errors }}>
            <select name="version">
              <option value="">{m.list.allVersions}</option>
              {p.versions.map((s) => (
                <option value={s} selected={f.version === s}>
                  {s}
                </option>
              ))}
            </select>
          </Field>
          <Field v={v} name="sort" label={m.list.sortBy} f={{ errors: p.errors }}>
            <select name="sort">
              {SORTS.map((s) => (
                <option value={s} selected={(f.sort || 'edge') === s}>
                  {sortLabel[s]}
                </option>
              ))}
            </select>
          </Field>
          <Field v={v} name="dir" label={m.fields.dir} f={{ errors: p.errors }}>
            <select name="dir">
              <option value="asc">{m.list.asc}</option>
              <option value="desc" selected={f.dir === 'desc'}>
                {m.list.desc}
              </option>
            </select>
          </Field>
          <label>
            <span>&nbsp;</span>
            <button type="submit" data-testid="apply-filter">
              {m.list.apply}
            </button>
            <small class="reset">
              <a href="/console/edges">{m.list.reset}</a>
            </small>
          </label>
        </form>
      </section>
      <section class="card">
        <p class="list-head">
          <span data-testid="showing">{m.list.showing(from, to, p.total)}</span>
          <a href={`/console/edges.csv${params({ page: '' })}`} data-testid="csv">
            {m.list.csv}
          </a>
        </p>
        <DataTable
          testid="edges"
          rows={p.rows}
          empty={p.fleetEmpty ? m.hints.noEdges : m.list.noMatch}
          rowAttrs={(d) => ({ 'data-edge': d.edge_id, 'data-state': d.state })}
          columns={[
            { label: e.edgeId, mono: true, cell: (d) => <a href={`/console/edges/${d.edge_id}`}>{d.edge_id}</a> },
            { label: m.common.service, mono: true, cell: (d) => d.service_id },
            { label: e.health, cell: (d) => <StateBadge v={v} d={d} latest={p.latest} /> },
            { label: e.lastSeen, cell: (d) => <Ago v={v} at={d.last_seen_at} /> },
            { label: e.version, mono: true, cell: (d) => d.version ?? '—' },
            { label: e.appliedSeq, num: true, cell: (d) => String(d.applied_seq) },
            { label: e.lag, num: true, cell: (d) => <Lag d={d} /> },
            {
              label: e.lagChart,
              cell: (d) => ((p.samples.get(d.edge_id)?.length ?? 0) > 1 ? <LagChart samples={p.samples.get(d.edge_id)!} width={120} height={28} compact label={e.lag} /> : <span class="note">—</span>),
            },
          ]}
        />
        {pages > 1 && (
          <nav class="pager" aria-label={m.fields.page} data-testid="pager">
            {p.page > 1 ? (
              <a href={`/console/edges${params({ page: String(p.page - 1) })}`} rel="prev">
                ← {m.list.prev}
              </a>
            ) : (
              <span />
            )}
            <span>
              {String(p.page)} / {String(pages)}
            </span>
            {p.page < pages ? (
              <a href={`/console/edges${params({ page: String(p.page + 1) })}`} rel="next" data-testid="next-page">
                {m.list.next} →
              </a>
            ) : (
              <span />
            )}
          </nav>
        )}
      </section>
    </Layout>
  );
}

export function EdgePage({ v, d, samples, latest, flash }: { v: View; d: DeviceRow; samples: LagSample[]; latest?: string; flash?: Child }) {
  const { m } = v;
  const e = m.edges;
  const revoked = d.status === 'revoked';
  return (
    <Layout v={v} title={d.edge_id}>
      {flash}
      <div class="grid">
        <section class="card">
          <h2>{m.common.status}</h2>
          <KeyValue
            testid="edge-status"
            rows={[
              [m.common.service, <span class="mono">{d.service_id}</span>],
              [e.health, <StateBadge v={v} d={d} latest={latest} />],
              [e.lastSeen, <Ago v={v} at={d.last_seen_at} />],
              [e.version, <span class="mono">{d.version ?? '—'}</span>],
              [e.appliedSeq, String(d.applied_seq)],
              [e.lag, <Lag d={d} />],
            ]}
          />
        </section>
        <section class="card">
          <h2>{e.certificate}</h2>
          <KeyValue
            testid="edge-certificate"
            rows={[
              [e.enrolled, when(d.enrolled_at)],
              [e.certExpires, when(d.not_after)],
              [m.misc.serial, <span class="mono">{d.cert_serial.slice(0, 16)}…</span>],
              ...(revoked
                ? ([
                    [e.revokedAt, <span data-testid="revoked-at">{when(d.revoked_at)}</span>],
                    [e.revokedBy, <span data-testid="revoked-by">{d.revoked_by ?? '—'}</span>],
                    [e.revokedReason, <span data-testid="revoked-reason">{d.revoked_reason ?? '—'}</span>],
                  ] as [string, Child][])
                : []),
            ]}
          />
          {!revoked && (
            <p>
              <RevokeButton v={v} href={`/console/edges/${d.edge_id}/revoke`} label={e.revokeDevice} />
            </p>
          )}
        </section>
      </div>
      {!revoked && (
        <section class="card">
          <h2>{e.lagChart}</h2>
          {samples.length === 0 ? <p class="empty">{e.noSamples}</p> : <LagChart samples={samples} width={1060} height={220} label={e.lag} />}
        </section>
      )}
      <p>
        <a href="/console/edges">← {m.common.back}</a>
      </p>
    </Layout>
  );
}
