// A test hub whose repositories back a console and an enrollment route mounted on an app of the
// test's own (so the test chooses lockout, clock and device CA whether or not hub/main.ts mounts them
// too), a cookie-keeping in-process client, and operators made through the CLI code path.
import { Hono } from 'hono';
import { join } from 'node:path';
import type { createConsoleAuth } from '../../../../hub/console/auth.ts';
import { runConsoleCli } from '../../../../hub/console/cli.ts';
import { createEnrollmentTokens } from '../../../../hub/enrollment/tokens.ts';
import { mountConsole, type ConsoleDeps } from '../../../../hub/console/mount.tsx';
import { mountEnrollmentRoutes } from '../../../../hub/enrollment/redeem-routes.ts';
import { createOpenApi } from '../../../../hub/http/openapi.ts';
import { errorHandler } from '../../../../hub/http/problem.ts';
import { openDeviceCa } from '../../../../hub/pki/device-ca.ts';
import { createDeviceEnrollment } from '../../../../hub/enrollment/device-enrollment.ts';
import type { ConsoleRepo } from '../../../../hub/store/console-repo.ts';
import type { DeviceRepo } from '../../../../hub/store/device-repo.ts';
import type { TestCa } from '../../../../provisioning/test-ca/ca.ts';
import { startTestHub, type TestHub } from '../../../helpers/hub.ts';

export const PASSWORD = 'correct horse battery staple';

export interface ConsoleHub {
  th: TestHub;
  /** The app with the console and POST /v1/enrollments (the hub's own API stays on th.hub.app). */
  app: Hono;
  repo: ConsoleRepo;
  devices: DeviceRepo;
  enrollment: ReturnType<typeof createDeviceEnrollment>;
  tokens: ReturnType<typeof createEnrollmentTokens>;
  auth: ReturnType<typeof createConsoleAuth>;
  api: ReturnType<typeof createOpenApi>;
  addOperator(name: string, role: 'operator' | 'service-admin', service?: string, password?: string): Promise<void>;
  close(): Promise<void>;
}

/** `clock.t` is the time the hub and the console see (ms); tests move it. */
export async function startConsoleHub(opts: { clock?: { t: number }; console?: Partial<ConsoleDeps>; ca?: TestCa; overrides?: Record<string, unknown> } = {}): Promise<ConsoleHub> {
  const clock = opts.clock;
  const th = await startTestHub({ ca: opts.ca, overrides: opts.overrides, ...(clock ? { now: () => new Date(clock.t) } : {}) });
  const now = () => (clock ? clock.t : Date.now());
  const repo = th.hub.consoleRepo;
  const devices = th.hub.devices;
  const deviceCa = await openDeviceCa(join(th.dir, 'device-ca'));
  const enrollment = createDeviceEnrollment({ deviceCa, devices, now: () => new Date(now()) });
  const tokens = createEnrollmentTokens({ repo, now, devices });
  const app = new Hono();
  app.onError(errorHandler(() => undefined));
  const { auth } = mountConsole(app, {
    repo,
    links: th.hub.links,
    linkRepo: th.hub.linkRepo,
    mykeys: th.hub.mykeys,
    revocations: th.hub.revocations,
    devices,
    enrollment,
    tokens,
    deviceApiUrl: 'https://hub.example:8443',
    now,
    ...opts.console,
  });
  const api = createOpenApi({ title: 'test', version: '0' });
  mountEnrollmentRoutes(app, api, {
    consoleRepo: repo,
    linkRepo: th.hub.linkRepo,
    enrollment,
    tokens,
    brokerUrl: 'mqtts://hub.example:8883',
    brokerUrls: ['mqtts://broker-2.example:8883', 'mqtts://broker-3.example:8883'],
    hubUrl: 'https://hub.example',
    rateLimit: { perSecond: 1000, burst: 1000 },
    now,
  });
  return {
    th,
    app,
    repo,
    devices,
    enrollment,
    tokens,
    auth,
    api,
    async addOperator(name, role, service, password = PASSWORD) {
      const out: string[] = [];
      const code = await runConsoleCli(['add-operator', name, '--role', role, ...(service ? ['--service', service] : [])], th.hub.store, {
        out: (l) => out.push(l),
        readPassword: async () => password,
      });
      if (code !== 0) throw new Error(out.join('\n'));
    },
    close: () => th.close(),
  };
}

/** Serves the test app on a loopback socket (`hostname` '::' takes both 127.0.0.1 and ::1). */
export async function serveConsoleHub(h: ConsoleHub, hostname = '127.0.0.1'): Promise<{ url: string; close(): Promise<void> }> {
  const { serve } = await import('@hono/node-server');
  return new Promise((res) => {
    const server = serve({ fetch: h.app.fetch, hostname, port: 0 }, (info) => {
      res({
        url: `http://${hostname.includes(':') ? `[${hostname === '::' ? '::1' : hostname}]` : hostname}:${info.port}`,
        close: () =>
          new Promise<void>((r) => {
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
            server.close(() => r());
          }),
      });
    });
  });
}

/**
 * A browser stand-in: keeps cookies, sends Origin, finds the CSRF token in pages. In process, or over
 * a real socket when `url` is given (then Origin is that URL's origin).
 */
export function client(h: Pick<ConsoleHub, 'app'>, origin = 'http://localhost', url?: string) {
  if (url) origin = new URL(url).origin;
  const jar = new Map<string, string>();
  let csrf = '';
  async function send(path: string, init: RequestInit = {}): Promise<{ status: number; text: string; headers: Headers; location: string | null }> {
    const headers = new Headers(init.headers);
    if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = url ? await fetch(new URL(path, url), { ...init, headers, redirect: 'manual' }) : await h.app.request(path, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const i = pair.indexOf('=');
      const k = pair.slice(0, i).trim();
      const v = pair.slice(i + 1).trim();
      if (!v || attrs.some((a) => /max-age=0$/i.test(a.trim()))) jar.delete(k);
      else jar.set(k, v);
    }
    const text = await res.text();
    const m = /name="_csrf" value="([^"]+)"/.exec(text);
    if (m) csrf = m[1];
    return { status: res.status, text, headers: res.headers, location: res.headers.get('location') };
  }
  return {
    jar,
    get csrf() {
      return csrf;
    },
    get: (path: string) => send(path),
    post: (path: string, fields: Record<string, string>, o: { origin?: string | null; csrf?: string | null } = {}) => {
      const body = new URLSearchParams(fields);
      const token = o.csrf === undefined ? csrf : o.csrf;
      if (token !== null) body.set('_csrf', token);
      const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
      const ori = o.origin === undefined ? origin : o.origin;
      if (ori !== null) headers.origin = ori;
      return send(path, { method: 'POST', body: body.toString(), headers });
    },
    async signIn(name: string, password = PASSWORD) {
      await send('/console/login');
      return this.post('/console/login', { name, password });
    },
  };
}
