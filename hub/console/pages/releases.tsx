// Console page: signed edge releases and their rollouts (operators only). An operator starts a
// rollout of a stored release to a service, a share of its edges or named edges, halts one, and
// watches each edge's running version and update state (the page refreshes itself every 5 s).
import type { Releases } from '../../releases/releases.ts';
import type { ReleaseRepo } from '../../store/release-repo.ts';
import type { C, ConsoleApp } from '../context.tsx';
import { Badge, CONSOLE_BASE, Csrf, Flash, Layout, type View } from '../layout.tsx';

export const RELEASES_PATH = `${CONSOLE_BASE}/releases`;

export interface ReleasesPageDeps {
  releases: Releases;
  repo: ReleaseRepo;
}

/** What the console gives a page: its view, rendering, role check, audit and refusal. */
export interface PageKit {
  view: (c: C) => View;
  html: (c: C, node: unknown, status?: number) => Promise<Response>;
  isOperator: (c: C) => boolean;
  audit: (c: C, action: string, e?: { target?: string; outcome?: string; detail?: Record<string, unknown> }) => Promise<void>;
  forbidden: (c: C, action: string, target?: string) => Promise<Response>;
}

const T = {
  ja: {
    title: 'リリース',
    releases: '保存済みリリース',
    rollouts: '配信',
    edges: 'エッジの版と更新状態',
    start: '配信を開始',
    halt: '停止',
    version: '版',
    service: 'サービス (空: リリースの対象すべて)',
    percent: '割合 %',
    named: 'エッジ ID (カンマ区切り、空: すべて)',
    maxFailures: '停止するまでの失敗数',
    none: 'まだありません',
    failures: '失敗',
    state: '状態',
    running: '実行中の版',
  },
  en: {
    title: 'Releases',
    releases: 'Stored releases',
    rollouts: 'Rollouts',
    edges: "Edges' versions and update state",
    start: 'Start rollout',
    halt: 'Halt',
    version: 'Version',
    service: 'Service (empty: every service the release is for)',
    percent: 'Share %',
    named: 'Edge ids (comma-separated; empty: all)',
    maxFailures: 'Failures before it halts',
    none: 'None yet',
    failures: 'Failures',
    state: 'State',
    running: 'Running',
  },
};

const stateKind = (s: string) => (s === 'installed' || s === 'active' ? 'ok' : s === 'rolled_back' || s === 'refused' || s === 'failed' || s === 'halted' ? 'bad' : s === 'idle' ? 'off' : 'warn');

/** What the page shows, read from the store before it renders. */
async function releasesData(repo: ReleaseRepo) {
  const rollouts = await repo.rollouts(20);
  const failures = new Map<number, number>();
  for (const r of rollouts) failures.set(r.id, await repo.failures(r.id));
  return { releases: await repo.releases(), rollouts, failures, edges: await repo.edges(500) };
}

