// The operator console's routes under /console: sign-in and sign-out, the language switch, and the
// pages. Every page needs a live session; every form post needs the session's CSRF token and a
// same-origin Origin (or Referer) header. Service administrators see and manage only their service.
import type { Context, Hono } from 'hono';
import { Hono as HonoApp } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { MyKeyError } from '../../shared/errors.ts';
import { isEdgeId, isServiceId } from '../../shared/ids.ts';
import { silentLogger, type Logger } from '../../shared/log.ts';
import { serviceView } from '../http/links-routes.ts';
import { readBodyText } from '../http/validate.ts';
import type { Links } from '../links/links.ts';
import type { DeviceEnrollment } from '../pki/device-enrollment.ts';
import type { ConsoleRepo } from '../store/console-repo.ts';
import type { DeviceRepo, LagSample } from '../store/device-repo.ts';
import type { LinkRepo } from '../store/link-repo.ts';
import type { MyKeyRepo } from '../store/mykey-repo.ts';
import type { RevocationRepo, RevocationRunRow } from '../store/revocation-repo.ts';
import { createConsoleAuth, sameSecret, type ActiveSession, type ConsoleAuth, type LockoutPolicy, type SessionPolicy } from './auth.ts';
import { createEnrollmentTokens, type EnrollmentTokens } from './enrollment-tokens.ts';
import { isLang, messages, when, type Lang } from './i18n.ts';
import { Bare, CONSOLE_BASE, Flash, SignInPage, type View } from './layout.tsx';
import { AuditPage } from './pages/audit.tsx';
import { EdgePage, EdgesPage } from './pages/edges.tsx';
import { EnrollmentsPage, issuedTokenFlash, type EnrollTarget } from './pages/enrollments.tsx';
import { OverviewPage, type OverviewData } from './pages/overview.tsx';
import { RevocationsPage } from './pages/revocations.tsx';
import { issuedCredentialFlash, ServicePage, ServicesPage, type ServiceItem } from './pages/services.tsx';
import { checkWebhookUrl, type WebhookUrlPolicy } from '../notify/url-policy.ts';
import { mountReleasesPage, type ReleasesPageDeps } from './pages/releases.tsx';

export interface ConsoleDeps {
  /** Signed edge releases and rollouts (pages/releases.tsx). */
  releases?: ReleasesPageDeps;
  /** Which webhook targets the operator allows (hub config `webhooks`); strict when absent. */
  webhookUrlPolicy?: WebhookUrlPolicy;
  repo: ConsoleRepo;
  links: Links;
  linkRepo: LinkRepo;
  mykeys: MyKeyRepo;
  revocations: RevocationRepo;
  /** Edge devices; without them the edge pages are empty. */
  devices?: DeviceRepo;
  /** Device enrollment, for revoking a device's certificate from its page (or a getter: the hub makes it in start()). */
  enrollment?: DeviceEnrollment | (() => DeviceEnrollment | undefined);
  /** Shared with the enrollment routes; defaults to one over `repo` and `devices`. */
  tokens?: EnrollmentTokens;
  /**
   * The device API URL a technician enrolls against (the hub's enrollment.hubUrl, or its bound device
   * API address), shown with the device CA fingerprint in the ready-to-paste enroll command.
   */
  deviceApiUrl?: string | (() => string | undefined);
  log?: Logger;
  now?: () => number;
  /** Mark cookies Secure: true, false, or 'auto' (when the request came over https). Default 'auto'. */
  secureCookies?: boolean | 'auto';
  /** Origins allowed to post forms besides the request's own, e.g. the public https URL behind a proxy. */
  origins?: string[];
  lockout?: Partial<LockoutPolicy>;
  session?: Partial<SessionPolicy>;
  /** Largest accepted form body. */
  maxFormBytes?: number;
  /**
   * Behind a reverse proxy every request comes from the proxy: take the client address for the
   * per-address lockout from the last X-Forwarded-For entry (the one the proxy added). Only set this
   * when the hub is reachable through the proxy alone.
   */
  trustForwardedFor?: boolean;
}

const SESSION_COOKIE = 'mk_session';
const LOGIN_COOKIE = 'mk_login';
const LANG_COOKIE = 'mk_lang';

// No script at all, styles only from our own file, forms only to ourselves, never framed.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS = readFileSync(new URL('./console.css', import.meta.url), 'utf8');

