// Services: the list with link counts and webhook health, creating one, and one service's API
// credentials (issue, revoke; the token is shown once) and webhook.
import type { Child } from 'hono/jsx';
import type { ServiceView } from '../../../shared/messages.ts';
import { Ago, Badge, Csrf, Flash, Layout, ShownOnce, type View } from '../layout.tsx';

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

export function ServicesPage({ v, services, flash, canCreate }: { v: View; services: ServiceItem[]; flash?: Child; canCreate: boolean }) {
  const { m } = v;
  const s = m.services;
  return (
    <Layout v={v} title={s.title}>
      {flash}
      <section class="card">
        {services.length === 0 ? (
          <p class="empty">{m.common.none}</p>
        ) : (
          <div class="table-wrap">
            <table data-testid="services">
              <thead>
                <tr>
                  <th>{s.id}</th>
                  <th>{s.name}</th>
                  <th>{m.common.status}</th>
                  <th class="num">{s.links}</th>
                  <th>{s.webhook}</th>
                </tr>
              </thead>
              <tbody>
                {services.map((x) => (
                  <tr>
                    <td class="mono">
                      <a href={`/console/services/${x.id}`}>{x.id}</a>
                    </td>
                    <td>{x.name}</td>
                    <td>{x.status === 'active' ? <Badge kind="ok">{s.activeState}</Badge> : <Badge kind="off">{s.disabled}</Badge>}</td>
                    <td class="num">
                      {String(x.links.active)}
                      {x.links.suspended > 0 && <span class="note"> (+{String(x.links.suspended)})</span>}
                    </td>
                    <td>
                      <WebhookHealth v={v} s={x} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {canCreate && (
        <section class="card">
          <h2>{s.createTitle}</h2>
          <form method="post" action="/console/services" class="form-row">
            <Csrf v={v} />
            <label>
              {s.id}
              <input type="text" name="id" required pattern="[a-z][a-z0-9\-]{1,31}" maxlength={32} />
              <small class="hint">{s.idHint}</small>
            </label>
            <label>
              {s.name}
              <input type="text" name="name" required maxlength={100} />
              <small class="hint">&nbsp;</small>
            </label>
            <label>
              {s.webhookUrl}
              <input type="url" name="webhookUrl" placeholder="https://" />
              <small class="hint">&nbsp;</small>
            </label>
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

export function ServicePage({ v, s, credentials, flash }: { v: View; s: ServiceItem; credentials: CredentialItem[]; flash?: Child }) {
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
            <p class="empty">{t.noWebhook}</p>
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
        {credentials.length === 0 ? (
          <p class="empty">{m.common.none}</p>
        ) : (
          <div class="table-wrap">
            <table data-testid="credentials">
              <thead>
                <tr>
                  <th>ID</th>
                  <th>{t.label}</th>
                  <th>{m.common.created}</th>
                  <th>{m.common.status}</th>
                  <th></th>
                </tr>
              </thead>
              <tbody>
                {credentials.map((c) => (
                  <tr>
                    <td class="mono">{c.id}</td>
                    <td>{c.label}</td>
                    <td>
                      <Ago v={v} at={c.created_at} />
                    </td>
                    <td>{c.revoked_at ? <Badge kind="off">{t.revoked}</Badge> : <Badge kind="ok">{t.activeState}</Badge>}</td>
                    <td>
                      {!c.revoked_at && (
                        <form method="post" action={`${base}/credentials/${c.id}/revoke`} class="inline">
                          <Csrf v={v} />
                          <button class="danger" type="submit">
                            {m.common.revoke}
                          </button>
                        </form>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <form method="post" action={`${base}/credentials`} class="form-row">
          <Csrf v={v} />
          <label>
            {t.label}
            <input type="text" name="label" required maxlength={64} placeholder="pos-1" />
          </label>
          <button type="submit" data-testid="issue-credential">
            {t.issueCredential}
          </button>
        </form>
      </section>

      <HolderProofSetting v={v} s={s} base={base} />

      <section class="card">
        <h2>{t.webhookUrl}</h2>
        <form method="post" action={`${base}/webhook`} class="form-row">
          <Csrf v={v} />
          <label>
            URL
            <input type="url" name="url" value={s.webhookUrl ?? ''} placeholder="https://" />
          </label>
          <button type="submit">{m.common.save}</button>
        </form>
        <p class="note">{v.lang === 'ja' ? 'URLを空にして保存するとWebhookを解除します。保存のたびに新しい署名用シークレットを発行します。' : 'Save an empty URL to clear the webhook. Each save issues a new signing secret.'}</p>
      </section>
      <p>
        <a href="/console/services">← {m.common.back}</a>
      </p>
    </Layout>
  );
}

/** The per-service setting "holder proof at the counter" (on by default; changing it is audited). */
function HolderProofSetting({ v, s, base }: { v: View; s: ServiceItem; base: string }) {
  const ja = v.lang === 'ja';
  const on = s.requireHolderProof !== false;
  return (
    <section class="card" data-testid="holder-proof">
      <h2>{ja ? '窓口での本人確認（暗証番号）' : 'Holder proof at the counter'}</h2>
      <p>
        {on ? <Badge kind="ok">{ja ? '必要' : 'required'}</Badge> : <Badge kind="warn">{ja ? '不要（カードのタッチのみ）' : 'not required (card touch only)'}</Badge>}
      </p>
      <form method="post" action={`${base}/holder-proof`} class="form-row">
        <Csrf v={v} />
        <input type="hidden" name="required" value={on ? '0' : '1'} />
        <button type="submit" class={on ? 'danger' : ''} data-testid="toggle-holder-proof">
          {on ? (ja ? '不要にする' : 'Stop requiring it') : ja ? '必要にする' : 'Require it'}
        </button>
      </form>
      <p class="note">
        {ja
          ? '必要のとき、窓口での連携には利用者の暗証番号による署名が要ります。不要でも、マイキーIDだけでの連携と、他の人に連携済みのサービスIDの付け替えはできません。変更は監査ログに残ります。'
          : "When required, a counter link needs the holder's card signature after the PIN. Even when not, a MyKey ID alone never links, and a service ID linked to someone else is never moved at the counter. Changes are recorded in the audit log."}
      </p>
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
