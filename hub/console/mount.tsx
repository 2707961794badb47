// The operator console under /console: wires the session guard and each page's routes (one folder
// per page under pages/). Every page needs a live session; every form post needs the session's CSRF
// token and a same-origin Origin (or Referer) header. Service administrators see and manage only
// their service.
import type { Env as HonoEnv, Hono } from 'hono';
import { Hono as HonoApp } from 'hono';
import { silentLogger, type Logger } from '../../shared/log.ts';
import type { Links } from '../links/links.ts';
import type { WebhookUrlPolicy } from '../notify/url-policy.ts';
import type { DeviceEnrollment } from '../enrollment/device-enrollment.ts';
import type { ConsoleRepo } from '../store/console-repo.ts';
import type { DeviceRepo } from '../store/device-repo.ts';
import type { LinkRepo } from '../store/link-repo.ts';
import type { MyKeyRepo } from '../store/mykey-repo.ts';
import type { RevocationRepo } from '../store/revocation-repo.ts';
import { createConsoleAuth, type ConsoleAuth, type LockoutPolicy, type SessionPolicy } from './auth.ts';
import { createConsoleContext, type Env } from './context.tsx';
import { createEnrollmentTokens, type EnrollmentTokens } from '../enrollment/tokens.ts';
import { CONSOLE_BASE } from './layout.tsx';
import { mountAuditRoutes } from './pages/audit/routes.tsx';
import { mountEdgeRoutes } from './pages/edges/routes.tsx';
import { mountEnrollmentRoutes } from './pages/enrollments/routes.tsx';
import { mountOverviewRoutes } from './pages/overview/routes.tsx';
import { mountRevocationRoutes } from './pages/revocations/routes.tsx';
import type { LinkageImportRow } from '../store/linkage-repo.ts';
import { mountServiceRoutes } from './pages/services/routes.tsx';
import { mountSessionRoutes } from './session-routes.tsx';
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
  /** The last certificate linkage imports (hub/linkage), shown with the revocation runs. */
  linkageImports?: () => Promise<LinkageImportRow[]>;
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

/** Mounts the console on the hub's app; returns its sign-in and token services (for tests and the CLI). */
export function mountConsole<E extends HonoEnv>(app: Hono<E>, deps: ConsoleDeps): { auth: ConsoleAuth; tokens: EnrollmentTokens } {
  const now = deps.now ?? Date.now;
  const log = deps.log ?? silentLogger;
  const auth = createConsoleAuth({ repo: deps.repo, now, lockout: deps.lockout, session: deps.session });
  const tokens = deps.tokens ?? createEnrollmentTokens({ repo: deps.repo, now, devices: deps.devices });
  const x = createConsoleContext(deps, { auth, tokens, now, log });
  const r = new HonoApp<Env>();
  mountSessionRoutes(r, x);
  mountOverviewRoutes(r, x);
  mountServiceRoutes(r, x);
  mountEdgeRoutes(r, x);
  mountEnrollmentRoutes(r, x);
  mountRevocationRoutes(r, x);
  mountAuditRoutes(r, x);
  if (deps.releases) mountReleasesPage(r, deps.releases, x);
  r.all('*', (c) => x.notFound(c));
  app.route(CONSOLE_BASE, r);
  return { auth, tokens };
}