type Env = { Variables: { session: ActiveSession; form: URLSearchParams; lang: Lang } };
type C = Context<Env>;

function clientAddress(c: Context, trustForwardedFor = false): string {
  if (trustForwardedFor) {
    const last = c.req.header('x-forwarded-for')?.split(',').pop()?.trim();
    if (last) return last.slice(0, 64);
  }
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'local'; // in-process requests (tests) have no socket
  }
}

async function html(c: Context, node: unknown, status = 200): Promise<Response> {
  return c.html(`<!DOCTYPE html>${await (node as Promise<string> | string)}`, status as 200);
}

/** Mounts the console on the hub's app; returns its sign-in and token services (for tests and the CLI). */
export function mountConsole(app: Hono<any>, deps: ConsoleDeps): { auth: ConsoleAuth; tokens: EnrollmentTokens } {
  const { repo, links, linkRepo } = deps;
  const now = deps.now ?? Date.now;
  const log = deps.log ?? silentLogger;
  const auth = createConsoleAuth({ repo, now, lockout: deps.lockout, session: deps.session });
  const tokens = deps.tokens ?? createEnrollmentTokens({ repo, now, devices: deps.devices });
  const maxFormBytes = deps.maxFormBytes ?? 16 * 1024;
  const r = new HonoApp<Env>();

  const secure = (c: Context) => (deps.secureCookies === undefined || deps.secureCookies === 'auto' ? new URL(c.req.url).protocol === 'https:' : deps.secureCookies);
  const cookieOpts = (c: Context, maxAge?: number) => ({ path: CONSOLE_BASE, httpOnly: true, sameSite: 'Strict' as const, secure: secure(c), ...(maxAge ? { maxAge } : {}) });

  function originOk(c: Context): boolean {
    const allowed = new Set([new URL(c.req.url).origin, ...(deps.origins ?? [])]);
    const origin = c.req.header('origin');
    if (origin) return allowed.has(origin);
    // Older browsers omit Origin on same-origin posts; the Referer then says where the form was.
    const referer = c.req.header('referer');
    if (!referer) return false;
    try {
      return allowed.has(new URL(referer).origin);
    } catch {
      return false;
    }
  }

  async function readForm(c: C): Promise<URLSearchParams | undefined> {
    if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(c.req.header('content-type') ?? '')) return undefined;
    try {
      return new URLSearchParams(await readBodyText(c, maxFormBytes));
    } catch {
      return undefined;
    }
  }

  function view(c: C): View {
    const s = c.get('session');
    const lang = c.get('lang');
    return { m: messages(lang), lang, op: s.operator, csrf: s.csrfToken, path: c.req.path, now: now() };
  }

  function audit(c: C, action: string, e: { target?: string; serviceId?: string | null; ownerServiceId?: string | null; outcome?: string; detail?: Record<string, unknown> } = {}) {
    const op = c.get('session')?.operator;
    repo.audit({
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

  async function forbidden(c: C, action: string, target?: string) {
    audit(c, action, { target, outcome: 'forbidden' });
    const v = view(c);
    return html(c, <Bare m={v.m} lang={v.lang} title="403" back={CONSOLE_BASE}><div class="card"><h1>403</h1><p data-testid="forbidden">{v.m.common.forbidden}</p><p><a href={CONSOLE_BASE}>← {v.m.nav.overview}</a></p></div></Bare>, 403);
  }

  async function notFound(c: C) {
    const v = view(c);
    return html(c, <Bare m={v.m} lang={v.lang} title="404" back={CONSOLE_BASE}><div class="card"><h1>404</h1><p>{v.m.common.notFound}</p><p><a href={CONSOLE_BASE}>← {v.m.nav.overview}</a></p></div></Bare>, 404);
  }

  // Results of a form post (a secret shown once among them) wait here for the page the post
  // redirects to (Post/Redirect/Get), so a reload never repeats the action. Memory only: a secret
  // not yet seen when the hub restarts is gone, and the operator issues another.
  const flashes = new Map<string, unknown>();
  function redirectWith(c: C, path: string, flash: unknown): Response {
    const key = c.get('session').idHash;
    flashes.delete(key);
    if (flashes.size >= 1000) flashes.delete(flashes.keys().next().value!);
    flashes.set(key, flash);
    return c.redirect(path, 303);
  }
  function takeFlash(c: C): unknown {
    const key = c.get('session').idHash;
    const f = flashes.get(key);
    flashes.delete(key);
    return f;
  }

  /** A human message for an expected failure of an action. */
  const failure = (e: unknown) => (e instanceof MyKeyError ? e.message : 'internal error');

  // Language, headers: every console response.
  r.use('*', async (c, next) => {
    const l = getCookie(c, LANG_COOKIE);
    c.set('lang', isLang(l) ? l : 'ja');
    await next();
    c.header('content-security-policy', CSP);
    c.header('x-frame-options', 'DENY');
    c.header('referrer-policy', 'same-origin');
    if (!c.req.path.startsWith(`${CONSOLE_BASE}/static/`)) c.header('cache-control', 'no-store');
  });

  r.get('/static/console.css', (c) => c.body(CSS, 200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'public, max-age=3600' }));

  r.get('/lang/:lang', (c) => {
    const lang = c.req.param('lang');
    if (isLang(lang)) setCookie(c, LANG_COOKIE, lang, { path: CONSOLE_BASE, sameSite: 'Lax', secure: secure(c), maxAge: 365 * 86400 });
    const next = c.req.query('next') ?? CONSOLE_BASE;
    // Only back into the console: never an open redirect.
    return c.redirect(/^\/console(\/[A-Za-z0-9/_.-]*)?(\?[A-Za-z0-9=&_.-]*)?$/.test(next) ? next : CONSOLE_BASE, 303);
  });

  // Sign-in. The form carries a double-submit token (cookie and field) against login CSRF.
  function signInForm(c: C, status: number, opts: { name?: string; error?: string; info?: string } = {}) {
    const csrf = randomBytes(24).toString('base64url');
    setCookie(c, LOGIN_COOKIE, csrf, cookieOpts(c, 3600));
    const lang = c.get('lang');
    return html(c, <SignInPage m={messages(lang)} lang={lang} csrf={csrf} {...opts} />, status);
  }

  r.get('/login', async (c) => {
    if (auth.resolve(getCookie(c, SESSION_COOKIE))) return c.redirect(CONSOLE_BASE, 303);
    const m = messages(c.get('lang'));
    return signInForm(c, 200, { info: c.req.query('expired') ? m.signIn.expired : c.req.query('bye') ? m.signIn.signedOut : undefined });
  });

  r.post('/login', async (c) => {
    const m = messages(c.get('lang'));
    const form = await readForm(c);
    const cookie = getCookie(c, LOGIN_COOKIE);
    if (!form || !originOk(c) || !cookie || !sameSecret(cookie, form.get('_csrf') ?? '')) {
      return signInForm(c, 403, { error: m.common.csrf });
    }
    const name = (form.get('name') ?? '').slice(0, 64);
    const address = clientAddress(c, deps.trustForwardedFor);
    const previous = auth.resolve(getCookie(c, SESSION_COOKIE));
    const res = await auth.signIn(name, (form.get('password') ?? '').slice(0, 1024), address);
    const actor = name.trim().toLowerCase() || '(empty)';
    if (!res.ok) {
      repo.audit({ at: now(), actor, action: 'sign_in', outcome: res.reason === 'locked' ? 'locked' : 'failed', detail: { address } });
      if (res.reason === 'locked') {
        log.warn('console sign-in locked', { address });
        return signInForm(c, 429, { name, error: m.signIn.locked(when(res.until), Math.max(1, Math.ceil((res.until - now()) / 60_000))) });
      }
      return signInForm(c, 401, { name, error: m.signIn.invalid });
    }
    // A sign-in replaces any session this browser had (no session fixation, no orphans).
    if (previous) auth.signOut(previous);
    repo.audit({ at: now(), actor: res.session.operator.name, role: res.session.operator.role, action: 'sign_in', service_id: res.session.operator.serviceId ?? null, detail: { address } });
    deleteCookie(c, LOGIN_COOKIE, { path: CONSOLE_BASE });
    setCookie(c, SESSION_COOKIE, res.token, cookieOpts(c));
    return c.redirect(CONSOLE_BASE, 303);
  });

  // Everything else needs a live session; posts need the CSRF token and a same-origin request.
  r.use('*', async (c, next) => {
    const cookie = getCookie(c, SESSION_COOKIE);
    const session = auth.resolve(cookie);
    if (!session) {
      if (cookie) deleteCookie(c, SESSION_COOKIE, { path: CONSOLE_BASE });
      if (c.req.method !== 'GET') return c.text('sign in first', 401);
      return c.redirect(`${CONSOLE_BASE}/login${cookie ? '?expired=1' : ''}`, 303);
    }
    c.set('session', session);
    if (c.req.method === 'POST') {
      const form = await readForm(c);
      if (!form || !originOk(c) || !sameSecret(session.csrfToken, form.get('_csrf') ?? '')) {
        audit(c, 'csrf.refused', { target: c.req.path, outcome: 'forbidden', detail: { origin: c.req.header('origin') ?? null } });
        const v = view(c);
        return html(c, <Bare m={v.m} lang={v.lang} title="403" back={CONSOLE_BASE}><div class="card"><h1>403</h1><p data-testid="csrf-refused">{v.m.common.csrf}</p><p><a href={CONSOLE_BASE}>← {v.m.nav.overview}</a></p></div></Bare>, 403);
      }
      c.set('form', form);
    }
    await next();
  });

  r.post('/logout', (c) => {
    audit(c, 'sign_out', { serviceId: c.get('session').operator.serviceId });
    flashes.delete(c.get('session').idHash);
    auth.signOut(c.get('session'));
    deleteCookie(c, SESSION_COOKIE, { path: CONSOLE_BASE });
    return c.redirect(`${CONSOLE_BASE}/login?bye=1`, 303);
  });

  // Overview
  r.get('/', (c) => {
    const own = c.get('session').operator.serviceId;
    const counts = linkRepo.linkCounts();
    const services = linkRepo
      .services()
      .filter((s) => own === undefined || s.id === own)
      .map((s) => ({
        id: s.id,
        name: s.name,
        active: counts.find((x) => x.service_id === s.id && x.state === 'active')?.n ?? 0,
        suspended: counts.find((x) => x.service_id === s.id && x.state === 'suspended')?.n ?? 0,
      }));
    let edges: OverviewData['edges'];
    if (deps.devices) {
      const list = deps.devices.list(own);
      const active = list.filter((d) => d.status === 'active');
      edges = { online: active.filter((d) => d.online).length, offline: active.filter((d) => !d.online).length, revoked: list.length - active.length };
    }
    const d: OverviewData = { services, edges };
    if (own === undefined) {
      d.mykeyIds = deps.mykeys.counts();
      const seen = new Set<string>();
      d.lastRuns = deps.revocations.recentRuns(500).filter((x: RevocationRunRow) => !seen.has(x.source) && seen.add(x.source));
      d.crls = deps.revocations.states();
    }
    return html(c, <OverviewPage v={view(c)} d={d} />);
  });

  // Services
  const serviceList = (c: C) =>
    links
      .services()
      .filter((s) => mayManage(c, s.id))
      .map((s) => serviceView(linkRepo, s) as ServiceItem);

  r.get('/services', (c) => html(c, <ServicesPage v={view(c)} services={serviceList(c)} canCreate={isOperator(c)} />));

  r.post('/services', async (c) => {
    if (!isOperator(c)) return forbidden(c, 'service.create');
    const f = c.get('form');
    const v = view(c);
    const input = { id: (f.get('id') ?? '').trim(), name: (f.get('name') ?? '').trim().slice(0, 100), webhookUrl: (f.get('webhookUrl') ?? '').trim() || undefined };
    try {
      if (!input.name) throw new MyKeyError('validation_failed', 'a name is required');
      if (input.webhookUrl && !/^https?:\/\/\S+$/.test(input.webhookUrl)) throw new MyKeyError('validation_failed', 'the webhook URL must be http(s)');
      if (input.webhookUrl) checkWebhookUrl(input.webhookUrl, deps.webhookUrlPolicy);
      const res = links.createService(input);
      audit(c, 'service.create', { target: input.id, serviceId: input.id, detail: { name: input.name, webhook: !!input.webhookUrl } });
      const flash = (
        <Flash kind="ok">
          <b>{v.m.services.created}</b>
          {res.webhookSecret && <ShownSecret v={v} value={res.webhookSecret} />}
        </Flash>
      );
      return redirectWith(c, `${CONSOLE_BASE}/services/${input.id}`, flash);
    } catch (e) {
      audit(c, 'service.create', { target: input.id.slice(0, 32), outcome: e instanceof MyKeyError ? e.code : 'error' });
      return html(c, <ServicesPage v={v} services={serviceList(c)} canCreate flash={<Flash kind="bad">{failure(e)}</Flash>} />, e instanceof MyKeyError ? e.status : 500);
    }
  });

  function servicePage(c: C, id: string, flash: unknown = takeFlash(c), status = 200) {
    const s = linkRepo.service(id)!;
    return html(c, <ServicePage v={view(c)} s={serviceView(linkRepo, s) as ServiceItem} credentials={linkRepo.credentials(id)} flash={flash as never} />, status);
  }

  /** Runs a service action after the role and existence checks. */
  function serviceAction(action: string, fn: (c: C, id: string) => Promise<Response> | Response) {
    return async (c: C) => {
      const id = c.req.param('id')!;
      if (!isServiceId(id) || !linkRepo.service(id)) return isOperator(c) ? notFound(c) : forbidden(c, action, id.slice(0, 32));
      if (!mayManage(c, id)) return forbidden(c, action, id);
      return fn(c, id);
    };
  }

  r.get(
    '/services/:id',
    serviceAction('service.view', (c, id) => servicePage(c, id)),
  );

  r.post(
    '/services/:id/credentials',
    serviceAction('credential.issue', (c, id) => {
      const label = (c.get('form').get('label') ?? '').trim().slice(0, 64) || 'credential';
      try {
        const cred = links.issueCredential(id, label);
        audit(c, 'credential.issue', { target: cred.id, serviceId: id, detail: { label } });
        return redirectWith(c, `${CONSOLE_BASE}/services/${id}`, issuedCredentialFlash(view(c), cred.token));
      } catch (e) {
        audit(c, 'credential.issue', { serviceId: id, outcome: e instanceof MyKeyError ? e.code : 'error' });
        return servicePage(c, id, <Flash kind="bad">{failure(e)}</Flash>, 400);
      }
    }),
  );

  r.post(
    '/services/:id/credentials/:cred/revoke',
    serviceAction('credential.revoke', (c, id) => {
      const cred = c.req.param('cred')!.slice(0, 32);
      const done = links.revokeCredential(id, cred);
      audit(c, 'credential.revoke', { target: cred, serviceId: id, outcome: done ? 'ok' : 'not_found' });
      return c.redirect(`${CONSOLE_BASE}/services/${id}`, 303);
    }),
  );

  // Trust hardening (proofs): the per-service "holder proof at the counter" setting, audited.
  r.post(
    '/services/:id/holder-proof',
    serviceAction('service.holder_proof', (c, id) => {
      const v = c.get('form').get('required');
      if (v !== '0' && v !== '1') return servicePage(c, id, <Flash kind="bad">required must be 0 or 1</Flash>, 400);
      links.setRequireHolderProof(id, v === '1');
      audit(c, 'service.holder_proof', { target: id, serviceId: id, detail: { required: v === '1' } });
      return c.redirect(`${CONSOLE_BASE}/services/${id}`, 303);
    }),
  );

  r.post(
    '/services/:id/webhook',
    serviceAction('webhook.set', (c, id) => {
      const url = (c.get('form').get('url') ?? '').trim();
      const v = view(c);
      if (url && !/^https?:\/\/\S{1,2000}$/.test(url)) return servicePage(c, id, <Flash kind="bad">the webhook URL must be http(s)</Flash>, 400);
      try {
        if (url) checkWebhookUrl(url, deps.webhookUrlPolicy);
        const res = links.setWebhook(id, url || null);
        audit(c, 'webhook.set', { target: id, serviceId: id, detail: { cleared: !url } });
        return redirectWith(
          c,
          `${CONSOLE_BASE}/services/${id}`,
          <Flash kind="ok">
            <b>{v.m.services.webhookSaved}</b>
            {res.webhookSecret && <ShownSecret v={v} value={res.webhookSecret} />}
          </Flash>,
        );
      } catch (e) {
        audit(c, 'webhook.set', { target: id, serviceId: id, outcome: e instanceof MyKeyError ? e.code : 'error' });
        return servicePage(c, id, <Flash kind="bad">{failure(e)}</Flash>, 400);
      }
    }),
  );

  // Edges
  r.get('/edges', (c) => {
    const own = c.get('session').operator.serviceId;
    const list = deps.devices?.list(own) ?? [];
    // Sparklines show the newest samples only; the edge's own page has the whole history.
    const samples = new Map<string, LagSample[]>(list.map((d) => [d.edge_id, deps.devices!.lagHistory(d.edge_id).slice(-40)]));
    return html(c, <EdgesPage v={view(c)} edges={list} samples={samples} enabled={!!deps.devices} />);
  });

  r.get('/edges/:edge', (c) => {
    const id = c.req.param('edge');
    const d = isEdgeId(id) ? deps.devices?.get(id) : undefined;
    if (!d) return isOperator(c) ? notFound(c) : forbidden(c, 'edge.view', id.slice(0, 64));
    if (!mayManage(c, d.service_id)) return forbidden(c, 'edge.view', id);
    return html(c, <EdgePage v={view(c)} d={d} samples={deps.devices!.lagHistory(id)} />);
  });

  r.post('/edges/:edge/revoke', async (c) => {
    const id = c.req.param('edge');
    const d = isEdgeId(id) ? deps.devices?.get(id) : undefined;
    const enrollment = typeof deps.enrollment === 'function' ? deps.enrollment() : deps.enrollment;
    if (!d || !enrollment) return isOperator(c) ? notFound(c) : forbidden(c, 'device.revoke', id.slice(0, 64));
    if (!mayManage(c, d.service_id)) return forbidden(c, 'device.revoke', id);
    const res = enrollment.revoke(id, `console:${c.get('session').operator.name}`);
    audit(c, 'device.revoke', { target: id, serviceId: d.service_id, outcome: res.ok ? 'ok' : res.code });
    return c.redirect(`${CONSOLE_BASE}/edges/${id}`, 303);
  });

  // Enrollment tokens
  let fingerprintOf: { pem: string; fingerprint: string } | undefined;
  /** The device API URL and the device CA fingerprint (node's fingerprint256 form), once the hub has them. */
  function enrollTarget(): EnrollTarget {
    const enrollment = typeof deps.enrollment === 'function' ? deps.enrollment() : deps.enrollment;
    const hubUrl = typeof deps.deviceApiUrl === 'function' ? deps.deviceApiUrl() : deps.deviceApiUrl;
    const pem = enrollment?.caPem;
    if (pem && fingerprintOf?.pem !== pem) fingerprintOf = { pem, fingerprint: new X509Certificate(pem).fingerprint256 };
    return { ...(hubUrl ? { hubUrl } : {}), ...(pem ? { caFingerprint: fingerprintOf!.fingerprint } : {}) };
  }

  function enrollmentsPage(c: C, flash: unknown = takeFlash(c), status = 200) {
    const own = c.get('session').operator.serviceId;
    const services = links
      .services()
      .filter((s) => s.status === 'active' && mayManage(c, s.id))
      .map((s) => ({ id: s.id, name: s.name }));
    return html(c, <EnrollmentsPage v={view(c)} tokens={tokens.list(own)} services={services} target={enrollTarget()} flash={flash as never} />, status);
  }

  /** A refused enrollment action: 403 with its code on the page. */
  function refusedEnrollment(c: C, code: 'edge_enrolled_elsewhere' | 'edge_service_move' | 'device_reenroll_revoked' | 'reenroll_needs_operator') {
    return enrollmentsPage(
      c,
      <Flash kind="bad">
        <span data-testid="refused" data-code={code}>
          {view(c).m.enrollments.refused[code]}
        </span>
      </Flash>,
      403,
    );
  }

  r.get('/enrollments', (c) => enrollmentsPage(c));

  r.post('/enrollments', (c) => {
    const f = c.get('form');
    const serviceId = (f.get('serviceId') ?? '').trim();
    const edgeId = (f.get('edgeId') ?? '').trim();
    const hours = Number(f.get('hours') ?? '24');
    const allowRevoked = f.get('allowRevoked') === '1';
    if (!isServiceId(serviceId) || !linkRepo.service(serviceId)) return isOperator(c) ? enrollmentsPage(c, <Flash kind="bad">no such service</Flash>, 400) : forbidden(c, 'enrollment.issue', serviceId.slice(0, 32));
    if (!mayManage(c, serviceId)) return forbidden(c, 'enrollment.issue', serviceId);
    // Bringing a revoked device back (or moving one between services) is a platform operator's call.
    if (allowRevoked && !isOperator(c)) {
      audit(c, 'enrollment.issue', { serviceId, outcome: 'reenroll_needs_operator', detail: { edgeId: edgeId.slice(0, 64), allowRevoked } });
      return refusedEnrollment(c, 'reenroll_needs_operator');
    }
    try {
      if (!Number.isInteger(hours) || hours < 1 || hours > 168) throw new MyKeyError('validation_failed', 'a token is valid for 1 to 168 hours');
      const t = tokens.issue({ serviceId, edgeId, by: c.get('session').operator.name, ttlMs: hours * 3600_000, allowRevoked });
      // An operator's permission to take over a revoked edge id of another service is shown to that service too.
      const from = allowRevoked ? deps.devices?.get(edgeId)?.service_id : undefined;
      audit(c, 'enrollment.issue', { target: `mket_${t.id}`, serviceId, ownerServiceId: from !== serviceId ? from : null, detail: { edgeId, hours, ...(allowRevoked ? { allowRevoked } : {}) } });
      return redirectWith(c, `${CONSOLE_BASE}/enrollments`, issuedTokenFlash(view(c), { token: t.token, edgeId, serviceId, expiresAt: t.expiresAt }, enrollTarget()));
    } catch (e) {
      if (e instanceof MyKeyError && (e.code === 'edge_enrolled_elsewhere' || e.code === 'edge_service_move' || e.code === 'device_reenroll_revoked')) {
        // Filed under the actor's service and shown to the service that owns the edge as well.
        const owner = typeof e.details?.ownerServiceId === 'string' ? e.details.ownerServiceId : null;
        audit(c, 'enrollment.issue', { target: edgeId, serviceId, ownerServiceId: owner !== serviceId ? owner : null, outcome: e.code, detail: { edgeId } });
        return refusedEnrollment(c, e.code);
      }
      audit(c, 'enrollment.issue', { serviceId, outcome: e instanceof MyKeyError ? e.code : 'error', detail: { edgeId: edgeId.slice(0, 64) } });
      return enrollmentsPage(c, <Flash kind="bad">{failure(e)}</Flash>, 400);
    }
  });

  r.post('/enrollments/:id/revoke', async (c) => {
    const id = c.req.param('id');
    const row = /^[0-9a-f]{12}$/.test(id) ? repo.token(id) : undefined;
    if (!row) return isOperator(c) ? notFound(c) : forbidden(c, 'enrollment.revoke', id.slice(0, 32));
    if (!mayManage(c, row.service_id)) return forbidden(c, 'enrollment.revoke', `mket_${id}`);
    const done = tokens.revoke(id, c.get('session').operator.name);
    audit(c, 'enrollment.revoke', { target: `mket_${id}`, serviceId: row.service_id, outcome: done ? 'ok' : 'conflict' });
    return c.redirect(`${CONSOLE_BASE}/enrollments`, 303);
  });

  // Revocation runs: platform-wide, operators only.
  r.get('/revocations', (c) => {
    if (!isOperator(c)) return forbidden(c, 'revocations.view');
    return html(c, <RevocationsPage v={view(c)} runs={deps.revocations.recentRuns(200)} crls={deps.revocations.states()} />);
  });

  // Audit log: a service administrator sees the entries of their service.
  r.get('/audit', (c) => {
    const before = Number(c.req.query('before') ?? '') || undefined;
    const rows = repo.auditLog({ serviceId: c.get('session').operator.serviceId, before, limit: 100 });
    return html(c, <AuditPage v={view(c)} rows={rows} older={rows.length === 100 ? rows[rows.length - 1].id : undefined} />);
  });

  if (deps.releases) mountReleasesPage(r, deps.releases, { view, html, isOperator, audit, forbidden });
  r.all('*', (c) => notFound(c));

  app.route(CONSOLE_BASE, r);
  return { auth, tokens };
}

function ShownSecret({ v, value }: { v: View; value: string }) {
  return (
    <div>
      <b>{v.m.services.webhookSecret}</b>
      <code class="secret" data-testid="webhook-secret">
        {value}
      </code>
      <small class="hint">{v.m.common.shownOnce}</small>
    </div>
  );
}
