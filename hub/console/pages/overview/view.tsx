// Overview: MyKey IDs by status, links per service, edges online and offline, and the revocation
// status (last run per source, age of each applied CRL). Counts only: there is no usage history.
import type { CrlStateRow, RevocationRunRow } from '../../../store/revocation-repo.ts';
import { EDGE_STATES } from '../../../store/device-repo.ts';
import { STATE_KIND, type FleetHealth } from '../edges/health.ts';
import { duration } from '../../i18n.ts';
import { Ago, Badge, Layout, type View } from '../../layout.tsx';

export interface OverviewData {
  /** Platform-wide; absent for a service administrator. */
  mykeyIds?: { active: number; suspended: number; invalidated: number };
  services: { id: string; name: string; active: number; suspended: number }[];
  /** Absent when the hub has no device repository. */
  edges?: FleetHealth;
  /** The newest run of each source; absent for a service administrator. */
  lastRuns?: RevocationRunRow[];
  crls?: CrlStateRow[];
}

/** A stacked bar as SVG (rect widths are attributes, so the strict CSP needs no inline styles). */
export function Bar({ parts }: { parts: { n: number; kind: 'ok' | 'warn' | 'bad' | 'off' }[] }) {
  const total = parts.reduce((a, p) => a + p.n, 0);
  let x = 0;
  return (
    <svg class="bars" viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true">
      <rect class="track" x="0" y="0" width="100" height="8" />
      {total > 0 &&
        parts
          .filter((p) => p.n > 0)
          .map((p) => {
            const w = (p.n / total) * 100;
            const r = <rect class={p.kind} x={x.toFixed(2)} y="0" width={w.toFixed(2)} height="8" />;
            x += w;
            return r;
          })}
    </svg>
  );
}

