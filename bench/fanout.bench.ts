// Revocation fan-out: 1,000 edges of one service (plus a few of another), mqtt.js clients over TLS
// with their own device certificates in child processes (bench/fanout-edges.ts), subscribed as real
// edges are. The hub runs in its own process (bench/fanout-hub.ts: device repo, links with their
// change log and outbox, the embedded broker), so its RSS is its own; it runs with the node options of
// the hub's systemd unit (provisioning/hub-service, e.g. the V8 heap's), bundled as `npm run build` ships
// the hub (no TypeScript loader: the form operators run), or from source under tsx with FANOUT_HUB=tsx
// (the loader costs the hub ~35-60 MB of RSS and some CPU). Each revocation is a service
// cancelling one of its service IDs: one transaction writes the change-log entry and its outbox row,
// and the outbox hands it to the broker. The time runs from just before that transaction to the
// moment the last edge has the entry (wall clock shared by the processes on this machine).
// The same fan-out runs through Mosquitto (Debian package) with the same certificates, the same TLS,
// the same client processes, the same commit and outbox, the hub publishing as an MQTT client (one
// message at a time, as into aedes; FANOUT_OUTBOX_WINDOW=config publishes with the window the hub
// keeps towards an external broker, broker.external.outboxWindow and outboxWindowKb, or a number of
// messages, with FANOUT_OUTBOX_WINDOW_KB). Every
// edge is connected to both brokers at once and revocations alternate between them, so both see the
// same load from whatever else runs on the machine. Then a burst of 20 revocations committed back to
// back (a CRL run) goes to every edge through each broker. Then, after an unmeasured CRL run of 2,000
// through each broker (FANOUT_BURST_WARMUP), a CRL run of 10,000 suspensions of linked MyKey IDs,
// written as the CRL manager writes them (hub/revocation/crl-match.ts writeRevocations: chunks of
// short transactions, the outboxes told at most every 250 ms, so publishing starts while later
// chunks are written): the outbox coalesces the entries into batched log messages (v3 compact,
// shared/sync.ts, at most 64 KiB each) and the time runs from just before the first chunk until every
// edge has the last entry (the writing's own time, to the last chunk's commit, is a progress line).
// Also reported (progress lines): the CPU time of each broker side per revocation and per 1,000-edge
// reconnect, read from /proc.
//
// Metrics: fanout_1000_p50_ms, fanout_1000_p99_ms (aedes in the hub), mosquitto_fanout_1000_p50_ms,
// mosquitto_fanout_1000_p99_ms, hub_rss_1000_edges_mb (the hub process with every edge connected, before
// any fan-out), hub_rss_1000_edges_after_bursts_mb (the same after every burst), mosquitto_rss_1000_edges_mb
// (Mosquitto with every edge connected, before any fan-out),
// fanout_1000_burst_20_ms, mosquitto_fanout_1000_burst_20_ms, fanout_burst_10k_ms,
// mosquitto_fanout_burst_10k_ms (at 1,000 edges; *_after_commit_ms: the same less the commit). p99 of 100 revocations is the second
// slowest. Descriptors: the hub and Mosquitto each hold a socket per edge, so every process of the
// benchmark is started under `ulimit -n 65536` (or the hard limit).
//
//   npx tsx bench/run.ts fanout
//   FANOUT_EDGES=200 FANOUT_RUNS=20 npx tsx bench/fanout.bench.ts     (a quicker look)
//   FANOUT_ONLY=burst npx tsx bench/fanout.bench.ts     (only the CRL run of 10,000: its metrics alone)
//   FANOUT_HUB=tsx ...     (the hub child from source under tsx; by default it is bundled as `npm run build` bundles the hub)
// Looking into the CRL run: FANOUT_TRACE=1 (each message's hand-off, each child's arrivals),
// FANOUT_PROFILE=<file> FANOUT_PROFILE_AT=burst (hub CPU profile), FANOUT_PROFILE_EDGES=<prefix> (edge
// processes), FANOUT_EDGE_WORK=apply (every edge decodes, validates and applies each message with the
// edge's own code before it counts as arrived), FANOUT_BATCH_VERSION=2 (the outbox writes v2 batches),
// FANOUT_AEDES_WINDOW=<n> (messages in flight into aedes), FANOUT_BURST_ORDER=mosquitto (Mosquitto's
// run first), FANOUT_BURST_WARMUP=<n> (suspensions of the unmeasured run before them; 0: none). The CPU of the hub, Mosquitto and the edge processes during the run is a progress line.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { edgeIdentity } from '../hub/broker/identity.ts';
import { createDeviceCsr, openDeviceCa } from '../hub/pki/device-ca.ts';
import { openDatabase } from '../hub/store/db.ts';
import { createDeviceRepo } from '../hub/store/device-repo.ts';
import { DEVICE_MIGRATIONS } from '../hub/store/schema/devices.ts';
import { bundleEntry } from '../scripts/build.ts';
import { freePort, writeMosquittoConfig } from '../test/hub/broker/helpers/mosquitto.ts';
import { benchMain, percentile, procMemoryMb, progress, round } from './lib.ts';

