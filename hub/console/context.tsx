// What every console route shares: its dependencies, the view of the request, the audit call, the
// role checks, the flash store (Post/Redirect/Get) and the error pages. Built once in mount.tsx and
// passed to each page's routes.
import type { Context } from 'hono';
import type { Hono } from 'hono';
import type { Child } from 'hono/jsx';
import { MyKeyError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { DeviceEnrollment } from '../enrollment/device-enrollment.ts';
import type { ActiveSession, ConsoleAuth } from './auth.ts';
import type { EnrollmentTokens } from '../enrollment/tokens.ts';
import { messages, type Lang, type Messages } from './i18n.ts';
import { Bare, CONSOLE_BASE, type View } from './layout.tsx';
import type { ConsoleDeps } from './mount.tsx';

export type Env = { Variables: { session: ActiveSession; form: URLSearchParams; lang: Lang } };
export type C = Context<Env>;
export type ConsoleApp = Hono<Env>;

export interface AuditEntry {
  target?: string;
  serviceId?: string | null;
  ownerServiceId?: string | null;
  outcome?: string;
  detail?: Record<string, unknown>;
}

export async function html(c: Context, node: unknown, status = 200): Promise<Response> {
  return c.html(`<!DOCTYPE html>${await (node as Promise<string> | string)}`, status as 200);
}

/**
 * A human message, in the operator's language, for an expected failure of an action, with the hub's
 * technical detail (its stable code and message) beneath it for a support request.
 */
export function failure(m: Messages, e: unknown) {
  if (!(e instanceof MyKeyError)) return m.errors.internal;
  const known = m.errors as unknown as Record<string, unknown>;
  const text = known[e.code];
  return (
    <>
      <span data-code={e.code}>{typeof text === 'string' ? text : m.errors.other(e.code)}</span>
      <br />
      <small class="note">
        {e.code}: {e.message}
      </small>
    </>
  );
}

export function createConsoleContext(deps: ConsoleDeps, parts: { auth: ConsoleAuth; tokens: EnrollmentTokens; now: () => number; log: Logger }) {
  const { now } = parts;
  const flashes = new Map<string, Child>();

  function view(c: C): View {
    const s = c.get('session');
    const lang = c.get('lang');
    const search = new URL(c.req.url).search;
    return { m: messages(lang), lang, op: s.operator, csrf: s.csrfToken, path: c.req.path, back: c.req.method === 'GET' ? c.req.path + search : c.req.path, now: now() };
  }

  async function audit(c: C, action: string, e: AuditEntry = {}): Promise<void> {
    const op = c.get('session')?.operator;
    await deps.repo.audit({
      at: now(),
      actor: op?.name ?? 'anonymous',
      role: op?.role ?? null,
      action,
      target: e.target,
      service_id: e.serviceId ?? null,
      owner_service_id: e.ownerServiceId ?? null,
      outcome: e.outcome,
      detail: e.detail,
    });
  }

  const isOperator = (c: C) => c.get('session').operator.role === 'operator';
  /** May the signed-in person see and manage this service? */
  const mayManage = (c: C, serviceId: string) => isOperator(c) || c.get('session').operator.serviceId === serviceId;

  function errorPage(c: C, status: 403 | 404, text: string, testid?: string) {
    const v = view(c);
    return html(
      c,
      <Bare m={v.m} lang={v.lang} title={String(status)} back={CONSOLE_BASE}>
        <div class="card">
          <h1>{String(status)}</h1>
          <p data-testid={testid}>{text}</p>
          <p>
            <a href={CONSOLE_BASE}>← {v.m.nav.overview}</a>
          </p>
        </div>
      </Bare>,
      status,
    );
  }

  return {
    deps,
    ...parts,
    view,
    audit,
    isOperator,
    mayManage,
    html,
    failure: (c: C, e: unknown) => failure(view(c).m, e),
    errorPage,
    async forbidden(c: C, action: string, target?: string) {
      await audit(c, action, { target, outcome: 'forbidden' });
      return errorPage(c, 403, view(c).m.common.forbidden, 'forbidden');
    },
    notFound: (c: C) => errorPage(c, 404, view(c).m.common.notFound),
    // Results of a form post (a secret shown once among them) wait here for the page the post
    // redirects to (Post/Redirect/Get), so a reload never repeats the action. Memory only: a secret
    // not yet seen when the hub restarts is gone, and the operator issues another.
    redirectWith(c: C, path: string, flash: Child): Response {
      const key = c.get('session').idHash;
      flashes.delete(key);
      if (flashes.size >= 1000) flashes.delete(flashes.keys().next().value!);
      flashes.set(key, flash);
      return c.redirect(path, 303);
    },
    takeFlash(c: C): Child | undefined {
      const key = c.get('session').idHash;
      const f = flashes.get(key);
      flashes.delete(key);
      return f;
    },
    dropFlash: (c: C) => void flashes.delete(c.get('session').idHash),
    enrollment: (): DeviceEnrollment | undefined => (typeof deps.enrollment === 'function' ? deps.enrollment() : deps.enrollment),
  };
}

export type ConsoleContext = ReturnType<typeof createConsoleContext>;
