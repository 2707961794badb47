// Update test rig: stand-in edges (boot.js + a tiny agent bundle built with esbuild) run under a
// supervisor that restarts them like systemd's Restart=always, against a real hub over mutual TLS;
// releases are real signed bundles; a TCP relay can throttle or cut the device API connection.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { Hub } from '../../../hub/main.ts';
import { generateReleaseKeys, manifestFor, signManifest, type ReleaseKeyPair } from '../../../provisioning/release/sign.ts';
import { packFolder } from '../../../provisioning/release/tar.ts';
import { createPrivateKey } from 'node:crypto';
import type { SignedRelease } from '../../../shared/release.ts';
import type { UpdateStep } from '../../../edge/update/updater.ts';
import { enrollEdge } from '../../helpers/enrolled-edge.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');

/** Builds boot.js and the stand-in main.js into `dir` once. */
export async function buildStandIn(dir: string): Promise<{ boot: string; main: string }> {
  mkdirSync(dir, { recursive: true });
  const common = {
    bundle: true,
    platform: 'node' as const,
    format: 'esm' as const,
    target: 'node20',
    logLevel: 'error' as const,
    absWorkingDir: ROOT,
    banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" },
  };
  await build({ ...common, entryPoints: [join(ROOT, 'edge/update/boot.ts')], outfile: join(dir, 'boot.js') });
  await build({ ...common, entryPoints: [join(ROOT, 'test/edge/update/fixtures/stand-in-agent.ts')], outfile: join(dir, 'main.js') });
  return { boot: join(dir, 'boot.js'), main: join(dir, 'main.js') };
}

/** A release folder (main.js + selftest.json + padding) packed and signed. */
export function makeRelease(o: {
  work: string;
  main: string;
  version: string;
  keys: ReleaseKeyPair;
  pass?: boolean;
  padBytes?: number;
  services?: string[];
  allowDowngrade?: boolean;
  minVersion?: string;
}): { bundle: Buffer; signed: SignedRelease } {
  const dir = join(o.work, `src-${o.version}-${Math.random().toString(36).slice(2)}`);
  mkdirSync(dir, { recursive: true });
  cpSync(o.main, join(dir, 'main.js'));
  writeFileSync(join(dir, 'selftest.json'), JSON.stringify({ pass: o.pass ?? true }));
  if (o.padBytes) writeFileSync(join(dir, 'padding.bin'), Buffer.alloc(o.padBytes, 7));
  const bundle = packFolder(dir);
  const signed = signManifest(manifestFor(bundle, { version: o.version, services: o.services, allowDowngrade: o.allowDowngrade, minVersion: o.minVersion }), createPrivateKey(o.keys.privateKeyPem));
  return { bundle, signed };
}

/** Uploads a release through the operator API. */
export async function upload(hub: Hub, token: string, r: { bundle: Buffer; signed: SignedRelease }): Promise<void> {
  const auth = { authorization: `Bearer ${token}` };
  const a = await hub.app.request('/v1/admin/releases', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(r.signed) });
  if (a.status !== 201) throw new Error(`upload manifest: ${a.status} ${await a.text()}`);
  const b = await hub.app.request(`/v1/admin/releases/${JSON.parse(Buffer.from(r.signed.manifest, 'base64url').toString()).version}/bundle`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/octet-stream' },
    body: r.bundle,
  });
  if (b.status !== 204) throw new Error(`upload bundle: ${b.status} ${await b.text()}`);
}

export interface EdgeLine {
  event: string;
  step?: UpdateStep;
  version?: string;
}

/** One stand-in edge: its install folder (factory = the stand-in), certificate, and a supervisor. */
export class StandInEdge {
  readonly lines: EdgeLine[] = [];
  exits: (number | null)[] = [];
  #child: ChildProcess | undefined;
  #stopped = false;
  #waiters: (() => void)[] = [];
  constructor(
    readonly root: string,
    readonly edgeId: string,
    readonly configPath: string,
  ) {}

  static async create(o: {
    hub: Hub;
    work: string;
    edgeId: string;
    serviceId: string;
    built: { boot: string; main: string };
    releaseKey: string;
    hubUrl?: string;
    pauseAt?: UpdateStep;
    selfTestMs?: number;
  }): Promise<StandInEdge> {
    const root = join(o.work, o.edgeId);
    mkdirSync(root, { recursive: true });
    cpSync(o.built.boot, join(root, 'boot.js'));
    cpSync(o.built.main, join(root, 'main.js'));
    writeFileSync(join(root, 'selftest.json'), JSON.stringify({ pass: true }));
    const e = await enrollEdge(o.hub, o.edgeId, o.serviceId);
    const tlsDir = join(o.work, `${o.edgeId}-tls`);
    mkdirSync(tlsDir, { recursive: true });
    writeFileSync(join(tlsDir, 'ca.pem'), e.caPem);
    writeFileSync(join(tlsDir, 'cert.pem'), e.certPem);
    writeFileSync(join(tlsDir, 'key.pem'), e.keyPem);
    const configPath = join(tlsDir, 'stand-in.json');
    const edge = new StandInEdge(root, o.edgeId, configPath);
    edge.configure({
      root: join(root, 'updates'),
      hubUrl: o.hubUrl ?? o.hub.addresses.deviceApi,
      tls: { ca: join(tlsDir, 'ca.pem'), cert: join(tlsDir, 'cert.pem'), key: join(tlsDir, 'key.pem') },
      serviceId: o.serviceId,
      releaseKey: o.releaseKey,
      factoryVersion: '1.0.0',
      checkMs: 150,
      selfTestMs: o.selfTestMs ?? 6000,
      pauseAt: o.pauseAt,
    });
    return edge;
  }

