// The hub: wires config, store, PKI, features, HTTP and schedulers. Nothing else lives here.
//
//   tsx hub/main.ts [--config hub.json]
import { createServer as createHttpsServer } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { createRandomPool } from '../shared/random-pool.ts';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MyKeyError } from '../shared/errors.ts';
import { component, createLifecycle } from '../shared/lifecycle.ts';
import { createLogger, type Logger } from '../shared/log.ts';
import { loadHubConfig, type HubConfig } from './config.ts';
import { createHubApps, type HubAddresses } from './http/hub-apps.ts';
import { httpListener, urlHost } from './http/listener.ts';
import { createChallengeStore } from './mykey/challenges.ts';
import { createMyKeyService } from './mykey/service.ts';
import { createOcspQuery } from './pki/ocsp-client.ts';
import { loadTrustAnchors, type TrustAnchor } from './pki/trust-anchors.ts';
import { createRevocationChecker } from './revocation/checker.ts';
import { createCrlManager } from './revocation/crl-manager.ts';
import { openStore } from './store/store.ts';
import { createWriteBatcher } from './store/write-batcher.ts';
import { createLinks } from './links/links.ts';
import { createOutboxPublisher } from './links/outbox-publisher.ts';
import { createWebhookSender } from './notify/webhooks.ts';
import { createBroker, type Broker } from './broker/broker.ts';
import { createFanoutBus, wireFanout } from './fanout.ts';
import { openDeviceCa, type DeviceCa } from './pki/device-ca.ts';
import { createDeviceEnrollment, type DeviceEnrollment } from './enrollment/device-enrollment.ts';
import { createEnrollmentTokens } from './enrollment/tokens.ts';
import type { DeviceResolver } from './http/device-routes.ts';
import { createHubMetrics } from './metrics/hub-metrics.ts';
import { createReleases, parseReleaseKeys } from './releases/releases.ts';
import { startBrokerCluster, type BrokerCluster } from './broker-cluster/index.ts';
import { createLinkage } from './linkage/index.ts';
import { createReplicas } from './replicas/index.ts';

export const HUB_VERSION = '0.1.0';

export interface HubOptions {
  log?: Logger;
  /** Trust anchors given directly (development mode, tests) in addition to config files. */
  anchors?: TrustAnchor[];
  /** How the device API finds the calling device (default: the TLS client certificate). Tests only. */
  resolveDevice?: DeviceResolver;
  now?: () => Date;
  /** Also export the process metrics (CPU, memory, event loop) at /metrics; runHub sets it. */
  processMetrics?: boolean;
}

