// A real three-node RabbitMQ 3.10 cluster on loopback for tests: one own epmd on a free port (shared
// by the three nodes), distinct node names, ports (AMQP, MQTT, MQTTS, management, Erlang
// distribution) and mnesia/log directories per node, one Erlang cookie, the MQTT plugin with TLS
// client-certificate login (CN = user name), and the HTTP auth backend pointed at the hub. Nodes
// form the cluster at boot (classic_config peer discovery). Never a system service: everything lives
// in a temp directory and is killed by `stop()`.
import mqtt from 'mqtt';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const RABBIT_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';
export const rabbitAvailable = existsSync(RABBIT_SERVER) && existsSync('/usr/bin/epmd');

export interface RabbitNode {
  name: string;
  amqp: number;
  mqtt: number;
  mqtts: number;
  mgmt: number;
  dist: number;
  proc?: ChildProcess;
}

export interface RabbitCluster {
  dir: string;
  nodes: RabbitNode[];
  admin: { user: string; pass: string };
  /** Milliseconds from spawning the nodes to all three running and listening for MQTT. */
  startMs: number;
  mqttsUrl(i: number): string;
  mqttUrl(i: number): string;
  mgmtUrl(i: number): string;
  /** kill -9 of one node's Erlang VM. */
  kill(i: number): void;
  /** Resident memory of each node's VM in MiB (from /proc). */
  memoryMiB(): number[];
  stop(): Promise<void>;
}

const taken = new Set<number>();

function canListen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/**
 * A free loopback port below the ephemeral range (Linux: 32768 and up). Port 0 would give an
 * ephemeral one, which the nodes' own outgoing connections (Erlang distribution, the HTTP auth
 * backend) may take before the node listens on it: eaddrinuse, seen in practice.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port)) continue;
    if (await canListen(port)) {
      taken.add(port);
      return port;
    }
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => (c.destroy(), res(true)));
    c.once('error', () => res(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Names, ports and the admin user of a cluster, chosen before it starts (the hub's config needs them). */
export interface RabbitPlan {
  dir: string;
  tag: string;
  epmdPort: number;
  nodes: RabbitNode[];
  admin: { user: string; pass: string };
}

export async function planRabbitCluster(size = 3): Promise<RabbitPlan> {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-rabbit-'));
  const tag = randomBytes(3).toString('hex');
  const admin = { user: 'mykey-admin', pass: randomBytes(12).toString('hex') };
  const epmdPort = await freePort();
  const nodes: RabbitNode[] = [];
  for (let i = 0; i < size; i++) {
    nodes.push({ name: `mykey${i + 1}${tag}@localhost`, amqp: await freePort(), mqtt: await freePort(), mqtts: await freePort(), mgmt: await freePort(), dist: await freePort() });
  }
  return { dir, tag, epmdPort, nodes, admin };
}