const EDGES = Number(process.env.FANOUT_EDGES ?? 1000);
const OTHER_EDGES = Number(process.env.FANOUT_OTHER_EDGES ?? 24);
const CHILDREN = Number(process.env.FANOUT_CHILDREN ?? 3);
const RUNS = Number(process.env.FANOUT_RUNS ?? 100);
const WARMUP = 5;
/** Revocations committed back to back, as a CRL run that suspends many MyKey IDs makes them. */
const BURST = Number(process.env.FANOUT_BURST ?? 20);
/** Suspensions of one CRL run, written in chunks as the CRL manager writes them. */
const BIG_BURST = Number(process.env.FANOUT_BIG_BURST ?? 10_000);
/**
 * Suspensions of an unmeasured CRL run through each broker before the measured ones: the first run of
 * large messages costs the edge processes more (their code for large messages not yet optimised,
 * their heaps not yet grown), and without it the broker measured first paid for that alone
 * (FANOUT_BURST_ORDER showed it). 0: none.
 */
const BURST_WARMUP = Number(process.env.FANOUT_BURST_WARMUP ?? 2000);
// Long enough for the PUBACKs of one fan-out to settle before the next starts.
const GAP_MS = 100;
/** `burst`: only the CRL run of BIG_BURST suspensions (no single revocations, no burst of 20). */
const ONLY_BURST = process.env.FANOUT_ONLY === 'burst';
const SERVICE = 'library';
const here = fileURLToPath(new URL('.', import.meta.url));

interface Creds {
  edgeId: string;
  serviceId: string;
  certPem: string;
  keyPem: string;
}
type ChildMsg =
  | { type: 'ready'; connected: number; expected: number; ms: number }
  | { type: 'got'; seq: number; max: number; min: number; count: number }
  | { type: 'disconnected' }
  | { type: 'error'; error: string };

/**
 * A child process of the benchmark (`--expose-gc` so RSS is read after a collection), started through
 * a shell that raises its descriptor limit: the hub holds a socket per edge, more than a default 1,024.
 */
function startChild(file: string, bundle?: string): ChildProcess {
  const raise = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"';
  // The hub child runs with the node options of the hub's systemd unit (ExecStart=/usr/bin/node <options> main.js).
  const unit = file === 'fanout-hub.ts' ? readFileSync(join(here, '../provisioning/hub-service/mykey-hub.service'), 'utf8') : '';
  const unitOptions = /^ExecStart=\S+ (.*?)\S*main\.js/m.exec(unit)?.[1].split(' ').filter(Boolean) ?? [];
  return spawn('sh', ['-c', raise, process.execPath, '--expose-gc', ...unitOptions, ...(bundle ? [bundle] : ['--import', 'tsx', join(here, file)])], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

type HubMsg =
  | { type: 'started'; tlsPort: number }
  | { type: 'attached' }
  | { type: 'revoked'; seq: number; t0: number; target: string; commitMs: number; publishedMs?: number }
  | {
      type: 'stats';
      rssMb: number;
      rssAnonMb: number;
      rssFileMb: number;
      heapMb: number;
      externalMb: number;
      arrayBuffersMb: number;
      connected: number;
      handOffP50: number;
      messages: number;
      entries: number;
    }
  | { type: 'stopped' }
  | { type: 'error'; error: string };

/** Request/reply over the hub child's IPC channel (one request at a time). */
class Hub {
  private pending?: { resolve: (m: HubMsg) => void; reject: (e: Error) => void };
  constructor(readonly child: ChildProcess) {
    child.on('message', (m: HubMsg) => {
      const p = this.pending;
      this.pending = undefined;
      if (m.type === 'error') p?.reject(new Error(`hub: ${m.error}`));
      else p?.resolve(m);
    });
    child.on('exit', (code) => this.pending?.reject(new Error(`hub exited with ${code}`)));
  }
  ask<T extends HubMsg['type']>(msg: Record<string, unknown>): Promise<Extract<HubMsg, { type: T }>> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve: resolve as (m: HubMsg) => void, reject };
      this.child.send(msg);
    });
  }
}