function ReleasesView({ v, data, flash }: { v: View; data: Awaited<ReturnType<typeof releasesData>>; flash?: { ok: boolean; text: string } }) {
  const t = T[v.lang];
  const { releases, rollouts, edges } = data;
  return (
    <Layout v={v} title={t.title}>
      <meta http-equiv="refresh" content="5" />
      <h1>{t.title}</h1>
      {flash ? <Flash kind={flash.ok ? 'ok' : 'bad'}>{flash.text}</Flash> : null}
      <section class="card">
        <h2>{t.releases}</h2>
        {releases.length === 0 ? <p>{t.none}</p> : null}
        <table data-testid="releases">
          {releases.map((r) => (
            <tr>
              <td>{r.version}</td>
              <td>{(JSON.parse(r.services) as string[]).join(', ')}</td>
              <td>
                <code>{r.digest.slice(0, 16)}</code>
              </td>
              <td>{r.bundle_ready ? <Badge kind="ok">bundle</Badge> : <Badge kind="warn">no bundle</Badge>}</td>
            </tr>
          ))}
        </table>
        <form method="post" action={`${RELEASES_PATH}/rollouts`}>
          <Csrf v={v} />
          <label>
            {t.version} <input name="version" required pattern="[0-9]+\.[0-9]+\.[0-9]+" />
          </label>
          <label>
            {t.service} <input name="serviceId" />
          </label>
          <label>
            {t.percent} <input name="percent" type="number" min="1" max="100" value="100" />
          </label>
          <label>
            {t.named} <input name="edges" />
          </label>
          <label>
            {t.maxFailures} <input name="maxFailures" type="number" min="1" value="1" />
          </label>
          <button type="submit">{t.start}</button>
        </form>
      </section>
      <section class="card">
        <h2>{t.rollouts}</h2>
        <table data-testid="rollouts">
          {rollouts.map((r) => (
            <tr data-rollout={String(r.id)}>
              <td>#{r.id}</td>
              <td>{r.version}</td>
              <td>
                {r.service_id ?? '*'} {r.edges ? `(${(JSON.parse(r.edges) as string[]).join(', ')})` : `${r.percent}%`}
              </td>
              <td>
                <Badge kind={stateKind(r.state)}>{r.state}</Badge> {r.halted_reason ?? ''}
              </td>
              <td>
                {t.failures}: {data.failures.get(r.id) ?? 0} / {r.max_failures}
              </td>
              <td>
                {r.state === 'active' ? (
                  <form method="post" action={`${RELEASES_PATH}/rollouts/${r.id}/halt`}>
                    <Csrf v={v} />
                    <button type="submit">{t.halt}</button>
                  </form>
                ) : null}
              </td>
            </tr>
          ))}
        </table>
      </section>
      <section class="card">
        <h2>{t.edges}</h2>
        <table data-testid="edge-updates">
          {edges.map((e) => (
            <tr data-edge={e.edge_id}>
              <td>{e.edge_id}</td>
              <td>{e.running}</td>
              <td>
                <Badge kind={stateKind(e.state)}>{e.state}</Badge> {e.version ?? ''}
              </td>
              <td>
                {e.code ?? ''} {e.reason ?? ''}
              </td>
            </tr>
          ))}
        </table>
      </section>
    </Layout>
  );
}

/** Mounts GET /releases and its two form posts on the console's (session-guarded) app. */
export function mountReleasesPage(r: ConsoleApp, deps: ReleasesPageDeps, kit: PageKit): void {
  const page = async (c: C, flash?: { ok: boolean; text: string }, status = 200) => kit.html(c, <ReleasesView v={kit.view(c)} data={await releasesData(deps.repo)} flash={flash} />, status);
  r.get('/releases', (c) => (kit.isOperator(c) ? page(c) : kit.forbidden(c, 'releases.view')));
  r.post('/releases/rollouts', async (c) => {
    if (!kit.isOperator(c)) return kit.forbidden(c, 'rollout.start');
    const f = c.get('form') as URLSearchParams;
    const num = (k: string) => (f.get(k) ? Number(f.get(k)) : undefined);
    const edges = (f.get('edges') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const percent = num('percent');
    const maxFailures = num('maxFailures');
    const serviceId = f.get('serviceId')?.trim() || undefined;
    if ((percent !== undefined && !(Number.isInteger(percent) && percent >= 1 && percent <= 100)) || (maxFailures !== undefined && !(Number.isInteger(maxFailures) && maxFailures >= 1))) {
      return page(c, { ok: false, text: 'share 1..100 and failures >= 1' }, 400);
    }
    const res = await deps.releases.startRollout({ version: f.get('version') ?? '', serviceId, percent, maxFailures, edges: edges.length ? edges : undefined });
    await kit.audit(c, 'rollout.start', { target: f.get('version') ?? '', outcome: res.ok ? 'ok' : res.code });
    return page(c, res.ok ? { ok: true, text: `rollout #${res.value.id} of ${res.value.version} started` } : { ok: false, text: `${res.code}: ${res.message}` }, res.ok ? 200 : 400);
  });
  r.post('/releases/rollouts/:id/halt', async (c) => {
    if (!kit.isOperator(c)) return kit.forbidden(c, 'rollout.halt');
    const res = await deps.releases.halt(Number(c.req.param('id')), 'halted by an operator in the console');
    await kit.audit(c, 'rollout.halt', { target: c.req.param('id'), outcome: res.ok ? 'ok' : res.code });
    return page(c, res.ok ? { ok: true, text: `rollout #${res.value.id} halted` } : { ok: false, text: res.message }, res.ok ? 200 : 409);
  });
}
