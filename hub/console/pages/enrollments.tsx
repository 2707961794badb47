// Enrollment tokens: issue one for a service and an edge id (shown once), list them with their
// state, revoke an unused one.
import type { Child } from 'hono/jsx';
import type { EnrollmentTokenRow } from '../../store/console-repo.ts';
import type { TokenState } from '../enrollment-tokens.ts';
import { Ago, Badge, Csrf, Flash, Layout, ShownOnce, type View } from '../layout.tsx';
import { when } from '../i18n.ts';

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
}: {
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
          <p class="empty">{m.common.none}</p>
        ) : (
          <form method="post" action="/console/enrollments" class="form-row">
            <Csrf v={v} />
            <label>
              {m.common.service}
              <select name="serviceId" required>
                {services.map((s) => (
                  <option value={s.id}>
                    {s.name} ({s.id})
                  </option>
                ))}
              </select>
            </label>
            <label>
              {e.edgeId}
              <input type="text" name="edgeId" required pattern="[a-z0-9][a-z0-9\-]{1,63}" maxlength={64} placeholder="library-main-01" />
            </label>
            <label>
              {e.validity}
              <input type="number" name="hours" value="24" min={1} max={168} required />
            </label>
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
        {tokens.length === 0 ? (
          <p class="empty">{m.common.none}</p>
        ) : (
          <div class="table-wrap">
            <table data-testid="enrollment-tokens">
              <thead>
                <tr>
                  <th>{e.tokenId}</th>
                  <th>{m.common.service}</th>
                  <th>{e.edgeId}</th>
                  <th>{m.common.status}</th>
                  <th>{m.common.created}</th>
                  <th>{m.common.expires}</th>
                  <th>{m.common.by}</th>
                  <th></th>
                </tr>
              </thead>
              <tbody>
                {tokens.map((t) => (
                  <tr data-token={t.id}>
                    <td class="mono">mket_{t.id}</td>
                    <td class="mono">{t.service_id}</td>
                    <td class="mono">
                      {t.edge_id}
                      {t.allow_revoked === 1 && (
                        <>
                          {' '}
                          <Badge kind="warn">{e.allowRevokedShort}</Badge>
                        </>
                      )}
                    </td>
                    <td>
                      <Badge kind={STATE_KIND[t.state]}>{e.state[t.state]}</Badge>
                    </td>
                    <td>
                      <Ago v={v} at={t.created_at} />
                    </td>
                    <td>{when(t.expires_at)}</td>
                    <td>{t.created_by}</td>
                    <td>
                      {t.state === 'active' && (
                        <form method="post" action={`/console/enrollments/${t.id}/revoke`} class="inline">
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
      </section>
    </Layout>
  );
}

export function issuedTokenFlash(v: View, t: { token: string; edgeId: string; serviceId: string; expiresAt: number }, target: EnrollTarget) {
  const e = v.m.enrollments;
  return (
    <Flash kind="ok">
      <b>{e.issued}</b>{' '}
      <span class="note">
        {t.serviceId} / {t.edgeId} · {v.m.common.expires} {when(t.expiresAt)}
      </span>
      <ShownOnce v={v} label={m(v)} value={t.token} testid="issued-enrollment-token" />
      <CaFingerprint v={v} target={target} />
      <div>
        <b>{e.command}</b>
        <code class="secret" data-testid="enroll-command">
          {enrollCommand(target, t.edgeId)}
        </code>
        <small class="hint">{e.commandHint}</small>
      </div>
    </Flash>
  );
}

const m = (v: View) => (v.lang === 'ja' ? 'トークン（技術者に渡してください）' : 'Token (hand it to the technician)');