class Edges {
  private waiters = new Map<string, Array<(m: ChildMsg) => void>>();
  private got = new Map<number, Array<{ max: number; count: number }>>();
  private gotWaiter?: { seq: number; resolve: () => void };
  constructor(readonly children: ChildProcess[]) {
    for (const c of children) {
      c.on('message', (m: ChildMsg) => {
        if (m.type === 'got') {
          const list = this.got.get(m.seq) ?? [];
          list.push({ max: m.max, count: m.count });
          this.got.set(m.seq, list);
          if (this.gotWaiter && this.gotWaiter.seq === m.seq && list.length === this.expectingChildren) this.gotWaiter.resolve();
          return;
        }
        if (m.type === 'error') throw new Error(`edge child: ${m.error}`);
        const q = this.waiters.get(m.type);
        q?.shift()?.(m);
      });
    }
  }
  expectingChildren = 0;
  private once(type: string): Promise<ChildMsg> {
    return new Promise((resolve) => {
      const q = this.waiters.get(type) ?? [];
      q.push(resolve);
      this.waiters.set(type, q);
    });
  }
  async connect(target: 'aedes' | 'mosquitto', port: number, caPem: string, credsFile: string, total: number): Promise<{ connected: number; expected: number; ms: number }> {
    const per = Math.ceil(total / this.children.length);
    const readies = this.children.map(() => this.once('ready'));
    this.children.forEach((c, i) => void c.send({ type: 'connect', target, port, caPem, credsFile, from: i * per, to: Math.min(total, (i + 1) * per), service: SERVICE }));
    const rs = (await Promise.all(readies)) as Array<Extract<ChildMsg, { type: 'ready' }>>;
    this.expectingChildren = rs.filter((r) => r.expected > 0).length;
    return { connected: rs.reduce((s, r) => s + r.connected, 0), expected: rs.reduce((s, r) => s + r.expected, 0), ms: Math.max(...rs.map((r) => r.ms)) };
  }
  async disconnect(target: 'aedes' | 'mosquitto'): Promise<void> {
    const ds = this.children.map(() => this.once('disconnected'));
    for (const c of this.children) c.send({ type: 'disconnect', target });
    await Promise.all(ds);
  }
  /** Resolves with the arrival time of the last edge to get `seq`. */
  waitFor(seq: number, timeoutMs = 10_000): Promise<{ last: number; count: number }> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(t);
        this.gotWaiter = undefined;
        const list = this.got.get(seq)!;
        this.got.delete(seq);
        resolve({ last: Math.max(...list.map((g) => g.max)), count: list.reduce((s, g) => s + g.count, 0) });
      };
      const t = setTimeout(() => reject(new Error(`seq ${seq}: not every edge had it after ${timeoutMs} ms`)), timeoutMs);
      if ((this.got.get(seq)?.length ?? 0) === this.expectingChildren) return done();
      this.gotWaiter = { seq, resolve: done };
    });
  }
  exit(): void {
    for (const c of this.children) c.send({ type: 'exit' });
  }
}

interface Target {
  label: 'aedes' | 'mosquitto';
  attach: Record<string, unknown>;
  sample: number[];
  /** Processes whose CPU time a fan-out through this broker costs (the hub; Mosquitto too). */
  pids: number[];
  cpuMs: number;
  /** Time of the commit (change-log entry + outbox row) and hand-off to the outbox, per revocation. */
  commitMs: number[];
}

