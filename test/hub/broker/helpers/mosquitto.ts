// Starts a Mosquitto (Debian package) on an ephemeral loopback port with a generated config: TLS with
// the device CA, require_certificate, the CN as the username, and the ACL of hub/broker/acl.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { mosquittoAcl } from '../../../../hub/broker/acl.ts';
import type { EdgeIdentity } from '../../../../hub/broker/identity.ts';
import { mosquittoConfig } from '../../../../hub/broker/mosquitto-config.ts';
import { until } from '../../../helpers/polling.ts';

export interface RunningMosquitto {
  port: number;
  process: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound and released; Mosquitto cannot report a port 0 bind). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startMosquitto(o: { dir: string; caPem: string; serverCertPem: string; serverKeyPem: string; edges: EdgeIdentity[]; hubUser: string; extra?: string[] }): Promise<RunningMosquitto> {
  const port = await freePort();
  const file = (name: string, text: string, mode = 0o644) => {
    const p = join(o.dir, name);
    writeFileSync(p, text, { mode });
    return p;
  };
  const conf = file(
    'mosquitto.conf',
    mosquittoConfig({
      host: '127.0.0.1',
      port,
      cafile: file('mq-ca.pem', o.caPem),
      certfile: file('mq-server.pem', o.serverCertPem),
      keyfile: file('mq-server-key.pem', o.serverKeyPem, 0o644),
      aclFile: file('mq-acl', mosquittoAcl(o.edges, o.hubUser)),
      // Started as root (containers), Mosquitto would switch to the `mosquitto` user; stay as we are.
      extra: [...(process.getuid?.() === 0 ? ['user root'] : []), ...(o.extra ?? [])],
    }),
  );
  const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const up = await until(async () => child.exitCode !== null || (await canConnect(port)), { what: 'mosquitto to listen', intervalMs: 50 }).then(
    () => child.exitCode === null,
    () => false,
  );
  if (!up) {
    child.kill('SIGKILL');
    throw new Error(`mosquitto did not start: ${err}`);
  }
  return {
    port,
    process: child,
    stderr: () => err,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 2000).unref();
      }),
  };
}
