// Irreversible actions: the revoke button is a link to a confirmation page (works without script),
// whose form asks for a reason; the post re-shows the page, with what was typed, until it has one.
import type { Child } from 'hono/jsx';
import { Csrf, Flash, Layout, type View } from '../layout.tsx';

export function RevokeButton({ v, href, label }: { v: View; href: string; label?: string }) {
  return (
    <a class="button danger" href={href} data-testid="revoke-link">
      {label ?? v.m.common.revoke}
    </a>
  );
}

export function ConfirmPage({
  v,
  what,
  action,
  submit,
  back,
  reason = '',
  error,
  status,
}: {
  v: View;
  what: string;
  action: string;
  submit: string;
  back: string;
  reason?: string;
  error?: boolean;
  status?: Child;
}) {
  const c = v.m.confirm;
  return (
    <Layout v={v} title={c.title}>
      {error && (
        <Flash kind="bad">
          <span data-testid="form-error">{v.m.errors.fix}</span>
        </Flash>
      )}
      <section class="card" data-testid="confirm">
        <p>
          <b>{what}</b>
        </p>
        <p class="note">{c.irreversible}</p>
        {status}
        <form method="post" action={action} class="form-col">
          <Csrf v={v} />
          <input type="hidden" name="confirm" value="1" />
          <label>
            {c.reason}
            <textarea name="reason" required minlength={3} maxlength={200} rows={3} aria-invalid={error ? 'true' : undefined}>
              {reason}
            </textarea>
            {error && <small class="field-error">{v.m.invalid.reason}</small>}
          </label>
          <div class="form-row">
            <button class="danger strong" type="submit" data-testid="confirm-submit">
              {submit}
            </button>
            <a href={back}>{c.cancel}</a>
          </div>
        </form>
      </section>
    </Layout>
  );
}
