// Enrollment tokens: issue one for a service and an edge id (shown once), list them with their
// state, revoke an unused one.
import type { Child } from 'hono/jsx';
import type { EnrollmentTokenRow } from '../../../store/console-repo.ts';
import type { IssueWarning, TokenState } from '../../../enrollment/tokens.ts';
import { DataTable } from '../../components/data-table.tsx';
import { Field, type FormState } from '../../components/field.tsx';
import { RevokeButton } from '../../components/revoke.tsx';
import { Ago, Badge, Csrf, Flash, Layout, ShownOnce, WarnAfter, type View } from '../../layout.tsx';

/** Said beside a newly issued token: the edge id is enrolled already, or has unused tokens. */
import { when } from '../../i18n.ts';

const STATE_KIND: Record<TokenState, 'ok' | 'off' | 'warn' | 'bad'> = { active: 'ok', used: 'off', expired: 'warn', revoked: 'bad' };

/** Where and how a technician enrolls: the device API URL and the device CA fingerprint, when known. */
export interface EnrollTarget {
  hubUrl?: string;
  /** SHA-256 of the device CA certificate, uppercase hex pairs with colons (node's X509Certificate.fingerprint256). */
  caFingerprint?: string;
}

/** The command the technician pastes on the device (the token travels in MYKEY_ENROLL_TOKEN). */
export function enrollCommand(target: EnrollTarget, edgeId: string, stateDir = '/var/lib/mykey-edge'): string {
  return `npx tsx provisioning/enroll/cli.ts enroll --hub ${target.hubUrl ?? '<device API URL>'} --ca-fingerprint ${target.caFingerprint ?? '<fingerprint>'} --edge-id ${edgeId} --state-dir ${stateDir}`;
}

function CaFingerprint({ v, target }: { v: View; target: EnrollTarget }) {
  const e = v.m.enrollments;
  return (
    <div>
      <b>{e.caFingerprint}</b>
      {target.caFingerprint ? (
        <code class="mono" data-testid="ca-fingerprint">
          {target.caFingerprint}
        </code>
      ) : (
        <p class="note">{e.caUnavailable}</p>
      )}
      <small class="hint">{e.caFingerprintHint}</small>
    </div>
  );
}

export function EnrollmentsPage({
  v,
  tokens,
  services,
  target,
  flash,
  form,
}: {
  form?: FormState;
  v: View;
  tokens: (EnrollmentTokenRow & { state: TokenState })[];
  services: { id: string; name: string }[];
  target: EnrollTarget;
  flash?: Child;
}) {
  const { m } = v;
  const e = m.enrollments;
  return (
    <Layout v={v} title={e.title}>
      <p class="lead">{e.intro}</p>
      {flash}
      <section class="card">
        <h2>{e.issueTitle}</h2>
        <CaFingerprint v={v} target={target} />
        {services.length === 0 ? (
          <p class="empty">{m.hints.noTokenServices}</p>
        ) : (
          <form method="post" action="/console/enrollments" class="form-row">
            <Csrf v={v} />
            <Field v={v} f={form} name="serviceId" label={m.common.service}>
              <select name="serviceId" required>
                {services.map((s) => (
                  <option value={s.id} selected={form?.raw?.serviceId === s.id}>
                    {s.name} ({s.id})
                  </option>
                ))}
              </select>
            </Field>
            <Field v={v} f={form} name="edgeId" label={e.edgeId} required pattern="[a-z0-9][a-z0-9\-]{1,63}" maxlength={64} placeholder="library-main-01" />
            <Field v={v} f={form} name="hours" label={e.validity} type="number" value="24" min={1} max={168} required />
            {v.op.role === 'operator' && (
              <label title={e.allowRevokedHint}>
                <input type="checkbox" name="allowRevoked" value="1" /> {e.allowRevoked}
              </label>
            )}
            <button type="submit" data-testid="issue-enrollment">
              {m.common.issue}
            </button>
          </form>
        )}
      </section>
      <section class="card">
        <DataTable
          testid="enrollment-tokens"
          rows={tokens}
          empty={m.hints.noTokens}
          rowAttrs={(t) => ({ 'data-token': t.id })}
          columns={[
            { label: e.tokenId, mono: true, cell: (t) => `mket_${t.id}` },
            { label: m.common.service, mono: true, cell: (t) => t.service_id },
            {
              label: e.edgeId,
              mono: true,
              cell: (t) => (
                <>
                  {t.edge_id}
                  <WarnAfter show={t.allow_revoked === 1}>{e.allowRevokedShort}</WarnAfter>
                </>
              ),
            },
            { label: m.common.status, cell: (t) => <Badge kind={STATE_KIND[t.state]}>{e.state[t.state]}</Badge> },
            { label: m.common.created, cell: (t) => <Ago v={v} at={t.created_at} /> },
            { label: m.common.expires, cell: (t) => when(t.expires_at) },
            { label: e.usedAt, cell: (t) => (t.used_at === null ? '—' : <span data-testid="used">{e.usedBy(when(t.used_at), t.edge_id)}</span>) },
            { label: m.common.by, cell: (t) => t.created_by },
            { label: '', cell: (t) => t.state === 'active' && <RevokeButton v={v} href={`/console/enrollments/${t.id}/revoke`} /> },
          ]}
        />
      </section>
    </Layout>
  );
}

export function issuedTokenFlash(v: View, t: { token: string; edgeId: string; serviceId: string; expiresAt: number }, target: EnrollTarget, warnings: IssueWarning[] = []) {
  const e = v.m.enrollments;
  return (
    <>
      {warnings.length > 0 && (
        <div class="flash warn" role="alert" data-testid="issue-warnings">
          {warnings.map((w) => (
            <p data-warning={w.kind}>{w.kind === 'enrolled' ? e.warnEnrolled(t.edgeId, w.serviceId, w.revoked) : e.warnUnused(t.edgeId, w.ids.join(', '))}</p>
          ))}
        </div>
      )}
      <Flash kind="ok">
        <b>{e.issued}</b>{' '}
        <span class="note">
          {t.serviceId} / {t.edgeId} · {v.m.common.expires} {when(t.expiresAt)}
        </span>
        <ShownOnce v={v} label={v.m.misc.handToTechnician} value={t.token} testid="issued-enrollment-token" />
        <CaFingerprint v={v} target={target} />
        <div>
          <b>{e.command}</b>
          <code class="secret" data-testid="enroll-command">
            {enrollCommand(target, t.edgeId)}
          </code>
          <small class="hint">{e.commandHint}</small>
        </div>
      </Flash>
    </>
  );
}
