// The hub as a service behind TLS, as provisioning/hub-service/README.md installs it: the built hub
// (dist/hub/main.js) run with node as the `mykey-hub` user on the settings of hub.example.json, and
// Debian's nginx with nginx-mykey-hub.conf (only names, ports and paths replaced) on loopback with a
// generated certificate in front of it. The API and the console answer over https through the proxy;
// the console's cookies are Secure; a form posted from a foreign origin is refused; and an
// X-Forwarded-For a client makes up never reaches the hub (the sign-in is audited with the address
// nginx saw). The unit file passes `systemd-analyze verify`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { buildAll, ROOT } from '../../../scripts/build.ts';
import { createTestCa, toPem } from '../../../provisioning/test-ca/ca.ts';
import { testIf } from '../../helpers/requires.ts';
import { openTempDir } from '../../build/edge-fixture.ts';
import { listeningUrl } from '../../helpers/hub-log.ts';
import { until } from '../../helpers/polling.ts';
import { unitForVerify } from '../../helpers/systemd.ts';

const HERE = join(ROOT, 'provisioning', 'hub-service');
const USER = 'mykey-hub';
const NAME = 'hub.test';
const which = (cmd: string) => ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => join(d, cmd)).find((p) => existsSync(p));
const NGINX = which('nginx');
const OPENSSL = which('openssl');
const isRoot = process.getuid?.() === 0;
const t = testIf(Boolean(NGINX && OPENSSL && isRoot), 'needs nginx and openssl (CI installs them) and root');
const tVerify = testIf(Boolean(which('systemd-analyze')), 'needs systemd-analyze');

interface Ctx {
  work: string;
  hub?: ChildProcess;
  hubLog: string;
  hubUrl: string;
  nginx?: ChildProcess;
  nginxLog: string;
  origin: string;
  port: number;
  ca: Buffer;
  dataDir: string;
}
const ctx = { hubLog: '', nginxLog: '' } as Ctx;

