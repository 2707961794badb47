// Edges: online or not, last seen, version, applied sequence and lag with a sparkline; one edge's
// page has the lag chart over time and the device certificate.
import type { Child } from 'hono/jsx';
import type { DeviceRow, LagSample } from '../../store/device-repo.ts';
import { LagChart } from '../lag-chart.tsx';
import { Ago, Badge, Csrf, Layout, type View } from '../layout.tsx';
import { when } from '../i18n.ts';

function Online({ v, d }: { v: View; d: DeviceRow }) {
  if (d.status === 'revoked') return <Badge kind="bad">{v.m.overview.revoked}</Badge>;
  return d.online ? (
    <span>
      <i class="dot-on" />
      {v.m.overview.online}
    </span>
  ) : (
    <span>
      <i class="dot-off" />
      {v.m.overview.offline}
    </span>
  );
}

function Lag({ d }: { d: DeviceRow }) {
  if (d.lag === null) return <span class="note">—</span>;
  return <Badge kind={d.lag === 0 ? 'ok' : d.lag < 50 ? 'warn' : 'bad'}>{String(d.lag)}</Badge>;
}

export function EdgesPage({ v, edges, samples, enabled }: { v: View; edges: DeviceRow[]; samples: Map<string, LagSample[]>; enabled: boolean }) {
  const { m } = v;
  const e = m.edges;
  return (
    <Layout v={v} title={e.title}>
      <section class="card">
        {!enabled || edges.length === 0 ? (
          <p class="empty">{m.common.none}</p>
        ) : (
          <div class="table-wrap">
            <table data-testid="edges">
              <thead>
                <tr>
                  <th>{e.edgeId}</th>
                  <th>{m.common.service}</th>
                  <th>{e.online}</th>
                  <th>{e.lastSeen}</th>
                  <th>{e.version}</th>
                  <th class="num">{e.appliedSeq}</th>
                  <th class="num">{e.lag}</th>
                  <th>{e.lagChart}</th>
                </tr>
              </thead>
              <tbody>
                {edges.map((d) => (
                  <tr data-edge={d.edge_id}>
                    <td class="mono">
                      <a href={`/console/edges/${d.edge_id}`}>{d.edge_id}</a>
                    </td>
                    <td class="mono">{d.service_id}</td>
                    <td>
                      <Online v={v} d={d} />
                    </td>
                    <td>
                      <Ago v={v} at={d.last_seen_at} />
                    </td>
                    <td class="mono">{d.version ?? '—'}</td>
                    <td class="num">{String(d.applied_seq)}</td>
                    <td class="num">
                      <Lag d={d} />
                    </td>
                    <td>
                      {(samples.get(d.edge_id)?.length ?? 0) > 1 ? (
                        <LagChart samples={samples.get(d.edge_id)!} width={120} height={28} compact label={e.lag} />
                      ) : (
                        <span class="note">—</span>
                      )}
                    </td>
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

export function EdgePage({ v, d, samples, flash }: { v: View; d: DeviceRow; samples: LagSample[]; flash?: Child }) {
  const { m } = v;
  const e = m.edges;
  return (
    <Layout v={v} title={d.edge_id}>
      {flash}
      <div class="grid">
        <section class="card">
          <h2>{m.common.status}</h2>
          <table class="kv">
            <tbody>
              <tr>
                <th>{m.common.service}</th>
                <td class="mono">{d.service_id}</td>
              </tr>
              <tr>
                <th>{e.online}</th>
                <td>
                  <Online v={v} d={d} />
                </td>
              </tr>
              <tr>
                <th>{e.lastSeen}</th>
                <td>
                  <Ago v={v} at={d.last_seen_at} />
                </td>
              </tr>
              <tr>
                <th>{e.version}</th>
                <td class="mono">{d.version ?? '—'}</td>
              </tr>
              <tr>
                <th>{e.health}</th>
                <td>{d.health ?? '—'}</td>
              </tr>
              <tr>
                <th>{e.appliedSeq}</th>
                <td>{String(d.applied_seq)}</td>
              </tr>
              <tr>
                <th>{e.lag}</th>
                <td>
                  <Lag d={d} />
                </td>
              </tr>
            </tbody>
          </table>
        </section>
        <section class="card">
          <h2>{e.certificate}</h2>
          <table class="kv">
            <tbody>
              <tr>
                <th>{e.enrolled}</th>
                <td>{when(d.enrolled_at)}</td>
              </tr>
              <tr>
                <th>{e.certExpires}</th>
                <td>{when(d.not_after)}</td>
              </tr>
              <tr>
                <th>Serial</th>
                <td class="mono">{d.cert_serial.slice(0, 16)}…</td>
              </tr>
            </tbody>
          </table>
          {d.status === 'active' && (
            <form method="post" action={`/console/edges/${d.edge_id}/revoke`}>
              <Csrf v={v} />
              <p>
                <button class="danger" type="submit">
                  {e.revokeDevice}
                </button>
              </p>
            </form>
          )}
        </section>
      </div>
      <section class="card">
        <h2>{e.lagChart}</h2>
        {samples.length === 0 ? <p class="empty">{e.noSamples}</p> : <LagChart samples={samples} width={1060} height={220} label={e.lag} />}
      </section>
      <p>
        <a href="/console/edges">← {m.common.back}</a>
      </p>
    </Layout>
  );
}