/** CPU time (user + system) of a process so far, in ms, from /proc (Linux); 0 elsewhere. */
function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces): utime and stime are fields 14 and 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}
const CLOCK_TICKS = 100;
/** System CPU time (stime) of a process so far, in ms; part of cpuMsOf. */
function sysMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[12]) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** Alternates revocations between the brokers (order swapped every round); fills each one's sample. */
async function measure(edges: Edges, hub: Hub, targets: Target[]): Promise<void> {
  for (let i = 1; i <= WARMUP + RUNS; i++) {
    const order = i % 2 ? targets : [...targets].reverse();
    for (const t of order) {
      await hub.ask<'attached'>({ type: 'attach', ...t.attach });
      const cpu0 = t.pids.reduce((sum, pid) => sum + cpuMsOf(pid), 0);
      const { seq, t0, commitMs } = await hub.ask<'revoked'>({ type: 'revoke' });
      const { last } = await edges.waitFor(seq);
      if (i > WARMUP) {
        t.sample.push(last - t0);
        t.commitMs.push(commitMs);
      }
      // The gap lets the PUBACKs settle; their handling is part of the fan-out's cost.
      await new Promise((r) => setTimeout(r, GAP_MS));
      if (i > WARMUP) t.cpuMs += t.pids.reduce((sum, pid) => sum + cpuMsOf(pid), 0) - cpu0;
    }
  }
  for (const t of targets) {
    const slowest = [...t.sample]
      .sort((a, b) => b - a)
      .slice(0, 5)
      .map((x) => Math.round(x));
    progress(
      `${t.label}: p50 ${round(percentile(t.sample, 50), 2)} ms, p99 ${round(percentile(t.sample, 99), 2)} ms over ${t.sample.length} revocations; slowest ${slowest.join(', ')} ms; broker-side CPU ${round(t.cpuMs / t.sample.length, 1)} ms per revocation; commit p50 ${round(percentile(t.commitMs, 50), 2)} ms, max ${round(Math.max(...t.commitMs), 1)} ms`,
    );
    if (process.env.FANOUT_TRACE) {
      progress(`${t.label} in order: ${t.sample.map((x) => Math.round(x)).join(' ')}`);
      progress(`${t.label} commits: ${t.commitMs.map((x) => Math.round(x)).join(' ')}`);
    }
  }
}

function waitListening(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => (Date.now() > end ? reject(new Error('mosquitto did not start')) : setTimeout(attempt, 50)));
    };
    attempt();
  });
}

