// The console's page frame (header, tabs, language switch, sign-out) and small shared pieces.
import type { Child } from 'hono/jsx';
import type { Operator } from './auth.ts';
import { duration, type Lang, type Messages } from './i18n.ts';

/** What every signed-in page knows about its request. */
export interface View {
  m: Messages;
  lang: Lang;
  op: Operator;
  csrf: string;
  /** The path of this page (for the language switch's way back and the current tab). */
  path: string;
  /** The path with its query (a filtered list), where the language switch comes back to. */
  back?: string;
  now: number;
}

export const CONSOLE_BASE = '/console';
export const CSS_PATH = `${CONSOLE_BASE}/static/console.css`;

type Tab = keyof Messages['nav'];
const TABS: { key: Tab; href: string; operatorOnly?: boolean }[] = [
  { key: 'overview', href: CONSOLE_BASE },
  { key: 'services', href: `${CONSOLE_BASE}/services` },
  { key: 'edges', href: `${CONSOLE_BASE}/edges` },
  { key: 'enrollments', href: `${CONSOLE_BASE}/enrollments` },
  { key: 'revocations', href: `${CONSOLE_BASE}/revocations`, operatorOnly: true },
  { key: 'audit', href: `${CONSOLE_BASE}/audit` },
];

export function langHref(lang: Lang, back: string): string {
  return `${CONSOLE_BASE}/lang/${lang === 'ja' ? 'en' : 'ja'}?next=${encodeURIComponent(back)}`;
}

function Head({ title, m }: { title: string; m: Messages }) {
  return (
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="referrer" content="same-origin" />
      <title>{`${title} · ${m.product} ${m.consoleTitle}`}</title>
      <link rel="stylesheet" href={CSS_PATH} />
    </head>
  );
}

export function Csrf({ v }: { v: View }) {
  return <input type="hidden" name="_csrf" value={v.csrf} />;
}

export function Layout({ v, title, children }: { v: View; title: string; children?: Child }) {
  const { m } = v;
  const here = (href: string) => (href === CONSOLE_BASE ? v.path === CONSOLE_BASE || v.path === `${CONSOLE_BASE}/` : v.path.startsWith(href));
  return (
    <html lang={v.lang}>
      <Head title={title} m={m} />
      <body>
        <header class="top">
          <div class="top-inner">
            <a class="brand" href={CONSOLE_BASE}>
              <b>{m.product}</b>
              <small>{m.consoleTitle}</small>
            </a>
            <div class="who">
              <span>
                {m.signedInAs} <b data-testid="operator">{v.op.name}</b>
              </span>
              <span class="role">
                {m.role[v.op.role]}
                {v.op.serviceId ? ` · ${v.op.serviceId}` : ''}
              </span>
              <a class="lang" href={langHref(v.lang, v.back ?? v.path)} hreflang={v.lang === 'ja' ? 'en' : 'ja'} data-testid="lang-switch">
                {m.switchTo}
              </a>
              <form method="post" action={`${CONSOLE_BASE}/logout`}>
                <Csrf v={v} />
                <button class="linkish" type="submit" data-testid="sign-out">
                  {m.signOut}
                </button>
              </form>
            </div>
          </div>
        </header>
        <nav class="tabs" aria-label={m.consoleTitle}>
          <ul>
            {TABS.filter((t) => !t.operatorOnly || v.op.role === 'operator').map((t) => (
              <li>
                <a href={t.href} class={here(t.href) ? 'here' : ''} aria-current={here(t.href) ? 'page' : undefined}>
                  {m.nav[t.key]}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <main>
          <h1>{title}</h1>
          {children}
        </main>
        <footer>{m.misc.footer}</footer>
      </body>
    </html>
  );
}

/** A page outside the frame: sign-in and errors before sign-in. */
export function Bare({ m, lang, title, back, children }: { m: Messages; lang: Lang; title: string; back: string; children?: Child }) {
  return (
    <html lang={lang}>
      <Head title={title} m={m} />
      <body>
        <header class="top">
          <div class="top-inner">
            <span class="brand">
              <b>{m.product}</b>
              <small>{m.consoleTitle}</small>
            </span>
            <div class="who">
              <a class="lang" href={langHref(lang, back)} data-testid="lang-switch">
                {m.switchTo}
              </a>
            </div>
          </div>
        </header>
        <main>{children}</main>
      </body>
    </html>
  );
}

export function SignInPage({ m, lang, csrf, name, error, info }: { m: Messages; lang: Lang; csrf: string; name?: string; error?: string; info?: string }) {
  return (
    <Bare m={m} lang={lang} title={m.signIn.title} back={`${CONSOLE_BASE}/login`}>
      <div class="signin">
        <div class="card">
          <h1>{m.signIn.title}</h1>
          {error && (
            <div class="flash bad" role="alert" data-testid="sign-in-error">
              {error}
            </div>
          )}
          {info && <div class="flash info">{info}</div>}
          <form method="post" action={`${CONSOLE_BASE}/login`}>
            <input type="hidden" name="_csrf" value={csrf} />
            <label>
              {m.signIn.name}
              <input type="text" name="name" value={name ?? ''} autocomplete="username" required autofocus />
            </label>
            <label>
              {m.signIn.password}
              <input type="password" name="password" autocomplete="current-password" required />
            </label>
            <button type="submit">{m.signIn.submit}</button>
          </form>
        </div>
        <p class="note">{m.signIn.note}</p>
      </div>
    </Bare>
  );
}

export function Flash({ kind, children }: { kind: 'ok' | 'bad' | 'info'; children?: Child }) {
  return (
    <div class={`flash ${kind}`} role={kind === 'bad' ? 'alert' : 'status'}>
      {children}
    </div>
  );
}

/** A secret shown once (API token, webhook secret, enrollment token). */
export function ShownOnce({ v, label, value, testid }: { v: View; label: string; value: string; testid: string }) {
  return (
    <div>
      <b>{label}</b>
      <code class="secret" data-testid={testid}>
        {value}
      </code>
      <small class="hint">{v.m.common.shownOnce}</small>
    </div>
  );
}

export function Badge({ kind, children }: { kind: 'ok' | 'warn' | 'bad' | 'off'; children?: Child }) {
  return <span class={`badge ${kind}`}>{children}</span>;
}

/** A warning badge after a value, a space before it; nothing when `show` does not hold. */
export function WarnAfter({ show, children }: { show: boolean; children?: Child }) {
  if (!show) return null;
  return (
    <>
      {' '}
      <Badge kind="warn">{children}</Badge>
    </>
  );
}

export function Ago({ v, at }: { v: View; at: number | null | undefined }) {
  if (at === null || at === undefined) return <span class="note">{v.m.common.never}</span>;
  return <time datetime={new Date(at).toISOString()}>{v.m.common.ago(duration(v.now - at, v.m))}</time>;
}
