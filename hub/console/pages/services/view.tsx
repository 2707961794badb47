// Services: the list with link counts and webhook health, creating one, and one service's API
// credentials (issue, revoke; the token is shown once) and webhook.
import type { Child } from 'hono/jsx';
import type { ServiceView } from '../../../../shared/messages.ts';
import type { DeviceRow } from '../../../store/device-repo.ts';
import { DataTable } from '../../components/data-table.tsx';
import { Field, type FormState } from '../../components/field.tsx';
import { RevokeButton } from '../../components/revoke.tsx';
import { Ago, Badge, Csrf, Flash, Layout, ShownOnce, type View } from '../../layout.tsx';
import { StateBadge } from '../edges/view.tsx';

/** A service as the hub's API shows it, with its counts and webhook health present. */
export type ServiceItem = ServiceView & { links: NonNullable<ServiceView['links']>; webhook: NonNullable<ServiceView['webhook']> };

export interface CredentialItem {
  id: string;
  label: string;
  created_at: number;
  revoked_at: number | null;
}

function WebhookHealth({ v, s }: { v: View; s: ServiceItem }) {
  const m = v.m.services;
  if (!s.webhookUrl) return <span class="note">—</span>;
  if (!s.webhook.pending) return <Badge kind="ok">{m.healthy}</Badge>;
  return (
    <span>
      <Badge kind={s.webhook.lastError ? 'bad' : 'warn'}>
        {m.pending} {String(s.webhook.pending)}
      </Badge>{' '}
      {s.webhook.oldestPendingAt && (
        <span class="note">
          {m.oldest}: <Ago v={v} at={Date.parse(s.webhook.oldestPendingAt)} />
        </span>
      )}
    </span>
  );
}

export function ServicesPage({ v, services, flash, canCreate, form }: { v: View; services: ServiceItem[]; flash?: Child; canCreate: boolean; form?: FormState }) {
  const { m } = v;
  const s = m.services;
  return (
    <Layout v={v} title={s.title}>
      {flash}
      <section class="card">
        <DataTable
          testid="services"
          rows={services}
          empty={canCreate ? m.hints.noServices : m.hints.noServicesAdmin}
          columns={[
            { label: s.id, mono: true, cell: (x) => <a href={`/console/services/${x.id}`}>{x.id}</a> },
            { label: s.name, cell: (x) => x.name },
            { label: m.common.status, cell: (x) => (x.status === 'active' ? <Badge kind="ok">{s.activeState}</Badge> : <Badge kind="off">{s.disabled}</Badge>) },
            {
              label: s.links,
              num: true,
              cell: (x) => (
                <>
                  {String(x.links.active)}
                  {x.links.suspended > 0 && <span class="note"> (+{String(x.links.suspended)})</span>}
                </>
              ),
            },
            { label: s.webhook, cell: (x) => <WebhookHealth v={v} s={x} /> },
          ]}
        />
      </section>
      {canCreate && (
        <section class="card">
          <h2>{s.createTitle}</h2>
          <form method="post" action="/console/services" class="form-row">
            <Csrf v={v} />
            <Field v={v} f={form} name="id" label={s.id} hint={s.idHint} required pattern="[a-z][a-z0-9\-]{1,31}" maxlength={32} />
            <Field v={v} f={form} name="name" label={s.name} required maxlength={100} />
            <Field v={v} f={form} name="webhookUrl" label={s.webhookUrl} type="url" placeholder="https://" />
            <label>
              <span>&nbsp;</span>
              <button type="submit" data-testid="create-service">
                {m.common.create}
              </button>
              <small class="hint">&nbsp;</small>
            </label>
          </form>
        </section>
      )}
    </Layout>
  );
}

