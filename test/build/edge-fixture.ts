// What the build tests and bench/edge-install.bench.ts share: the edge package built and installed
// into a fresh folder exactly as a reader installs it (`npm ci --omit=dev`), a real hub with its device
// API and broker and an enrolled edge's files, and the built agent started with `node main.js` until
// its reader layer is up and its sync is current (the agent logs `health changed {"health":"ok"}`:
// health is `ok` only with the cache synced from the hub and at least one reader seen, edge/main.ts).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, cpSync, lstatSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildAll } from '../../scripts/build.ts';
import { startTestHub, type TestHub } from '../helpers/hub.ts';
import { enrollEdge } from '../helpers/enrolled-edge.ts';

/** A folder other users may enter (mkdtemp makes 0700 folders). */
export function openTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/** Builds only the edge package into `<parent>/dist` and returns the package folder. */
export async function buildEdgePackage(parent: string): Promise<string> {
  await buildAll(join(parent, 'dist'), ['edge']);
  return join(parent, 'dist', 'edge');
}

/** Copies a built package folder into `<parent>/<name>` and runs `npm ci --omit=dev` there. */
export function installPackage(pkgDir: string, parent: string, name: string, extra: string[] = []): { dir: string; ms: number } {
  const dir = join(parent, name);
  cpSync(pkgDir, dir, { recursive: true });
  const t0 = performance.now();
  // --prefer-offline: the tarballs the repository's own install fetched are in npm's cache.
  const r = spawnSync('npm', ['ci', '--omit=dev', ...extra, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: dir, encoding: 'utf8', timeout: 240_000 });
  if (r.status !== 0) throw new Error(`npm ci in ${dir} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return { dir, ms: performance.now() - t0 };
}

/** Bytes under a path (files and symlinks as stored, like `du --apparent-size`). */
export function treeBytes(path: string): number {
  const st = lstatSync(path);
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const name of readdirSync(path)) total += treeBytes(join(path, name));
  return total;
}

/** Top-level package names under node_modules (scoped ones as @scope/name). */
export function installedPackages(dir: string): string[] {
  const nm = join(dir, 'node_modules');
  const out: string[] = [];
  for (const name of readdirSync(nm)) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) for (const sub of readdirSync(join(nm, name))) out.push(`${name}/${sub}`);
    else out.push(name);
  }
  return out.sort();
}

export interface EdgeSite {
  hub: TestHub;
  /** Folder with the device certificate and key, the hub CA and edge.json. */
  dir: string;
  configFile: string;
  close(): Promise<void>;
}

/**
 * A real hub (HTTP API, device API over TLS, MQTT over TLS) with the service `library` and one edge
 * enrolled; writes that edge's files and config into a fresh folder. `owner` (uid, gid) becomes the
 * owner of that folder, so an unprivileged agent can read its key and write its state.
 */
export async function startEdgeSite(opts: { owner?: { uid: number; gid: number }; config?: Record<string, unknown> } = {}): Promise<EdgeSite> {
  const hub = await startTestHub();
  await hub.hub.start();
  await hub.hub.links.createService({ id: 'library', name: 'Town library' });
  const enrolled = await enrollEdge(hub.hub, 'lib-counter-1');
  const dir = openTempDir('mykey-edge-site-');
  writeFileSync(join(dir, 'device.pem'), enrolled.certPem);
  writeFileSync(join(dir, 'device.key'), enrolled.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'hub-ca.pem'), enrolled.caPem);
  const config = {
    edgeId: 'lib-counter-1',
    serviceId: 'library',
    hub: { url: hub.hub.addresses.deviceApi },
    broker: { url: hub.hub.addresses.mqtts },
    tls: { cert: join(dir, 'device.pem'), key: join(dir, 'device.key'), ca: join(dir, 'hub-ca.pem') },
    stateDir: join(dir, 'state'),
    handoff: { targets: [{ type: 'stdout' }] },
    kiosk: { enabled: false },
    logLevel: 'info',
    ...opts.config,
  };
  const configFile = join(dir, 'edge.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  if (opts.owner) for (const f of ['', 'device.pem', 'device.key', 'hub-ca.pem', 'edge.json']) chownSync(join(dir, f), opts.owner.uid, opts.owner.gid);
  return { hub, dir, configFile, close: () => hub.close() };
}

export interface RunningEdge {
  child: ChildProcess;
  /** stderr so far (the agent logs there). */
  log(): string;
  /** stdout so far (the `stdout` hand-off target writes JSON lines there). */
  out(): string;
  /** Resolves with ms since spawn when a log line matches; rejects on exit or timeout. */
  until(pattern: RegExp, timeoutMs?: number): Promise<number>;
  stop(): Promise<number | null>;
}

/** Spawns `node <pkg>/main.js --config <file>`, optionally as another user (setpriv, as root). */
export function spawnEdge(pkgDir: string, configFile: string, opts: { user?: string } = {}): RunningEdge {
  const node = process.execPath;
  const args = [join(pkgDir, 'main.js'), '--config', configFile];
  const [cmd, argv] = opts.user ? ['setpriv', ['--reuid', opts.user, '--regid', opts.user, '--init-groups', '--inh-caps=-all', '--no-new-privs', '--', node, ...args]] : [node, args];
  const started = performance.now();
  const child = spawn(cmd, argv as string[], { cwd: pkgDir, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent' } });
  let err = '';
  let out = '';
  let exited: number | null | undefined;
  const waiters = new Set<() => void>();
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => {
    err += d;
    for (const w of waiters) w();
  });
  child.on('exit', (code) => {
    exited = code;
    for (const w of waiters) w();
  });
  return {
    child,
    log: () => err,
    out: () => out,
    until(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(err)) {
            done();
            resolve(performance.now() - started);
          } else if (exited !== undefined) {
            done();
            reject(new Error(`the edge exited (${exited}) before ${pattern}:\n${err}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out waiting for ${pattern}:\n${err}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    stop() {
      if (exited !== undefined) return Promise.resolve(exited);
      return new Promise((resolve) => {
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      });
    },
  };
}

/** The log line of an agent whose reader layer is up and whose sync is current. */
/** The agent's `health changed` line with health ok, as a human-readable or a JSON log line. */
export const EDGE_READY = /health changed \{"health":"ok"|"health":"ok"[^\n]*"msg":"health changed"/;