  configure(patch: Record<string, unknown>): void {
    const cur = existsSync(this.configPath) ? (JSON.parse(readFileSync(this.configPath, 'utf8')) as Record<string, unknown>) : {};
    writeFileSync(this.configPath, JSON.stringify({ ...cur, ...patch }));
  }

  /** Runs boot.js and restarts it whenever it exits (systemd Restart=always), until stop(). */
  start(): void {
    this.#stopped = false;
    const child = spawn(process.execPath, [join(this.root, 'boot.js'), '--config', this.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      // biome-ignore lint/suspicious/noAssignInExpressions: the usual split-into-lines loop; the assignment is its condition
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.lines.push(JSON.parse(line) as EdgeLine);
        } catch {
          this.lines.push({ event: 'text' });
        }
        for (const w of this.#waiters.splice(0)) w();
      }
    });
    child.stderr!.on('data', (d: Buffer) => process.env.DEBUG_UPDATES && process.stderr.write(`[${this.edgeId}] ${d}`));
    child.on('exit', (code) => {
      this.exits.push(code);
      for (const w of this.#waiters.splice(0)) w();
      if (!this.#stopped) setTimeout(() => !this.#stopped && this.start(), 50);
    });
  }

  /** Waits for a line matching `pred` after index `from`. */
  async waitFor(pred: (l: EdgeLine) => boolean, timeoutMs = 20_000, from = 0): Promise<EdgeLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.slice(from).find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`${this.edgeId}: timed out; lines: ${JSON.stringify(this.lines.slice(-8))}`);
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  /** Cuts the power: SIGKILL, the supervisor restarts it. */
  kill(): void {
    this.#child?.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    const c = this.#child;
    if (c && c.exitCode === null && c.signalCode === null) await new Promise<void>((r) => (c.once('exit', () => r()), c.kill('SIGKILL')));
  }

  /** The release `current` points at; null: the factory install. */
  current(): string | null {
    try {
      return readlinkSync(join(this.root, 'updates', 'current'))
        .split('/')
        .pop()!;
    } catch {
      return null;
    }
  }
}

/** A TCP relay in front of the device API: optionally throttled, optionally cutting the first N connections after some bytes. */
export function startRelay(
  target: string,
  o: { bytesPerTick?: number; cutAfter?: number; cuts?: number } = {},
): Promise<{ url: string; close: () => Promise<void>; set: (p: { bytesPerTick?: number; cuts?: number }) => void; relayed: () => number }> {
  const t = new URL(target);
  const opts = { ...o };
  const sockets = new Set<Socket>();
  let total = 0;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(t.port), t.hostname.replace(/^\[|\]$/g, ''));
    sockets.add(client).add(upstream);
    client.pipe(upstream);
    let sent = 0;
    const cutThis = opts.cutAfter !== undefined && (opts.cuts ?? 0) > 0;
    if (cutThis) opts.cuts = (opts.cuts ?? 0) - 1;
    const queue: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const pump = () => {
      let budget = opts.bytesPerTick ?? Infinity;
      while (queue.length && budget > 0) {
        const b = queue.shift()!;
        const part = b.subarray(0, budget);
        if (part.length < b.length) queue.unshift(b.subarray(part.length));
        budget -= part.length;
        sent += part.length;
        total += part.length;
        if (cutThis && sent >= opts.cutAfter!) {
          client.write(part.subarray(0, part.length - (sent - opts.cutAfter!)));
          client.destroy();
          upstream.destroy();
          return;
        }
        client.write(part);
      }
      timer = queue.length ? setTimeout(pump, 20) : undefined;
    };
    upstream.on('data', (d: Buffer) => {
      queue.push(d);
      if (!timer) pump();
    });
    const end = () => {
      if (timer) clearTimeout(timer);
      client.destroy();
      upstream.destroy();
    };
    upstream.on('close', () => (queue.length ? setTimeout(end, 2000) : end()));
    client.on('close', end);
    upstream.on('error', end);
    client.on('error', end);
  });
  return new Promise((res) =>
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      res({
        url: `https://127.0.0.1:${port}`,
        set: (p) => Object.assign(opts, p),
        relayed: () => total,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    }),
  );
}

/**
 * A started hub that trusts `keys` for releases and takes the admin `token`, with the service
 * `library` (possession at the counter), as every update test starts from.
 */
export async function startReleaseHub(keys: ReleaseKeyPair, token: string): Promise<TestHub> {
  const h = await startTestHub({ overrides: { admin: { token }, releases: { publicKeys: [keys.publicKeyLine] } } });
  await h.hub.start();
  await h.hub.links.createService({ id: 'library', name: 'Town library', requireHolderProof: false });
  return h;
}

/** What every stand-in update test starts from: a work folder, release keys, a release hub, the built stand-in edge. */
export interface UpdateBench {
  h: TestHub;
  work: string;
  keys: ReleaseKeyPair;
  built: { boot: string; main: string };
}

/** Makes an UpdateBench; the files go in a temp folder named with `prefix`. */
export async function startUpdateBench(prefix: string, token: string): Promise<UpdateBench> {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const keys = generateReleaseKeys();
  const h = await startReleaseHub(keys, token);
  return { work, keys, h, built: await buildStandIn(join(work, 'built')) };
}