/** Assembles a hub from a config (opening and migrating its store). `start()` listens and starts schedulers; `stop()` undoes both. */
export async function createHub(config: HubConfig, opts: HubOptions = {}) {
  // The change-log batch form the outbox and the replicas' relay write (shared/sync.ts: v3 unless edges older than it remain).
  const logBatchVersion = config.broker.logBatchVersion === 2 ? 2 : 3;
  const log = opts.log ?? createLogger('hub');
  const now = opts.now ?? (() => new Date());
  const anchors = [...(opts.anchors ?? []), ...loadTrustAnchors(config.jpki.trustAnchors)];
  if (anchors.length === 0) log.warn('no JPKI trust anchors configured: every registration will be refused (cert_unknown_issuer)');

  const store = await openStore(config.store, config.dataDir);
  let broker: Broker | undefined;
  let cluster: BrokerCluster | undefined;
  // On PostgreSQL the hub may be one of several replicas (hub/replicas): shared challenges and rate
  // limits, one outbox publisher, one CRL fetch per period. On SQLite all of it stays in this process.
  const replicas = config.store.url
    ? createReplicas({
        url: config.store.url,
        sql: store.sql,
        log: log.child('replicas'),
        retryMs: config.replicas.lockRetryMs,
        batchVersion: logBatchVersion,
        parts: () => ({ outbox, webhooks, broker: () => broker, clustered: () => cluster !== undefined, devices, changesAfter: links.changesAfter }),
      })
    : undefined;
  const mykeys = store.mykeys;
  const metrics = createHubMetrics({
    sql: store.sql,
    devices: () => devices.list(),
    headSeq: (serviceId) => links.headSeq(serviceId),
    crls: () => crlManager.crls,
    crlSources: () => config.jpki.crlSources,
    now: () => now().getTime(),
    processMetrics: opts.processMetrics,
  });
  // Revocation fan-out is one chain of events (hub/fanout.ts): parts emit, the chain is wired below.
  const fanout = createFanoutBus(log.child('fanout'));
  const revocations = metrics.instrumentRevocations(store.revocations);
  const crlManager = createCrlManager({
    dataDir: config.dataDir,
    anchors: () => anchors,
    mykeys,
    revocations,
    log: log.child('revocation'),
    now,
    maxBytes: config.jpki.crlMaxBytes,
    crlGraceMs: config.jpki.crlGraceHours * 3600_000,
    events: fanout,
    claimPeriod: replicas?.claimPeriod,
  });
  await crlManager.loadSaved();
  const revocation = createRevocationChecker({
    crls: crlManager.crls,
    ocsp: config.jpki.ocspUrl
      ? createOcspQuery({
          url: config.jpki.ocspUrl,
          timeoutMs: config.jpki.ocspTimeoutMs,
          maxAgeMs: config.jpki.ocspMaxAgeSeconds * 1000,
          cacheMs: config.jpki.ocspCacheSeconds * 1000,
          log: log.child('ocsp'),
        })
      : undefined,
    crlGraceMs: config.jpki.crlGraceHours * 3600_000,
  });
  // Challenges and MyKey ID candidates draw from one pooled CSPRNG source (shared/random-pool.ts).
  const random = createRandomPool();
  const challengeOpts = { ttlMs: config.jpki.challengeTtlSeconds * 1000, maxPerClient: config.jpki.challengesPerClient, random, now: () => now().getTime() };
  const challenges = replicas ? replicas.challenges(challengeOpts) : createChallengeStore(challengeOpts);
  const linkRepo = store.links;
  const devices = store.devices;
  const outbox = createOutboxPublisher({
    repo: linkRepo,
    log: log.child('outbox'),
    events: fanout,
    mayPublish: replicas?.mayPublish,
    batchVersion: logBatchVersion,
    ...(config.broker.external.urls.length > 0 ? { window: config.broker.external.outboxWindow, windowBytes: config.broker.external.outboxWindowKb * 1024 } : {}),
  });
  const webhooks = createWebhookSender({ repo: linkRepo, log: log.child('webhooks'), now: () => now().getTime(), ...config.webhooks, events: fanout, mayDeliver: replicas?.mayPublish });
  const links = createLinks({ sql: store.sql, repo: linkRepo, mykeys, now: () => now().getTime(), events: fanout, snapshotCacheBytes: config.devices.snapshotCacheMb * 1024 * 1024 });
  // Lifecycle changes in a batch may have appended change-log entries (the batcher is the store's, so
  // it keeps a plain hook; the event is the chain's).
  // Only a batch that appended some (a registration appends none) kicks the publishers: each kick
  // is a round of outbox queries, and with replicas an announcement to the others.
  const batcher = createWriteBatcher(store.sql, {
    beforeBatch: () => links.appendedCount(),
    afterCommit: (before) => {
      if (links.appendedCount() !== before) fanout.emit('outboxWritten', { source: 'lifecycle' });
    },
  });
  const unwireFanout = wireFanout(fanout, {
    log: log.child('fanout'),
    outbox,
    webhooks,
    replicas,
    disconnectEdge: (edgeId) => broker?.disconnectEdge(edgeId),
    cutOffEdge: (edgeId) => cluster?.cutOff(edgeId),
  });
  const service = metrics.instrumentService(
    createMyKeyService({
      repo: mykeys,
      write: batcher.write,
      challenges,
      anchors: () => anchors,
      revocation,
      now,
      random,
      requireRevocationStatus: config.jpki.requireRevocationStatus,
      prepareKeys: (mykeyId, next) => links.prepareLifecycleKeys(mykeyId, next),
    }),
  );
  // Certificate linkage files from the JPKI side (#14): carry-over of renewed certificates without a visit.
  const linkage = createLinkage({
    config,
    sql: store.sql,
    mykeys,
    anchors: () => anchors,
    crls: crlManager.crls,
    prepareKeys: (id, next) => links.prepareLifecycleKeys(id, next),
    events: fanout,
    now,
    log: log.child('linkage'),
  });
  const consoleRepo = store.console;
  const enrollmentTokens = createEnrollmentTokens({ repo: consoleRepo, devices, now: () => now().getTime(), ttlMs: config.enrollment.tokenTtlHours * 3600_000 });
  let enrollment: DeviceEnrollment | undefined;
  const releaseRepo = store.releases;
  const releaseKeys = parseReleaseKeys(config.releases.publicKeys);
  const releases = createReleases({ repo: releaseRepo, dir: join(config.dataDir, 'releases'), keys: () => releaseKeys, now: () => now().getTime(), log: log.child('releases') });
  // The HTTP surface: one app per listener, the console on the public one (hub/http/hub-apps.ts).
  const addresses: HubAddresses = {};
  const { app, deviceApp } = createHubApps({
    config,
    version: HUB_VERSION,
    log,
    store,
    metrics,
    revocations,
    service,
    challenges,
    links,
    anchors: () => anchors,
    crlCount: () => crlManager.crls.size,
    sharedRates: replicas?.rateBuckets,
    releases,
    linkage,
    enrollmentTokens,
    enrollment: () => enrollment,
    deviceCa: () => deviceCa,
    addresses,
    now: () => now().getTime(),
    resolveDevice: opts.resolveDevice,
  });

  // What start() brings up, in this order; stop() takes it down in reverse (shared/lifecycle.ts). The
  // store and the fan-out chain above live from construction to stop(): tests and hub/cli.ts use the
  // repositories of a hub they never start.
  let deviceCa: DeviceCa | undefined;
  let serverTls: { key: string; cert: string } | undefined;
  const openCa = () => {
    if (!deviceCa || !serverTls) throw new Error('the device CA is not open');
    return { ca: deviceCa, tls: serverTls };
  };
  const publicListener = httpListener(
    'http-public',
    () => ({ fetch: app.fetch, hostname: config.http.host, port: config.http.port }),
    (port) => (addresses.http = `http://${urlHost(config.http.host)}:${port}`),
  );
  const lifecycle = createLifecycle(
    [
      component('device-ca', async () => {
        deviceCa = await openDeviceCa(join(config.dataDir, 'device-ca'), { now });
        const creds = await deviceCa.serverCredentials(config.broker.serverNames);
        // After a CA rotation the chain carries the cross certificates: an edge that still trusts only
        // the retired CA verifies the broker and the device API through them (hub/pki/device-ca.ts).
        serverTls = { key: creds.keyPem, cert: `${creds.certPem.trim()}\n${deviceCa.chainPem()}` };
      }),
      component(
        'broker',
        async () => {
          const { ca, tls } = openCa();
          const plain = config.broker.plainPort ? { host: '127.0.0.1', port: config.broker.plainPort } : undefined;
          const b = createBroker({
            deviceCa: ca,
            devices,
            log: log.child('broker'),
            tls: { host: config.broker.host, port: config.broker.port, serverCert: tls.cert, serverKey: tls.key },
            plain,
            headSeq: (serviceId) => links.headSeq(serviceId),
          });
          const ports = await b.start();
          broker = b;
          addresses.mqtts = `mqtts://${urlHost(config.broker.host)}:${ports.tlsPort}`;
          if (ports.plainPort) addresses.mqtt = `mqtt://127.0.0.1:${ports.plainPort}`;
        },
        async () => {
          await broker?.stop();
          broker = undefined;
        },
      ),
      // With a clustered broker (broker.external), the hub is its auth backend and publishes there;
      // the embedded broker keeps serving edges that still point at it.
      ...(config.broker.external.urls.length === 0
        ? []
        : [
            component(
              'broker-cluster',
              async () => {
                cluster = await startBrokerCluster({
                  config,
                  devices,
                  deviceCaPem: openCa().ca.certPem,
                  log: log.child('broker-cluster'),
                  headSeq: (serviceId) => links.headSeq(serviceId),
                  now: () => now().getTime(),
                });
                addresses.brokerAuth = cluster.authUrl;
              },
              async () => {
                await cluster?.stop();
                cluster = undefined;
              },
            ),
          ]),
      component(
        'device-enrollment',
        async () => {
          enrollment = createDeviceEnrollment({ deviceCa: openCa().ca, devices, now, events: fanout });
        },
        async () => enrollment?.stop(),
      ),
      // Several hubs on one PostgreSQL (hub/replicas): one outbox publisher, relays, notifications.
      ...(replicas
        ? [
            component(
              'replicas',
              () => replicas.start(),
              () => replicas.stop(),
            ),
          ]
        : []),
      component(
        'outbox',
        async () => {
          const [c, b] = [cluster, broker!];
          const embedded = (topic: string, payload: string) => b.publish(topic, payload, { qos: 1 });
          outbox.attach(c ? (topic, payload) => c.publish(topic, payload) : (replicas?.embeddedPublish(embedded) ?? embedded));
        },
        async () => outbox.stop(),
      ),
      component(
        'crl-schedule',
        async () => crlManager.start(config.jpki.crlSources, config.jpki.crlIntervalSeconds * 1000),
        async () => crlManager.stop(),
      ),
      component(
        'webhooks',
        async () => webhooks.start(),
        () => webhooks.stop(),
      ),
      // Services still on the legacy keyed identities move to the memory-hard one (shared/sync.ts), in
      // the background.
      component('rekey', async () => {
        void links.rekeyAll().then(
          (moved) => moved.length > 0 && log.info('services moved to the memory-hard key derivation', { services: moved.length }),
          (e) => log.warn('re-keying stopped; it resumes at the next start', { error: e }),
        );
      }),
      // The client certificate is requested but not required at the handshake: enrollment redemption
      // comes from a tool that has no certificate yet. Every device route checks the verified
      // certificate itself (device-routes.ts, device_cert_required). The chain sent includes the
      // device CA so the enrollment tool can pin it by fingerprint before it sends the token.
      httpListener(
        'http-device',
        () => {
          const { ca, tls } = openCa();
          const serverOptions = { ...tls, ca: ca.trustedPems(), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' as const };
          return { fetch: deviceApp.fetch, hostname: config.devices.httpsHost, port: config.devices.httpsPort, createServer: createHttpsServer, serverOptions };
        },
        (port) => (addresses.deviceApi = `https://${urlHost(config.devices.httpsHost)}:${port}`),
      ),
      publicListener,
    ],
    { log: log.child('lifecycle') },
  );

  return {
    config,
    /** The public app (plain HTTP listener): holders, services, operator API, console. */
    app,
    /** The device app (device mutual-TLS listener): device API and enrollment redemption. */
    deviceApp,
    /** The repositories (SQLite or PostgreSQL). */
    store,
    /** The SQLite connection (SQLite stores only; tests and tools). */
    get db() {
      return store.db;
    },
    mykeys,
    revocations,
    crlManager,
    service,
    anchors,
    links,
    linkRepo,
    outbox,
    webhooks,
    /** Events of the revocation fan-out (hub/fanout.ts). */
    fanout,
    devices,
    /** The hub's own Prometheus registry (hub/metrics). */
    metrics,
    releases,
    releaseRepo,
    linkage,
    get broker() {
      return broker;
    },
    get deviceCa() {
      return deviceCa;
    },
    /**
     * SHA-256 fingerprint of the device CA certificate as node's `X509Certificate.fingerprint256`
     * gives it (upper-case hex pairs with colons): what a technician passes to the enrollment tool
     * as --ca-fingerprint. Undefined before start.
     */
    get deviceCaFingerprint(): string | undefined {
      return deviceCa ? new X509Certificate(deviceCa.certPem).fingerprint256 : undefined;
    },
    get enrollment() {
      return enrollment;
    },
    /** Bound addresses once started. */
    addresses,
    consoleRepo,
    enrollmentTokens,
    /** Hub replicas (PostgreSQL store only). */
    replicas,
    /**
     * Starts the components in order: the device CA, the broker (MQTT over TLS) and the cluster link,
     * device enrollment, the outbox, the CRL schedule, the webhooks, the device API (HTTPS) and the
     * HTTP API; resolves with the HTTP address once everything listens. A start that fails stops what
     * had started and rejects.
     */
    async start(): Promise<{ port: number; url: string }> {
      await lifecycle.start();
      // Not awaited: the hub answers meanwhile; a snapshot asked before they are up waits for them.
      void links.warmSnapshots().catch((e: unknown) => log.warn('snapshot reader threads not started', { error: e }));
      const url = addresses.http!;
      log.info('hub listening', { url, deviceApi: addresses.deviceApi, mqtts: addresses.mqtts, anchors: anchors.length, db: store.location, deviceCaFingerprint: this.deviceCaFingerprint });
      return { port: publicListener.port!, url };
    },
    /** Stops the components in reverse, then unwires the fan-out chain and closes the store. */
    async stop(): Promise<void> {
      try {
        await lifecycle.stop();
      } finally {
        unwireFanout();
        links.close();
        await store.close();
      }
    },
  };
}

export type Hub = Awaited<ReturnType<typeof createHub>>;

function parseArgs(argv: string[]): { config?: string } {
  const out: { config?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--config') out.config = argv[++i];
    else if (argv[i] === '--help' || argv[i] === '-h') {
      console.log('usage: tsx hub/main.ts [--config hub.json]\nEnvironment overrides: MYKEY_HUB_<SECTION>_<KEY>, e.g. MYKEY_HUB_HTTP_PORT=8080');
      process.exit(0);
    } else throw new MyKeyError('config_invalid', `unknown argument ${argv[i]}`);
  }
  return out;
}

/** Runs a hub until SIGINT/SIGTERM. */
export async function runHub(config: HubConfig, opts: HubOptions = {}) {
  const log = opts.log ?? createLogger('hub');
  const hub = await createHub(config, { processMetrics: true, ...opts, log });
  await hub.start();
  const shutdown = async (sig: string) => {
    log.info('stopping', { signal: sig });
    await hub.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  return hub;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const args = parseArgs(process.argv.slice(2));
    await runHub(loadHubConfig({ file: args.config }));
  } catch (e) {
    console.error(e instanceof MyKeyError ? e.message : e);
    process.exit(1);
  }
}