export function ServicePage({
  v,
  s,
  credentials,
  readers,
  latest,
  flash,
  form,
}: {
  v: View;
  s: ServiceItem;
  credentials: CredentialItem[];
  readers: DeviceRow[];
  latest?: string;
  flash?: Child;
  form?: FormState;
}) {
  const { m } = v;
  const t = m.services;
  const base = `/console/services/${s.id}`;
  return (
    <Layout v={v} title={`${s.name}`}>
      <p class="lead mono">{s.id}</p>
      {flash}
      <div class="grid">
        <section class="card">
          <h2>{t.links}</h2>
          <div class="stat">
            <span class="n">{String(s.links.active)}</span>
            <span class="of">{m.overview.active}</span>
          </div>
          <div class="note">
            {m.overview.suspended}: {String(s.links.suspended)}
          </div>
        </section>
        <section class="card" data-testid="webhook-health">
          <h2>{t.webhook}</h2>
          {s.webhookUrl ? (
            <div>
              <div class="mono">{s.webhookUrl}</div>
              <p>
                <WebhookHealth v={v} s={s} />
              </p>
            </div>
          ) : (
            <p class="empty">{m.hints.noWebhook}</p>
          )}
          {s.webhook.lastError && (
            <div class="note">
              {t.lastError}: <span class="mono">{s.webhook.lastError}</span>
            </div>
          )}
        </section>
      </div>

      <section class="card">
        <h2>{t.credentials}</h2>
        <DataTable
          testid="credentials"
          rows={credentials}
          empty={m.hints.noCredentials}
          columns={[
            { label: m.misc.credentialId, mono: true, cell: (c) => c.id },
            { label: t.label, cell: (c) => c.label },
            { label: m.common.created, cell: (c) => <Ago v={v} at={c.created_at} /> },
            { label: m.common.status, cell: (c) => (c.revoked_at ? <Badge kind="off">{t.revoked}</Badge> : <Badge kind="ok">{t.activeState}</Badge>) },
            { label: '', cell: (c) => !c.revoked_at && <RevokeButton v={v} href={`${base}/credentials/${c.id}/revoke`} /> },
          ]}
        />
        <form method="post" action={`${base}/credentials`} class="form-row">
          <Csrf v={v} />
          <Field v={v} f={form} name="label" label={t.label} required maxlength={64} placeholder="pos-1" />
          <button type="submit" data-testid="issue-credential">
            {t.issueCredential}
          </button>
        </form>
      </section>

      <HolderProofSetting v={v} s={s} base={base} />
      <TouchAssuranceSetting v={v} s={s} base={base} />

      <section class="card">
        <h2>{t.webhookUrl}</h2>
        <form method="post" action={`${base}/webhook`} class="form-row">
          <Csrf v={v} />
          <Field v={v} f={form} name="url" label={m.fields.url} type="url" value={s.webhookUrl ?? ''} placeholder="https://" />
          <button type="submit">{m.common.save}</button>
        </form>
        <p class="note">{m.misc.webhookClearHint}</p>
      </section>
      <section class="card">
        <h2>{t.readers}</h2>
        <DataTable
          testid="readers"
          rows={readers}
          empty={m.hints.noReaders}
          columns={[
            { label: m.edges.edgeId, mono: true, cell: (d) => <a href={`/console/edges/${d.edge_id}`}>{d.edge_id}</a> },
            { label: m.edges.health, cell: (d) => <StateBadge v={v} d={d} latest={latest} /> },
            { label: m.edges.lastSeen, cell: (d) => <Ago v={v} at={d.last_seen_at} /> },
            { label: m.edges.version, mono: true, cell: (d) => d.version ?? '—' },
          ]}
        />
      </section>
      <p>
        <a href="/console/services">← {m.common.back}</a>
      </p>
    </Layout>
  );
}

/** The per-service setting "holder proof at the counter" (on by default; changing it is audited). */
function HolderProofSetting({ v, s, base }: { v: View; s: ServiceItem; base: string }) {
  const t = v.m.misc;
  const on = s.requireHolderProof !== false;
  return (
    <section class="card" data-testid="holder-proof">
      <h2>{t.holderProof}</h2>
      <p>{on ? <Badge kind="ok">{t.holderRequired}</Badge> : <Badge kind="warn">{t.holderNotRequired}</Badge>}</p>
      <form method="post" action={`${base}/holder-proof`} class="form-row">
        <Csrf v={v} />
        <input type="hidden" name="required" value={on ? '0' : '1'} />
        <button type="submit" class={on ? 'danger' : ''} data-testid="toggle-holder-proof">
          {on ? t.holderStop : t.holderRequire}
        </button>
      </form>
      <p class="note">{t.holderNote}</p>
    </section>
  );
}

/** PIN-checked touch (#14): what a touch at the service's readers proves (possession by default; audited). */
function TouchAssuranceSetting({ v, s, base }: { v: View; s: ServiceItem; base: string }) {
  const t = v.m.misc;
  const pin = s.touchAssurance === 'pin';
  return (
    <section class="card" data-testid="touch-assurance">
      <h2>{t.touchAssurance}</h2>
      <p>{pin ? <Badge kind="ok">{t.touchPin}</Badge> : <Badge kind="warn">{t.touchPossession}</Badge>}</p>
      <form method="post" action={`${base}/touch-assurance`} class="form-row">
        <Csrf v={v} />
        <input type="hidden" name="level" value={pin ? 'possession' : 'pin'} />
        <button type="submit" class={pin ? 'danger' : ''} data-testid="toggle-touch-assurance">
          {pin ? t.touchStopPin : t.touchRequirePin}
        </button>
      </form>
      <p class="note">{t.touchNote}</p>
    </section>
  );
}

export function issuedCredentialFlash(v: View, token: string) {
  return (
    <Flash kind="ok">
      <b>{v.m.services.credentialIssued}</b>
      <ShownOnce v={v} label={v.m.services.token} value={token} testid="issued-token" />
    </Flash>
  );
}
