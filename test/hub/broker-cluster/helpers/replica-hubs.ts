// Hub replicas on the broker cluster (issue #12): a three-node RabbitMQ cluster, `count` hub replicas
// as child processes (test/hub/replicas/helpers/replica-process.ts) on one fresh PostgreSQL database
// (test/helpers/pg.ts), sharing one data folder (the device CA), each publishing to the cluster
// (broker.external) and serving the nodes' HTTP auth backend; one of them holds the outbox publisher
// lock (hub/replicas/coordinator.ts). In front of the replicas, as in production, a load balancer
// (tcp-balancer.ts): the nodes' auth backend URL and the edges' device API are its addresses, so
// either survives the loss of a replica.
//
// This process writes the change log and enrolls edges on the shared database as a third party
// (another replica, the CLI), through the store's code (`side`): the burst goes on while the replica
// that publishes it is killed.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeviceEnrollment } from '../../../../hub/enrollment/device-enrollment.ts';
import { createLinks } from '../../../../hub/links/links.ts';
import { openDeviceCa, type DeviceCa } from '../../../../hub/pki/device-ca.ts';
import { REPLICA_CHANNEL } from '../../../../hub/replicas/coordinator.ts';
import { openPostgresStore } from '../../../../hub/store/postgres.ts';
import type { Store } from '../../../../hub/store/store.ts';
import { freshPgDatabase } from '../../../helpers/pg.ts';
import { startReplicaProcess, type ReplicaProcess } from '../../replicas/helpers/replica-process.ts';
import type { HubSide } from './failover-harness.ts';
import { freePort, planRabbitCluster, startRabbitCluster, type RabbitCluster, type RabbitPlan } from './rabbit-cluster.ts';
import { startTcpBalancer, type TcpBalancer } from './tcp-balancer.ts';

export interface ReplicaHubs {
  dir: string;
  dbUrl: string;
  deviceCa: DeviceCa;
  plan: RabbitPlan;
  cluster: RabbitCluster;
  replicas: ReplicaProcess[];
  /** This process's store on the shared database. */
  store: Store;
  side: HubSide;
  /** The load balancers in front of the replicas' auth backends and device APIs. */
  authLb: TcpBalancer;
  deviceLb: TcpBalancer;
  /** The replica that holds the outbox lock now (the one that logged it last and still runs). */
  publisher(): ReplicaProcess | undefined;
  /** Rows left in the outbox. */
  outboxRows(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts it all; `whileStarting(side)` runs meanwhile (writing to the database needs neither the nodes
 * nor the replicas: links made then go out once a replica publishes), and is awaited too.
 */
export async function startReplicaHubs(
  o: { count?: number; nodes?: number; lockRetryMs?: number; clusterTimeoutMs?: number; startTimeoutMs?: number; whileStarting?: (side: HubSide) => Promise<void> } = {},
): Promise<ReplicaHubs> {
  const count = o.count ?? 2;
  const dir = mkdtempSync(join(tmpdir(), 'mykey-replica-hubs-'));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { mode: 0o700 });
  const replicas: ReplicaProcess[] = [];
  let store: Store | undefined;
  let cluster: RabbitCluster | undefined;
  const lbs: TcpBalancer[] = [];
  const stopAll = async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await cluster?.stop();
    for (const lb of lbs) await lb.close();
    await store?.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const dbUrl = await freshPgDatabase('mykey_failover');
    // Opened (and migrated) here first; the replicas find the schema in place.
    store = await openPostgresStore(dbUrl, { poolSize: 4 });
    // The device CA, made here before any replica starts: the nodes need its certificates, and the
    // replicas load it from the shared folder instead of racing to create it.
    const deviceCa = await openDeviceCa(join(dataDir, 'device-ca'));
    const server = await deviceCa.serverCredentials();
    const plan = await planRabbitCluster(o.nodes ?? 3);
    // Ports below the ephemeral range, chosen now, listened on by the replicas seconds later.
    const ports = [];
    for (let i = 0; i < count; i++) ports.push({ http: await freePort(), devices: await freePort(), auth: await freePort() });
    const authLb = await startTcpBalancer(
      ports.map((p) => p.auth),
      { port: await freePort() },
    );
    lbs.push(authLb);
    const deviceLb = await startTcpBalancer(
      ports.map((p) => p.devices),
      { port: await freePort() },
    );
    lbs.push(deviceLb);
    const password = randomBytes(16).toString('hex');
    for (let i = 0; i < count; i++) {
      replicas.push(
        startReplicaProcess({
          name: `replica-${String.fromCharCode(97 + i)}`,
          dir,
          config: {
            dataDir,
            store: { url: dbUrl, poolSize: 4 },
            http: { port: ports[i]!.http },
            // Every replica publishes to the cluster as the one hub user (one password for all).
            broker: {
              port: 0,
              external: {
                urls: plan.nodes.map((n) => `mqtt://127.0.0.1:${n.mqtt}`),
                password,
                managementUrls: plan.nodes.map((n) => `http://127.0.0.1:${n.mgmt}`),
                managementUser: plan.admin.user,
                managementPassword: plan.admin.pass,
              },
            },
            brokerAuth: { port: ports[i]!.auth },
            devices: { httpsPort: ports[i]!.devices },
            replicas: { lockRetryMs: o.lockRetryMs ?? 1000 },
          },
        }),
      );
    }
    const own = store;
    const links = createLinks({ sql: own.sql, repo: own.links, mykeys: own.mykeys });
    const enrollment = createDeviceEnrollment({ deviceCa, devices: own.devices });
    const side: HubSide = {
      sql: own.sql,
      mykeys: own.mykeys,
      linkRepo: own.links,
      links,
      // As a replica tells the others (hub/replicas/index.ts): whichever holds the lock publishes now.
      written: async () => {
        await own.sql.run('SELECT pg_notify(?, ?)', [REPLICA_CHANNEL, JSON.stringify({ from: 'test-writer', event: { type: 'outboxWritten' } })]);
      },
      enroll: (csrDer, req) => enrollment.enroll(csrDer, req),
      deviceApiUrl: `https://127.0.0.1:${deviceLb.port}`,
    };
    // The nodes start (tens of seconds) while the replicas do; the replicas' publishers connect to
    // them once they are up (they retry every second).
    const startMs = o.startTimeoutMs ?? 240_000;
    const [c] = await Promise.all([
      startRabbitCluster({
        plan,
        caPem: deviceCa.certPem,
        certPem: server.certPem,
        keyPem: server.keyPem,
        authBaseUrl: `http://127.0.0.1:${authLb.port}`,
        timeoutMs: o.clusterTimeoutMs ?? startMs,
      }).then((x) => (cluster = x)),
      ...replicas.map((r) => r.listening(startMs)),
      o.whileStarting?.(side),
    ]);
    return {
      dir,
      dbUrl,
      deviceCa,
      plan,
      cluster: c,
      replicas,
      store: own,
      side,
      authLb,
      deviceLb,
      publisher: () => replicas.filter((r) => r.running && r.publishingAt !== undefined).sort((a, b) => b.publishingAt! - a.publishingAt!)[0],
      // COUNT(*) is a bigint, which pg hands over as a string.
      outboxRows: async () => Number((await own.sql.get<{ n: number | string }>('SELECT COUNT(*) AS n FROM mqtt_outbox'))?.n ?? 0),
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