export async function startRabbitCluster(o: {
  plan?: RabbitPlan;
  caPem: string;
  certPem: string;
  keyPem: string;
  authBaseUrl: string;
  timeoutMs?: number /** Queue type of persistent MQTT sessions (default quorum: they outlive a node). */;
  sessionQueueType?: 'quorum' | 'classic';
}): Promise<RabbitCluster> {
  const { dir, epmdPort, nodes, admin } = o.plan ?? (await planRabbitCluster());
  const size = nodes.length;
  const home = join(dir, 'home');
  mkdirSync(home);
  // One cookie for all nodes (and for nobody else).
  writeFileSync(join(home, '.erlang.cookie'), randomBytes(20).toString('hex').toUpperCase());
  chmodSync(join(home, '.erlang.cookie'), 0o400);
  writeFileSync(join(dir, 'ca.pem'), o.caPem);
  writeFileSync(join(dir, 'cert.pem'), o.certPem);
  writeFileSync(join(dir, 'key.pem'), o.keyPem);
  writeFileSync(join(dir, 'enabled_plugins'), '[rabbitmq_mqtt,rabbitmq_management,rabbitmq_auth_backend_http].\n');
  writeFileSync(join(dir, 'empty-env.conf'), '');
  const procs: ChildProcess[] = [];
  const epmd = spawn('/usr/bin/epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], { stdio: 'ignore' });
  procs.push(epmd);
  const auth = o.authBaseUrl.replace(/\/$/, '');
  const t0 = Date.now();
  const spawnNode = (i: number, n: RabbitNode) => {
    const nd = join(dir, `n${i + 1}`);
    mkdirSync(join(nd, 'log'), { recursive: true });
    const conf = [
      `listeners.tcp.default = 127.0.0.1:${n.amqp}`,
      `mqtt.listeners.tcp.default = 127.0.0.1:${n.mqtt}`,
      `mqtt.listeners.ssl.default = 127.0.0.1:${n.mqtts}`,
      `management.tcp.ip = 127.0.0.1`,
      `management.tcp.port = ${n.mgmt}`,
      `ssl_options.cacertfile = ${join(dir, 'ca.pem')}`,
      `ssl_options.certfile = ${join(dir, 'cert.pem')}`,
      `ssl_options.keyfile = ${join(dir, 'key.pem')}`,
      'ssl_options.verify = verify_peer',
      'ssl_options.fail_if_no_peer_cert = true',
      'mqtt.ssl_cert_login = true',
      'ssl_cert_login_from = common_name',
      'mqtt.allow_anonymous = false',
      'mqtt.vhost = /',
      'mqtt.exchange = amq.topic',
      // A persistent session's queue must outlive the node it was made on (kill -9 of one of three).
      `mqtt.durable_queue_type = ${o.sessionQueueType ?? 'quorum'}`,
      'auth_backends.1 = internal',
      'auth_backends.2 = http',
      'auth_http.http_method = post',
      `auth_http.user_path = ${auth}/user`,
      `auth_http.vhost_path = ${auth}/vhost`,
      `auth_http.resource_path = ${auth}/resource`,
      `auth_http.topic_path = ${auth}/topic`,
      `default_user = ${admin.user}`,
      `default_pass = ${admin.pass}`,
      'default_user_tags.administrator = true',
      'default_permissions.configure = .*',
      'default_permissions.read = .*',
      'default_permissions.write = .*',
      'loopback_users = none',
      'cluster_formation.peer_discovery_backend = classic_config',
      ...nodes.map((m, j) => `cluster_formation.classic_config.nodes.${j + 1} = ${m.name}`),
      // Nothing here reads the management statistics; collecting them costs CPU on a shared machine.
      'management_agent.disable_metrics_collector = true',
      'log.console = false',
      'log.file.level = warning',
      '',
    ].join('\n');
    writeFileSync(join(nd, 'rabbitmq.conf'), conf);
    const env = {
      ...process.env,
      HOME: home,
      ERL_EPMD_PORT: String(epmdPort),
      RABBITMQ_NODENAME: n.name,
      RABBITMQ_CONFIG_FILE: join(nd, 'rabbitmq.conf'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(nd, 'advanced.config'),
      RABBITMQ_CONF_ENV_FILE: join(dir, 'empty-env.conf'),
      RABBITMQ_MNESIA_BASE: join(nd, 'mnesia'),
      RABBITMQ_LOG_BASE: join(nd, 'log'),
      RABBITMQ_PID_FILE: join(nd, 'pid'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
      RABBITMQ_DIST_PORT: String(n.dist),
      // One scheduler per node, sleeping instead of spinning: three nodes share a small, busy machine.
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none',
    };
    const p = spawn(RABBIT_SERVER, [], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: false });
    // What a node says before its log file opens (a port taken, a bad config) goes to that file too.
    const early = join(nd, 'log', 'stdout.log');
    p.stdout?.on('data', (d: Buffer) => appendFileSync(early, d));
    p.stderr?.on('data', (d: Buffer) => appendFileSync(early, d));
    n.proc = p;
    procs.push(p);
  };
  const mgmtUrl = (i: number) => `http://127.0.0.1:${nodes[i]!.mgmt}`;
  const authz = 'Basic ' + Buffer.from(`${admin.user}:${admin.pass}`).toString('base64');
  const deadline = Date.now() + (o.timeoutMs ?? 240_000);
  const cluster: RabbitCluster = {
    dir,
    nodes,
    admin,
    startMs: 0,
    mqttsUrl: (i) => `mqtts://127.0.0.1:${nodes[i]!.mqtts}`,
    mqttUrl: (i) => `mqtt://127.0.0.1:${nodes[i]!.mqtt}`,
    mgmtUrl,
    kill(i) {
      nodes[i]!.proc?.kill('SIGKILL');
      // rabbitmq-server execs erl, so its pid is the VM; if a shell stayed in between, kill the VM too.
      const pid = readPid(join(dir, `n${i + 1}`, 'pid'));
      if (pid)
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
    },
    memoryMiB() {
      return nodes.map((_, i) => {
        const pid = readPid(join(dir, `n${i + 1}`, 'pid'));
        if (!pid) return 0;
        try {
          const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
          return m ? Math.round(Number(m[1]) / 1024) : 0;
        } catch {
          return 0;
        }
      });
    },
    async stop() {
      for (const [i] of nodes.entries()) cluster.kill(i);
      for (const p of procs) p.kill('SIGKILL');
      await sleep(200);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    // One node after the other, each once it takes MQTT connections: the MQTT plugin's client-id
    // tracker (a Raft cluster) takes one membership change at a time, and nodes joining it together
    // were seen to be refused (`cluster_change_not_permitted`) and never to take an MQTT connection
    // ("client ID registration timed out").
    for (const [i, n] of nodes.entries()) {
      spawnNode(i, n);
      if (i === size - 1) break;
      while (!(await mqttReady(n.mqtt, admin))) {
        if (Date.now() > deadline) throw new Error(`RabbitMQ node ${n.name} did not start; logs in ${dir}`);
        if (n.proc?.exitCode !== null) throw new Error(`RabbitMQ node ${n.name} exited (${n.proc?.exitCode}); logs in ${dir}`);
        await sleep(500);
      }
    }
    for (;;) {
      if (Date.now() > deadline) throw new Error(`the RabbitMQ cluster did not start; logs in ${dir}`);
      const exited = nodes.find((n) => n.proc?.exitCode !== null);
      if (exited) throw new Error(`RabbitMQ node ${exited.name} exited (${exited.proc?.exitCode}); logs in ${dir}`);
      await sleep(500);
      try {
        const res = await fetch(`${mgmtUrl(0)}/api/nodes`, { headers: { authorization: authz } });
        if (!res.ok) continue;
        const list = (await res.json()) as Array<{ name: string; running: boolean }>;
        if (list.filter((n) => n.running).length < size) continue;
        const open = await Promise.all(nodes.map((n) => portOpen(n.mqtts)));
        if (!open.every(Boolean)) continue;
        // The MQTT plugin tracks client ids in a Raft cluster of its own, which forms after the nodes
        // run: until then a CONNECT gets 3 (server unavailable). The broker-internal admin signs in
        // on every node (without the hub) to see it ready.
        const ready = await Promise.all(nodes.map((n) => mqttReady(n.mqtt, admin)));
        if (ready.every(Boolean)) break;
      } catch {
        /* not up yet */
      }
    }
  } catch (e) {
    // The node logs go with the temp directory: their ends go into the error.
    const tails = nodes.map((n, i) => `--- ${n.name}\n${logTail(join(dir, `n${i + 1}`, 'log'))}`).join('\n');
    await cluster.stop().catch(() => {});
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n${tails}`);
  }
  cluster.startMs = Date.now() - t0;
  return cluster;
}

async function mqttReady(port: number, admin: { user: string; pass: string }): Promise<boolean> {
  try {
    const c = await mqtt.connectAsync({
      host: '127.0.0.1',
      port,
      protocolVersion: 4,
      clientId: `probe-${randomBytes(4).toString('hex')}`,
      username: admin.user,
      password: admin.pass,
      reconnectPeriod: 0,
      connectTimeout: 3000,
    });
    await c.endAsync();
    return true;
  } catch {
    return false;
  }
}

function logTail(logDir: string): string {
  try {
    return readdirSync(logDir)
      .map((f) => `${f}: ${readFileSync(join(logDir, f), 'utf8').split('\n').slice(-15).join('\n')}`)
      .join('\n');
  } catch {
    return '(no log)';
  }
}

function readPid(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
