// Real MQTT brokers on loopback for the sync tests: aedes in this process, and a stock Mosquitto
// (Debian package) as a child process with a generated config. Both can be restarted on the same
// port, losing their sessions, as a hub restart does.
import { Aedes } from 'aedes';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../../../helpers/polling.ts';

export type BrokerKind = 'aedes' | 'mosquitto';

export interface TestBroker {
  kind: BrokerKind;
  url: string;
  port: number;
  /** Stops and starts again on the same port; sessions and queued messages are lost. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitForPort(port: number): Promise<void> {
  const listening = () =>
    new Promise<boolean>((res) => {
      const c = createConnection({ host: '127.0.0.1', port }, () => {
        c.destroy();
        res(true);
      });
      c.on('error', () => res(false));
    });
  await until(listening, { what: `a listener on port ${port}`, intervalMs: 50 });
}

export async function startBroker(kind: BrokerKind): Promise<TestBroker> {
  return kind === 'aedes' ? startAedes() : startMosquitto();
}

/** TLS files for a Mosquitto listener that demands client certificates from `cafile`. */
export interface MosquittoTls {
  cafile: string;
  certfile: string;
  keyfile: string;
}

async function startAedes(): Promise<TestBroker> {
  let port = 0;
  let aedes: Aedes | undefined;
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  const up = async () => {
    aedes = await Aedes.createBroker();
    server = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      aedes!.handle(s);
    });
    await new Promise<void>((r) => server!.listen(port, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  };
  const down = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server?.close(r));
    await new Promise<void>((r) => aedes?.close(() => r()));
  };
  await up();
  return {
    kind: 'aedes',
    get url() {
      return `mqtt://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    async restart(downMs = 200) {
      await down();
      await new Promise((r) => setTimeout(r, downMs));
      await up();
    },
    stop: down,
  };
}

export async function startMosquitto(tls?: MosquittoTls): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'mosq-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  // MQTT 3.1.1 clients, no persistence: a restart forgets every session (the hard case).
  const tlsLines = tls
    ? [`cafile ${tls.cafile}`, `certfile ${tls.certfile}`, `keyfile ${tls.keyfile}`, 'require_certificate true', 'use_identity_as_username true', 'allow_anonymous false']
    : ['allow_anonymous true'];
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, ...tlsLines, 'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning', ''].join('\n'));
  let proc: ChildProcess | undefined;
  let log = '';
  const up = async () => {
    proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr!.on('data', (d) => (log += d));
    await waitForPort(port).catch((e) => {
      throw new Error(`${e.message}: mosquitto said ${log}`);
    });
  };
  const down = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.on('exit', r));
    p.kill('SIGKILL');
    await gone;
  };
  await up();
  return {
    kind: 'mosquitto',
    url: `${tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    port,
    async restart(downMs = 200) {
      await down();
      await new Promise((r) => setTimeout(r, downMs));
      await up();
    },
    async stop() {
      await down();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
