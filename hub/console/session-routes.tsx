// Sign-in, sign-out, the language switch, the headers of every response, and the guard in front of
// every other page: a live session, and for posts the session's CSRF token and a same-origin request.
import type { Context } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readBodyText } from '../http/validate.ts';
import { sameSecret } from './auth.ts';
import type { C, ConsoleApp, ConsoleContext } from './context.tsx';
import { html } from './context.tsx';
import { isLang, messages, when } from './i18n.ts';
import { CONSOLE_BASE, SignInPage } from './layout.tsx';

const SESSION_COOKIE = 'mk_session';
const LOGIN_COOKIE = 'mk_login';
const LANG_COOKIE = 'mk_lang';

// No script at all, styles only from our own file, forms only to ourselves, never framed.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS = readFileSync(new URL('./console.css', import.meta.url), 'utf8');

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

export function mountSessionRoutes(r: ConsoleApp, x: ConsoleContext): void {
  const { deps, auth, now, log } = x;
  const repo = deps.repo;
  const maxFormBytes = deps.maxFormBytes ?? 16 * 1024;
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
    return c.redirect(/^\/console(\/[A-Za-z0-9/_.-]*)?(\?[A-Za-z0-9=&_.%-]*)?$/.test(next) ? next : CONSOLE_BASE, 303);
  });

  // Sign-in. The form carries a double-submit token (cookie and field) against login CSRF.
  function signInForm(c: C, status: number, opts: { name?: string; error?: string; info?: string } = {}) {
    const csrf = randomBytes(24).toString('base64url');
    setCookie(c, LOGIN_COOKIE, csrf, cookieOpts(c, 3600));
    const lang = c.get('lang');
    return html(c, <SignInPage m={messages(lang)} lang={lang} csrf={csrf} {...opts} />, status);
  }

  r.get('/login', async (c) => {
    if (await auth.resolve(getCookie(c, SESSION_COOKIE))) return c.redirect(CONSOLE_BASE, 303);
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
    const previous = await auth.resolve(getCookie(c, SESSION_COOKIE));
    const res = await auth.signIn(name, (form.get('password') ?? '').slice(0, 1024), address);
    const actor = name.trim().toLowerCase() || '(empty)';
    if (!res.ok) {
      await repo.audit({ at: now(), actor, action: 'sign_in', outcome: res.reason === 'locked' ? 'locked' : 'failed', detail: { address } });
      if (res.reason === 'locked') {
        log.warn('console sign-in locked', { address });
        return signInForm(c, 429, { name, error: m.signIn.locked(when(res.until), Math.max(1, Math.ceil((res.until - now()) / 60_000))) });
      }
      return signInForm(c, 401, { name, error: m.signIn.invalid });
    }
    // A sign-in replaces any session this browser had (no session fixation, no orphans).
    if (previous) await auth.signOut(previous);
    await repo.audit({ at: now(), actor: res.session.operator.name, role: res.session.operator.role, action: 'sign_in', service_id: res.session.operator.serviceId ?? null, detail: { address } });
    deleteCookie(c, LOGIN_COOKIE, { path: CONSOLE_BASE });
    setCookie(c, SESSION_COOKIE, res.token, cookieOpts(c));
    return c.redirect(CONSOLE_BASE, 303);
  });

  // Everything else needs a live session; posts need the CSRF token and a same-origin request.
  r.use('*', async (c, next) => {
    const cookie = getCookie(c, SESSION_COOKIE);
    const session = await auth.resolve(cookie);
    if (!session) {
      if (cookie) deleteCookie(c, SESSION_COOKIE, { path: CONSOLE_BASE });
      if (c.req.method !== 'GET') return c.text('sign in first', 401);
      return c.redirect(`${CONSOLE_BASE}/login${cookie ? '?expired=1' : ''}`, 303);
    }
    c.set('session', session);
    if (c.req.method === 'POST') {
      const form = await readForm(c);
      if (!form || !originOk(c) || !sameSecret(session.csrfToken, form.get('_csrf') ?? '')) {
        await x.audit(c, 'csrf.refused', { target: c.req.path, outcome: 'forbidden', detail: { origin: c.req.header('origin') ?? null } });
        return x.errorPage(c, 403, x.view(c).m.common.csrf, 'csrf-refused');
      }
      c.set('form', form);
    }
    await next();
  });

  r.post('/logout', async (c) => {
    await x.audit(c, 'sign_out', { serviceId: c.get('session').operator.serviceId });
    x.dropFlash(c);
    await auth.signOut(c.get('session'));
    deleteCookie(c, SESSION_COOKIE, { path: CONSOLE_BASE });
    return c.redirect(`${CONSOLE_BASE}/login?bye=1`, 303);
  });
}