benchMain(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-fanout-'));
  const children: ChildProcess[] = [];
  let mosquitto: ChildProcess | undefined;
  try {
    progress(`issuing ${EDGES + OTHER_EDGES} device certificates`);
    const ca = await openDeviceCa(join(dir, 'device-ca'));
    const db = openDatabase(join(dir, 'hub.sqlite'));
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'devices'").get()) for (const m of DEVICE_MIGRATIONS) db.exec(m.sql);
    const devices = createDeviceRepo(db);
    const ids: Array<[string, string]> = [];
    for (let i = 0; i < EDGES; i++) ids.push([`edge-${String(i).padStart(4, '0')}`, SERVICE]);
    for (let i = 0; i < OTHER_EDGES; i++) ids.push([`museum-edge-${String(i).padStart(3, '0')}`, 'museum']);
    // Interleave the services so every child has edges of both.
    ids.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const creds: Creds[] = [];
    const t0 = performance.now();
    for (const [edgeId, serviceId] of ids) {
      const { csrDer, keyPem } = await createDeviceCsr(edgeId);
      const r = await ca.issueDeviceCertificate(csrDer, { edgeId, serviceId, validityDays: 2 });
      if (!r.ok) throw new Error(r.message);
      await devices.enroll({ edgeId, serviceId, certSerial: r.value.serialHex, certFingerprint: r.value.fingerprint, notAfter: r.value.notAfter.getTime() }, Date.now());
      creds.push({ edgeId, serviceId, certPem: r.value.certPem, keyPem });
    }
    db.close();
    const hubCsr = await createDeviceCsr('mykey-hub');
    const hubCert = await ca.issueDeviceCertificate(hubCsr.csrDer, { edgeId: 'mykey-hub', serviceId: 'hub', validityDays: 2 });
    if (!hubCert.ok) throw new Error(hubCert.message);
    progress(`issued in ${Math.round(performance.now() - t0)} ms`);
    const credsFile = join(dir, 'edges.json');
    writeFileSync(credsFile, JSON.stringify(creds), { mode: 0o600 });
    const server = await ca.serverCredentials();

    // --- the hub, with its embedded aedes broker, in its own process -------------------------------
    // The hub child bundled as `npm run build` bundles the hub (plain node, no tsx); FANOUT_HUB=tsx: from source.
    const hubBundle = process.env.FANOUT_HUB === 'tsx' ? undefined : join(here, 'out', 'fanout-hub.mjs');
    if (hubBundle) await bundleEntry(join(here, 'fanout-hub.ts'), hubBundle);
    const hubChild = startChild('fanout-hub.ts', hubBundle);
    children.push(hubChild);
    const hub = new Hub(hubChild);
    const { tlsPort } = await hub.ask<'started'>({ type: 'start', dir, service: SERVICE, revocations: 2 * BURST_WARMUP + (ONLY_BURST ? 2 * BIG_BURST : 2 * (WARMUP + RUNS + BURST + BIG_BURST)) });
    await hub.ask<'attached'>({ type: 'attach', target: 'aedes' });
    const base = await hub.ask<'stats'>({ type: 'stats' });
    for (let i = 0; i < CHILDREN; i++) children.push(startChild('fanout-edges.ts'));
    const edges = new Edges(children.slice(1));
    let cpu0 = cpuMsOf(hubChild.pid!);
    let c = await edges.connect('aedes', tlsPort, ca.certPem, credsFile, creds.length);
    progress(`aedes: ${c.connected} edges connected in ${Math.round(c.ms)} ms (${c.expected} of ${SERVICE}); hub CPU ${Math.round(cpuMsOf(hubChild.pid!) - cpu0)} ms`);
    const connected = await hub.ask<'stats'>({ type: 'stats' });
    if (c.connected !== creds.length || connected.connected !== creds.length) throw new Error(`only ${connected.connected} edges connected`);
    const mem = (m: Extract<HubMsg, { type: 'stats' }>) =>
      `RSS ${round(m.rssMb, 1)} MB (anonymous ${round(m.rssAnonMb, 1)}, mapped files ${round(m.rssFileMb, 1)}; JS heap ${round(m.heapMb, 1)}, external ${round(m.externalMb, 1)} of which ArrayBuffers ${round(m.arrayBuffersMb, 1)})`;
    progress(`hub with ${connected.connected} edges connected, before any fan-out: ${mem(connected)}; before they connected: ${mem(base)}`);

    // --- Mosquitto beside it ---------------------------------------------------------------------
    const port = await freePort();
    const conf = writeMosquittoConfig(
      {
        dir,
        caPem: ca.certPem,
        serverCertPem: server.certPem,
        serverKeyPem: server.keyPem,
        edges: creds.map((x) => edgeIdentity(x.edgeId, x.serviceId, '', Infinity)),
        hubUser: 'mykey-hub',
        extra: ['max_connections -1'],
      },
      port,
    );
    // Mosquitto's own descriptor limit must cover every edge.
    mosquitto = spawn('sh', ['-c', 'ulimit -n 65536 2>/dev/null; exec mosquitto -c "$0"', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let mqErr = '';
    mosquitto.stderr!.on('data', (d) => (mqErr = (mqErr + d).slice(-4096)));
    mosquitto.once('exit', (code) => code && progress(`mosquitto exited with ${code}: ${mqErr}`));
    await waitListening(port, 5000);
    cpu0 = cpuMsOf(mosquitto.pid!);
    c = await edges.connect('mosquitto', port, ca.certPem, credsFile, creds.length);
    const mosquittoRssMb = procMemoryMb(mosquitto.pid!, 'VmRSS');
    progress(`mosquitto: ${c.connected} edges connected in ${Math.round(c.ms)} ms; mosquitto CPU ${Math.round(cpuMsOf(mosquitto.pid!) - cpu0)} ms, RSS ${round(mosquittoRssMb, 1)} MB`);

    const aedes: Target = { label: 'aedes', attach: { target: 'aedes' }, sample: [], pids: [hubChild.pid!], cpuMs: 0, commitMs: [] };
    const mq: Target = {
      label: 'mosquitto',
      attach: { target: 'mosquitto', port, certPem: hubCert.value.certPem, keyPem: hubCsr.keyPem },
      sample: [],
      pids: [hubChild.pid!, mosquitto.pid!],
      cpuMs: 0,
      commitMs: [],
    };
    if (!ONLY_BURST) await measure(edges, hub, [aedes, mq]);
    const bursts: Record<string, number> = {};
    for (const t of ONLY_BURST ? [] : [aedes, mq]) {
      await hub.ask<'attached'>({ type: 'attach', ...t.attach });
      const { seq, t0: b0 } = await hub.ask<'revoked'>({ type: 'revoke', count: BURST });
      const { last } = await edges.waitFor(seq, 120_000);
      bursts[t.label] = last - b0;
      progress(`${t.label}: a burst of ${BURST} revocations reached every edge in ${Math.round(bursts[t.label])} ms`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const big: Record<string, number> = {};
    const bigAfterCommit: Record<string, number> = {};
    for (const t of BURST_WARMUP > 0 ? [aedes, mq] : []) {
      await hub.ask<'attached'>({ type: 'attach', ...t.attach });
      const { seq } = await hub.ask<'revoked'>({ type: 'burst', count: BURST_WARMUP });
      await edges.waitFor(seq, 300_000);
      await new Promise((r) => setTimeout(r, 500));
    }
    if (BURST_WARMUP > 0) progress(`an unmeasured CRL run of ${BURST_WARMUP} suspensions went through each broker first`);
    // FANOUT_BURST_ORDER=mosquitto: the CRL run goes through Mosquitto first (the first one meets
    // edge processes that have not yet handled a large message).
    for (const t of process.env.FANOUT_BURST_ORDER === 'mosquitto' ? [mq, aedes] : [aedes, mq]) {
      await hub.ask<'attached'>({ type: 'attach', ...t.attach });
      const before = await hub.ask<'stats'>({ type: 'stats' });
      const cpu0 = t.pids.reduce((sum, pid) => sum + cpuMsOf(pid), 0);
      // Where the burst's CPU goes: the hub, Mosquitto (its own target only), the edges' processes.
      const split0 = [hubChild.pid!, mosquitto.pid!, ...edges.children.map((ch) => ch.pid!)].map(cpuMsOf);
      const sys0 = [hubChild.pid!, mosquitto.pid!, ...edges.children.map((ch) => ch.pid!)].map(sysMsOf);
      const { seq, t0: b0, commitMs, publishedMs } = await hub.ask<'revoked'>({ type: 'burst', count: BIG_BURST });
      const { last } = await edges.waitFor(seq, 300_000);
      big[t.label] = last - b0;
      bigAfterCommit[t.label] = last - b0 - commitMs;
      await new Promise((r) => setTimeout(r, 500));
      const cpu = t.pids.reduce((sum, pid) => sum + cpuMsOf(pid), 0) - cpu0;
      const split = [hubChild.pid!, mosquitto.pid!, ...edges.children.map((ch) => ch.pid!)].map((pid, i) => cpuMsOf(pid) - split0[i]);
      const sys = [hubChild.pid!, mosquitto.pid!, ...edges.children.map((ch) => ch.pid!)].map((pid, i) => sysMsOf(pid) - sys0[i]);
      const sum = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0));
      progress(
        `${t.label}: CPU during the run (incl. 500 ms after; of which system): hub ${Math.round(split[0])} ms (${Math.round(sys[0])}), mosquitto ${Math.round(split[1])} ms (${Math.round(sys[1])}), edge processes ${sum(split.slice(2))} ms (${sum(sys.slice(2))})`,
      );
      const now = await hub.ask<'stats'>({ type: 'stats' });
      progress(
        `${t.label}: a CRL run of ${BIG_BURST} suspensions reached every edge in ${Math.round(big[t.label])} ms (commit ${Math.round(commitMs)} ms, all taken by the broker at ${Math.round(publishedMs ?? NaN)} ms; ` +
          `${now.messages - before.messages} messages for ${now.entries - before.entries} entries; broker-side CPU ${Math.round(cpu)} ms)`,
      );
    }
    const after = await hub.ask<'stats'>({ type: 'stats' });
    // Hand-offs since the last stats call (the bursts' own): none in a run whose bursts asked for stats last.
    if (Number.isFinite(after.handOffP50)) progress(`aedes publish() until written to every subscriber: p50 ${round(after.handOffP50, 2)} ms`);
    progress(
      `hub RSS with ${connected.connected} edges connected: ${round(connected.rssMb, 1)} MB (${round(base.rssMb, 1)} MB before they connected; Mosquitto ${round(mosquittoRssMb, 1)} MB); after the bursts: ${mem(after)}`,
    );
    await edges.disconnect('aedes');
    await edges.disconnect('mosquitto');
    await hub.ask<'stopped'>({ type: 'stop' });
    edges.exit();
    const hubSample = aedes.sample;
    const mqSample = mq.sample;

    const p99 = percentile(hubSample, 99);
    const mq99 = percentile(mqSample, 99);
    progress(`aedes p99 / mosquitto p99 = ${round(p99 / mq99, 2)} (target <= 1.5; target p99 <= 250 ms)`);
    const n = EDGES === 1000 ? '1000' : String(EDGES);
    const metrics: Record<string, { value: number; unit: string }> = {
      [`fanout_${n}_p50_ms`]: { value: round(percentile(hubSample, 50), 2), unit: 'ms' },
      [`fanout_${n}_p99_ms`]: { value: round(p99, 2), unit: 'ms' },
      [`mosquitto_fanout_${n}_p50_ms`]: { value: round(percentile(mqSample, 50), 2), unit: 'ms' },
      [`mosquitto_fanout_${n}_p99_ms`]: { value: round(mq99, 2), unit: 'ms' },
      [`hub_rss_${n}_edges_mb`]: { value: round(connected.rssMb, 1), unit: 'MB' },
      [`hub_rss_${n}_edges_after_bursts_mb`]: { value: round(after.rssMb, 1), unit: 'MB' },
      [`mosquitto_rss_${n}_edges_mb`]: { value: round(mosquittoRssMb, 1), unit: 'MB' },
      [`fanout_${n}_burst_${BURST}_ms`]: { value: round(bursts.aedes, 1), unit: 'ms' },
      [`mosquitto_fanout_${n}_burst_${BURST}_ms`]: { value: round(bursts.mosquitto, 1), unit: 'ms' },
      [EDGES === 1000 && BIG_BURST === 10_000 ? 'fanout_burst_10k_ms' : `fanout_${n}_burst_${BIG_BURST}_ms`]: { value: round(big.aedes, 1), unit: 'ms' },
      [EDGES === 1000 && BIG_BURST === 10_000 ? 'mosquitto_fanout_burst_10k_ms' : `mosquitto_fanout_${n}_burst_${BIG_BURST}_ms`]: { value: round(big.mosquitto, 1), unit: 'ms' },
      // The same without the CRL run's own commit: from the committed entries to the last edge.
      [EDGES === 1000 && BIG_BURST === 10_000 ? 'fanout_burst_10k_after_commit_ms' : `fanout_${n}_burst_${BIG_BURST}_after_commit_ms`]: { value: round(bigAfterCommit.aedes, 1), unit: 'ms' },
      [EDGES === 1000 && BIG_BURST === 10_000 ? 'mosquitto_fanout_burst_10k_after_commit_ms' : `mosquitto_fanout_${n}_burst_${BIG_BURST}_after_commit_ms`]: {
        value: round(bigAfterCommit.mosquitto, 1),
        unit: 'ms',
      },
    };
    // Burst only: the figures of the parts not run are left out, not reported as NaN.
    return ONLY_BURST ? Object.fromEntries(Object.entries(metrics).filter(([name]) => name.includes(`burst_${BIG_BURST === 10_000 ? '10k' : BIG_BURST}`))) : metrics;
  } finally {
    for (const ch of children) if (ch.exitCode === null) ch.kill('SIGKILL');
    if (mosquitto && mosquitto.exitCode === null) mosquitto.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});