function sh(cmd: string, args: string[], opts: { input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function ensureUser(name: string): { uid: number; gid: number } {
  if (spawnSync('id', ['-u', name]).status !== 0) sh('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name]);
  return { uid: Number(sh('id', ['-u', name])), gid: Number(sh('id', ['-g', name])) };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request to the proxy, trusting only the test certificate, by the public name. */
function https(path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ctx.port, servername: NAME, ca: ctx.ca, path, method: init.method ?? 'GET', headers: { host: `${NAME}:${ctx.port}`, ...init.headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

const cookies = (r: Reply) => (r.headers['set-cookie'] ?? []) as string[];
const cookie = (r: Reply, name: string) => cookies(r).find((c) => c.startsWith(`${name}=`));
const value = (c: string | undefined) => c?.split(';')[0];

test.before(async () => {
  if (!(NGINX && OPENSSL && isRoot)) return;
  ctx.work = openTempDir('mykey-hub-service-');
  // The built hub; native modules as `npm ci` in /opt/mykey-hub would give them (the repository's).
  await buildAll(join(ctx.work, 'dist'), ['hub']);
  symlinkSync(join(ROOT, 'node_modules'), join(ctx.work, 'node_modules'));
  const { uid, gid } = ensureUser(USER);

  // The state directory systemd makes (StateDirectory=mykey-hub, 0700, owned by the user).
  ctx.dataDir = join(ctx.work, 'var-lib-mykey-hub');
  mkdirSync(ctx.dataDir, { mode: 0o700 });
  chownSync(ctx.dataDir, uid, gid);
  const ca = await createTestCa({ label: 'hub-service' });
  const anchor = join(ctx.work, 'jpki-ca.pem');
  writeFileSync(anchor, toPem(ca.certDer, 'CERTIFICATE'));

  ctx.port = await freePort();
  ctx.origin = `https://${NAME}:${ctx.port}`;
  // hub.example.json with loopback ports and the test JPKI; the console keys are kept as shipped,
  // except the public origin, which carries the test port.
  const example = JSON.parse(readFileSync(join(HERE, 'hub.example.json'), 'utf8'));
  const config = {
    ...example,
    dataDir: ctx.dataDir,
    http: { ...example.http, port: 0 },
    jpki: { ...example.jpki, trustAnchors: [anchor], crlSources: [], requireRevocationStatus: false },
    broker: { ...example.broker, host: '127.0.0.1', port: 0 },
    devices: { ...example.devices, httpsHost: '127.0.0.1', httpsPort: 0 },
    console: { ...example.console, origins: [ctx.origin] },
  };
  assert.equal([config.console.trustForwardedFor, config.console.secureCookies], [true, true], 'the example sets the proxy keys');
  const configFile = join(ctx.work, 'hub.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));

  const asHub = (args: string[]) => ['--reuid', USER, '--regid', USER, '--init-groups', '--inh-caps=-all', '--no-new-privs', '--', process.execPath, ...args];
  const env = { PATH: '/usr/bin:/bin', HOME: '/nonexistent', NODE_ENV: 'production', MYKEY_HUB_ADMIN_TOKEN: 'service-test-admin-token-0123456789' };
  ctx.hub = spawn('setpriv', asHub([join(ctx.work, 'dist', 'hub', 'main.js'), '--config', configFile]), { cwd: ctx.dataDir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  ctx.hub.stderr!.on('data', (d) => (ctx.hubLog += d));
  // The production hub logs JSON lines (stderr is not a terminal): the address is in its `hub listening` line.
  await until(() => listeningUrl(ctx.hubLog) !== undefined || ctx.hub!.exitCode !== null, { what: 'the hub', detail: () => ctx.hubLog });
  ctx.hubUrl = listeningUrl(ctx.hubLog) ?? '';
  assert.ok(ctx.hubUrl, ctx.hubLog);

  // The first operator, with the built console CLI, as the hub's user, password on stdin.
  const add = spawnSync('setpriv', asHub([join(ctx.work, 'dist', 'hub', 'console-cli.js'), 'add-operator', 'alice', '--role', 'operator', '--config', configFile]), {
    cwd: ctx.dataDir,
    env,
    input: 'correct horse battery staple 42\n',
    encoding: 'utf8',
  });
  assert.is(add.status, 0, add.stdout + add.stderr);

  // A certificate for the public name, as certbot would leave it.
  const tls = join(ctx.work, 'tls');
  mkdirSync(tls);
  sh(OPENSSL!, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${NAME}`,
    '-addext',
    `subjectAltName=DNS:${NAME}`,
    '-keyout',
    join(tls, 'privkey.pem'),
    '-out',
    join(tls, 'fullchain.pem'),
  ]);
  ctx.ca = readFileSync(join(tls, 'fullchain.pem'));

  // The shipped site file, with only the name, the listen address, the certificate paths and the
  // upstream port replaced; the port-80 redirect and the IPv6 listener are left out on loopback.
  const site = readFileSync(join(HERE, 'nginx-mykey-hub.conf'), 'utf8')
    .replace(/server \{\s*listen 80;[\s\S]*?\n\}\n/, '')
    .replace(/^\s*listen \[::\]:443 ssl;\n/m, '')
    .replace('listen 443 ssl;', `listen 127.0.0.1:${ctx.port} ssl;`)
    .replaceAll('hub.example.jp', NAME)
    .replaceAll('/etc/ssl/mykey-hub/', `${tls}/`)
    .replaceAll('http://127.0.0.1:8080', ctx.hubUrl);
  assert.not.match(site, /listen 80;|hub\.example\.jp|:8080/);
  const prefix = join(ctx.work, 'nginx');
  mkdirSync(prefix);
  writeFileSync(join(prefix, 'mykey-hub.conf'), site);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${k}_temp_path ${join(prefix, k)};`).join('\n');
  writeFileSync(
    join(prefix, 'nginx.conf'),
    `user www-data;\nworker_processes 1;\ndaemon off;\npid ${join(prefix, 'nginx.pid')};\nerror_log ${join(prefix, 'error.log')} warn;\nevents { worker_connections 64; }\nhttp {\n  access_log off;\n${temp}\n  include ${join(prefix, 'mykey-hub.conf')};\n}\n`,
  );
  sh(NGINX!, ['-t', '-q', '-p', prefix, '-c', join(prefix, 'nginx.conf')]);
  ctx.nginx = spawn(NGINX!, ['-p', prefix, '-c', join(prefix, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  ctx.nginx.stderr!.on('data', (d) => (ctx.nginxLog += d));
  await until(() => existsSync(join(prefix, 'nginx.pid')) || ctx.nginx!.exitCode !== null, { what: 'nginx', detail: () => ctx.nginxLog });
  let refused = '';
  await until(
    () =>
      https('/healthz').then(
        () => true,
        (e: Error) => {
          refused = e.message;
          return false;
        },
      ),
    { what: 'nginx to answer', intervalMs: 100, detail: () => `${refused}\n${ctx.nginxLog}` },
  );
});

test.after(async () => {
  for (const p of [ctx.nginx, ctx.hub]) {
    if (!p || p.exitCode !== null) continue;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
  }
  if (ctx.work) rmSync(ctx.work, { recursive: true, force: true });
});

t('the hub runs from the build as mykey-hub without capabilities', () => {
  const status = readFileSync(`/proc/${ctx.hub!.pid}/status`, 'utf8');
  const uid = Number(sh('id', ['-u', USER]));
  assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
  assert.match(status, /^CapEff:\s+0+$/m);
  assert.match(status, /^NoNewPrivs:\s+1$/m);
});

t('the API answers over https through nginx', async () => {
  const health = await https('/healthz');
  assert.is(health.status, 200, health.body);
  assert.is((JSON.parse(health.body) as { ok: boolean }).ok, true);
  // The hub's own HSTS header, once (the proxy adds none).
  assert.match(String(health.headers['strict-transport-security']), /^max-age=\d+(; includeSubDomains)?$/);
  const challenge = await https('/v1/challenges', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ purpose: 'register' }) });
  assert.is(challenge.status, 201, challenge.body);
  assert.ok((JSON.parse(challenge.body) as { challenge: string }).challenge);
  const spec = await https('/openapi.json');
  assert.is(spec.status, 200);
});

t('the console signs in over https with Secure cookies, and the address audited is the one nginx saw, not the one the client claimed', async () => {
  const page = await https('/console/login');
  assert.is(page.status, 200, page.body);
  const login = cookie(page, 'mk_login');
  assert.ok(login, 'login cookie');
  assert.match(login!, /;\s*Secure/i);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1];
  assert.ok(csrf, 'csrf field');
  const form = new URLSearchParams({ _csrf: csrf!, name: 'alice', password: 'correct horse battery staple 42' }).toString();
  const signIn = await https('/console/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ctx.origin, cookie: value(login)!, 'x-forwarded-for': '203.0.113.9' },
    body: form,
  });
  assert.is(signIn.status, 303, signIn.body);
  const session = cookie(signIn, 'mk_session');
  assert.ok(session, 'session cookie');
  assert.match(session!, /;\s*Secure/i);
  assert.match(session!, /;\s*HttpOnly/i);
  const overview = await https('/console', { headers: { cookie: value(session)! } });
  assert.is(overview.status, 200);

  const db = new Database(join(ctx.dataDir, 'hub.sqlite'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare("SELECT detail FROM audit_log WHERE action = 'sign_in' AND actor = 'alice'").all() as { detail: string }[];
    assert.is(rows.length, 1);
    assert.is((JSON.parse(rows[0].detail) as { address: string }).address, '127.0.0.1');
  } finally {
    db.close();
  }
});

t('a console form posted from another origin is refused through the proxy', async () => {
  const page = await https('/console/login');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1];
  const r = await https('/console/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example', cookie: value(cookie(page, 'mk_login'))! },
    body: new URLSearchParams({ _csrf: csrf, name: 'alice', password: 'correct horse battery staple 42' }).toString(),
  });
  assert.is(r.status, 403);
  assert.not.ok(cookie(r, 'mk_session'));
});

tVerify('systemd-analyze verify accepts mykey-hub.service', () => {
  const r = spawnSync('systemd-analyze', ['verify', unitForVerify(join(HERE, 'mykey-hub.service'))], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  // verify reports unknown keys and bad values as warnings with status 0: none may appear.
  assert.is(r.stderr.trim(), '', r.stderr);
});

test.run();