export function OverviewPage({ v, d }: { v: View; d: OverviewData }) {
  const { m } = v;
  const o = m.overview;
  return (
    <Layout v={v} title={o.title}>
      <div class="grid">
        {d.mykeyIds && (
          <section class="card" data-testid="mykey-counts">
            <h2>{o.mykeyIds}</h2>
            <div class="stat">
              <span class="n">{String(d.mykeyIds.active + d.mykeyIds.suspended + d.mykeyIds.invalidated)}</span>
              <span class="of">{m.common.total}</span>
            </div>
            <Bar
              parts={[
                { n: d.mykeyIds.active, kind: 'ok' },
                { n: d.mykeyIds.suspended, kind: 'warn' },
                { n: d.mykeyIds.invalidated, kind: 'off' },
              ]}
            />
            <div class="legend">
              <span>
                <i class="ok" />
                {o.mykeyStatus.active} {String(d.mykeyIds.active)}
              </span>
              <span>
                <i class="warn" />
                {o.mykeyStatus.suspended} {String(d.mykeyIds.suspended)}
              </span>
              <span>
                <i class="off" />
                {o.mykeyStatus.invalidated} {String(d.mykeyIds.invalidated)}
              </span>
            </div>
          </section>
        )}
        {d.edges && <FleetCard v={v} h={d.edges} />}
      </div>

      <section class="card">
        <h2>{o.linksPerService}</h2>
        {d.services.length === 0 ? (
          <p class="empty">{v.op.role === 'operator' ? <a href="/console/services">{m.hints.noServicesOverview}</a> : m.hints.noServicesAdmin}</p>
        ) : (
          <div class="table-wrap">
            <table data-testid="links-per-service">
              <thead>
                <tr>
                  <th>{m.common.service}</th>
                  <th class="num">{o.active}</th>
                  <th class="num">{o.suspended}</th>
                  <th class="wide"></th>
                </tr>
              </thead>
              <tbody>
                {d.services.map((s) => (
                  <tr>
                    <td>
                      <a href={`/console/services/${s.id}`}>{s.name}</a> <span class="note mono">{s.id}</span>
                    </td>
                    <td class="num">{String(s.active)}</td>
                    <td class="num">{String(s.suspended)}</td>
                    <td>
                      <Bar
                        parts={[
                          { n: s.active, kind: 'ok' },
                          { n: s.suspended, kind: 'warn' },
                        ]}
                      />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      {d.lastRuns && d.crls && (
        <section class="card" data-testid="revocation-status">
          <h2>{o.revocation}</h2>
          {d.lastRuns.length === 0 ? (
            <p class="empty">{m.hints.noRuns}</p>
          ) : (
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th>{m.revocations.source}</th>
                    <th>{o.lastRun}</th>
                    <th>{m.common.status}</th>
                    <th class="num">{m.revocations.entries}</th>
                    <th class="num">{m.revocations.newlySuspended}</th>
                  </tr>
                </thead>
                <tbody>
                  {d.lastRuns.map((r) => (
                    <tr>
                      <td class="mono">{r.source}</td>
                      <td>
                        <Ago v={v} at={r.finished_at} />
                      </td>
                      <td>{r.ok ? <Badge kind="ok">{m.revocations.ok}</Badge> : <Badge kind="bad">{m.revocations.failed}</Badge>}</td>
                      <td class="num">{r.entries === null ? '—' : String(r.entries)}</td>
                      <td class="num">{r.newly_suspended === null ? '—' : String(r.newly_suspended)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <h2 class="spaced">{m.revocations.crls}</h2>
          {d.crls.length === 0 ? (
            <p class="empty">{o.noCrls}</p>
          ) : (
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th>{m.revocations.source}</th>
                    <th>{o.crlAge}</th>
                    <th>{o.nextUpdate}</th>
                    <th class="num">{m.revocations.entries}</th>
                  </tr>
                </thead>
                <tbody>
                  {d.crls.map((c) => (
                    <tr>
                      <td class="mono">{c.source}</td>
                      <td>{duration(v.now - c.this_update, m)}</td>
                      <td>
                        {c.next_update === null ? (
                          '—'
                        ) : c.next_update < v.now ? (
                          <Badge kind="bad">
                            {o.overdue} ({m.common.ago(duration(v.now - c.next_update, m))})
                          </Badge>
                        ) : (
                          <Badge kind="ok">{m.common.in(duration(c.next_update - v.now, m))}</Badge>
                        )}
                      </td>
                      <td class="num">{String(c.entries)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      )}
      <p class="note">{o.noUsage}</p>
    </Layout>
  );
}

/** Edges by state; each count links to the edge list filtered by it. */
function FleetCard({ v, h }: { v: View; h: FleetHealth }) {
  const { m } = v;
  const shown = EDGE_STATES.filter((s) => s !== 'revoked');
  return (
    <section class="card" data-testid="edge-counts">
      <h2>{m.overview.edges}</h2>
      <div class="stat">
        <span class="n">{String(h.states.ok)}</span>
        <span class="of">
          / {String(h.inService)} {m.states.ok}
        </span>
      </div>
      <Bar parts={shown.map((s) => ({ n: h.states[s], kind: STATE_KIND[s] }))} />
      {h.inService === 0 && h.states.revoked === 0 ? (
        <p class="empty">{m.hints.noEdges}</p>
      ) : (
        <ul class="state-counts">
          {[...shown, 'revoked' as const].map((s) => (
            <li>
              <a href={`/console/edges?state=${s}`} data-state={s} data-testid={`count-${s}`}>
                <Badge kind={h.states[s] === 0 ? 'off' : STATE_KIND[s]}>{m.states[s]}</Badge> <b>{String(h.states[s])}</b>
              </a>
            </li>
          ))}
          <li>
            <a href={'/console/edges?sort=lag&dir=desc'} data-testid="count-behind">
              <Badge kind={h.lag.behind === 0 ? 'off' : h.lag.max < 50 ? 'warn' : 'bad'}>{m.overview.behind}</Badge> <b>{String(h.lag.behind)}</b>
              {h.lag.behind > 0 && <span class="note"> ({m.overview.maxLag(h.lag.max)})</span>}
            </a>
          </li>
          <li>
            <a href="/console/edges?state=outdated" data-state="outdated" data-testid="count-outdated" title={h.latest ? `${m.edges.version} < ${h.latest}` : undefined}>
              <Badge kind={h.outdated === 0 ? 'off' : 'warn'}>{m.states.outdated}</Badge> <b>{String(h.outdated)}</b>
            </a>
          </li>
        </ul>
      )}
    </section>
  );
}
