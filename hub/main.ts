// The hub: wires config, store, PKI, features, HTTP and schedulers. Nothing else lives here.
//
//   tsx hub/main.ts [--config hub.json]
import { serve, type ServerType } from '@hono/node-server';
import { createServer as createHttpsServer } from 'node:https';
import { randomBytes, X509Certificate } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MyKeyError } from '../shared/errors.ts';
import { createLogger, type Logger } from '../shared/log.ts';
import { loadHubConfig, type HubConfig } from './config.ts';
import { createDeviceApp, createPublicApp } from './http/app.ts';
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
import { createDeviceEnrollment, type DeviceEnrollment } from './pki/device-enrollment.ts';
import { createEnrollmentTokens } from './console/enrollment-tokens.ts';
import { mountConsole } from './console/mount.tsx';
import { tlsDeviceResolver, type DeviceResolver } from './http/device-routes.ts';
import { createHubMetrics } from './metrics/hub-metrics.ts';
import { createReleases } from './releases/releases.ts';
import { parseReleasePublicKey } from '../shared/release.ts';
import { startBrokerCluster, type BrokerCluster } from './broker-cluster/index.ts';
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
        parts: () => ({ outbox, webhooks, broker: () => broker, clustered: () => cluster !== undefined, devices, changesAfter: links.changesAfter }),
      })
    : undefined;
  const sharedRates = replicas ? { shared: replicas.rateBuckets } : {};
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
    afterSuspend: () => fanout.emit('suspended', { source: 'crl' }),
    claimPeriod: replicas?.claimPeriod,
  });
  await crlManager.loadSaved();
  const revocation = createRevocationChecker({
    crls: crlManager.crls,
    ocsp: config.jpki.ocspUrl ? createOcspQuery({ url: config.jpki.ocspUrl, timeoutMs: config.jpki.ocspTimeoutMs, maxAgeMs: config.jpki.ocspMaxAgeSeconds * 1000, cacheMs: config.jpki.ocspCacheSeconds * 1000, log: log.child('ocsp') }) : undefined,
    crlGraceMs: config.jpki.crlGraceHours * 3600_000,
  });
  const challengeOpts = { ttlMs: config.jpki.challengeTtlSeconds * 1000, maxPerClient: config.jpki.challengesPerClient, random: randomBytes, now: () => now().getTime() };
  const challenges = replicas ? replicas.challenges(challengeOpts) : createChallengeStore(challengeOpts);
  const rateLimits = { challenge: { ...config.rateLimits.challenge, ...sharedRates }, register: { ...config.rateLimits.register, ...sharedRates } };
  const linkRepo = store.links;
  const devices = store.devices;
  const outbox = createOutboxPublisher({ repo: linkRepo, log: log.child('outbox'), onPublished: (e) => fanout.emit('published', e), mayPublish: replicas?.mayPublish });
  const webhooks = createWebhookSender({ repo: linkRepo, log: log.child('webhooks'), now: () => now().getTime(), ...config.webhooks, onNotified: (e) => fanout.emit('notified', e), mayDeliver: replicas?.mayPublish });
  const links = createLinks({
    sql: store.sql,
    repo: linkRepo,
    mykeys,
    now: () => now().getTime(),
    onOutbox: () => fanout.emit('outboxWritten', { source: 'links' }),
  });
  // Lifecycle changes in a batch may have appended change-log entries.
  const batcher = createWriteBatcher(store.sql, { afterCommit: () => fanout.emit('outboxWritten', { source: 'lifecycle' }) });
  // Entries written here wake the outbox publisher, on this replica or another.
  const outboxKick = {
    kick: () => {
      outbox.kick();
      replicas?.outboxWritten();
    },
  };
  const unwireFanout = wireFanout(fanout, { log: log.child('fanout'), outbox: outboxKick, webhooks, disconnectEdge: (edgeId) => broker?.disconnectEdge(edgeId) });
  const service = metrics.instrumentService(createMyKeyService({
    repo: mykeys,
    write: batcher.write,
    challenges,
    anchors: () => anchors,
    revocation,
    now,
    random: randomBytes,
    requireRevocationStatus: config.jpki.requireRevocationStatus,
    prepareKeys: (mykeyId, next) => links.prepareLifecycleKeys(mykeyId, next),
  }));
  const consoleRepo = store.console;
  const enrollmentTokens = createEnrollmentTokens({ repo: consoleRepo, devices, now: () => now().getTime(), ttlMs: config.enrollment.tokenTtlHours * 3600_000 });
  let enrollment: DeviceEnrollment | undefined;
  const releaseRepo = store.releases;
  const releaseKeys = config.releases.publicKeys.map((k, i) => {
    try {
      return parseReleasePublicKey(k);
    } catch (e) {
      throw new MyKeyError('config_invalid', `invalid configuration:\n  - /releases/publicKeys/${i}: not an Ed25519 public key`, { cause: e });
    }
  });
  const releases = createReleases({ repo: releaseRepo, dir: join(config.dataDir, 'releases'), keys: () => releaseKeys, now: () => now().getTime(), log: log.child('releases') });
  const addresses: { http?: string; deviceApi?: string; mqtts?: string; mqtt?: string; brokerAuth?: string } = {};
  const httpLog = log.child('http');
  const common = { version: HUB_VERSION, maxBodyBytes: config.http.maxBodyBytes, log: (msg: string, err?: unknown) => httpLog.error(msg, { error: err }) };
  const accessLog = { log: httpLog.child('access'), observe: metrics.observeHttp };
  // One app per listener: the public listener never answers device routes or enrollment, and the
  // device listener never answers the holders' routes, the services' or operator API, or the console.
  const app = createPublicApp({
    ...common,
    accessLog: { app: 'public', ...accessLog },
    service,
    challenges,
    links,
    linkRepo,
    linksOf: links.linksOf,
    audit: (e) => void consoleRepo.audit(e).catch((err) => log.error('an audit entry could not be written', { error: err })),
    adminToken: () => config.admin.token,
    webhookUrlPolicy: config.webhooks,
    rateLimits,
    health: async () => ({ mykeyIds: await mykeys.counts(), crls: crlManager.crls.size, anchors: anchors.length }),
    metrics: { token: () => config.metrics.token, scrape: metrics.scrape },
    releases: { releases, repo: releaseRepo, adminToken: () => config.admin.token },
  });
  const deviceApp = createDeviceApp({
    ...common,
    accessLog: { app: 'device', ...accessLog },
    links,
    mykeys,
    service,
    challenges,
    resolveDevice: opts.resolveDevice ?? tlsDeviceResolver(devices, () => enrollment),
    needsRenewal: (der) => !!deviceCa && !deviceCa.issuedByCurrent(der),
    rateLimits,
    releases: { releases },
    enrollments: {
      consoleRepo,
      linkRepo,
      tokens: enrollmentTokens,
      enrollment: () => enrollment,
      deviceCertValidityDays: config.devices.certValidityDays,
      brokerUrl: () => config.enrollment.brokerUrl || addresses.mqtts,
      hubUrl: () => config.enrollment.hubUrl || addresses.deviceApi,
      releaseKey: config.releases.publicKeys[0],
      rateLimit: { ...config.enrollment.rateLimit, ...sharedRates },
      now: () => now().getTime(),
    },
  });

  mountConsole(app, {
    webhookUrlPolicy: config.webhooks,
    repo: consoleRepo,
    links,
    linkRepo,
    mykeys,
    revocations,
    devices,
    releases: { releases, repo: releaseRepo },
    enrollment: () => enrollment,
    tokens: enrollmentTokens,
    deviceApiUrl: () => config.enrollment.hubUrl || addresses.deviceApi,
    log: log.child('console'),
    now: () => now().getTime(),
    secureCookies: config.console.secureCookies,
    origins: config.console.origins,
    trustForwardedFor: config.console.trustForwardedFor,
    session: { idleMs: config.console.sessionIdleMinutes * 60_000, maxMs: config.console.sessionMaxHours * 3600_000 },
  });

  let server: ServerType | undefined;
  let deviceServer: ServerType | undefined;
  let deviceCa: DeviceCa | undefined;
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
     * Opens the device CA, starts the broker (MQTT over TLS) and the device API (HTTPS), then the
     * HTTP API; resolves with the HTTP address once everything listens.
     */
    async start(): Promise<{ port: number; url: string }> {
      const hostOf = (h: string) => (h.includes(':') ? `[${h}]` : h);
      deviceCa = await openDeviceCa(join(config.dataDir, 'device-ca'), { now });
      const creds = await deviceCa.serverCredentials(config.broker.serverNames);
      const b = createBroker({
        deviceCa,
        devices,
        log: log.child('broker'),
        // After a CA rotation the chain carries the cross certificates: an edge that still trusts only
        // the retired CA verifies the broker through them (hub/pki/device-ca.ts).
        tls: { host: config.broker.host, port: config.broker.port, serverCert: `${creds.certPem.trim()}\n${deviceCa.chainPem()}`, serverKey: creds.keyPem },
        plain: config.broker.plainPort ? { host: '127.0.0.1', port: config.broker.plainPort } : undefined,
        headSeq: (serviceId) => links.headSeq(serviceId),
      });
      const ports = await b.start();
      broker = b;
      // With a clustered broker (broker.external), the hub is its auth backend and publishes there;
      // the embedded broker keeps serving edges that still point at it.
      if (config.broker.external.urls.length > 0) {
        cluster = await startBrokerCluster({ config, devices, deviceCaPem: deviceCa.certPem, log: log.child('broker-cluster'), headSeq: (serviceId) => links.headSeq(serviceId), now: () => now().getTime() });
        this.addresses.brokerAuth = cluster.authUrl;
      }
      const c = cluster;
      enrollment = createDeviceEnrollment({
        deviceCa,
        devices,
        now,
        onRevoked: (edgeId) => {
          fanout.emit('deviceRevoked', { edgeId });
          c?.cutOff(edgeId);
          // Its session may be on another replica's embedded broker.
          replicas?.deviceRevoked(edgeId);
        },
      });
      this.addresses.mqtts = `mqtts://${hostOf(config.broker.host)}:${ports.tlsPort}`;
      if (ports.plainPort) this.addresses.mqtt = `mqtt://127.0.0.1:${ports.plainPort}`;
      await replicas?.start();
      const embedded = (topic: string, payload: string) => b.publish(topic, payload, { qos: 1 });
      outbox.attach(c ? (topic, payload) => c.publish(topic, payload) : (replicas?.embeddedPublish(embedded) ?? embedded));
      crlManager.start(config.jpki.crlSources, config.jpki.crlIntervalSeconds * 1000);
      webhooks.start();
      // Services still on the legacy keyed identities move to the memory-hard one (shared/sync.ts).
      void links.rekeyAll().then(
        (moved) => moved.length > 0 && log.info('services moved to the memory-hard key derivation', { services: moved.length }),
        (e) => log.warn('re-keying stopped; it resumes at the next start', { error: e }),
      );
      const listen = (opts: Parameters<typeof serve>[0]) =>
        new Promise<{ s: ServerType; port: number }>((res, rej) => {
          const s = serve(opts, (info) => res({ s, port: info.port }));
          s.once('error', rej);
        });
      // The client certificate is requested but not required at the handshake: enrollment redemption
      // comes from a tool that has no certificate yet. Every device route checks the verified
      // certificate itself (device-routes.ts, device_cert_required). The chain sent includes the
      // device CA so the enrollment tool can pin it by fingerprint before it sends the token.
      const dev = await listen({
        fetch: deviceApp.fetch,
        hostname: config.devices.httpsHost,
        port: config.devices.httpsPort,
        createServer: createHttpsServer,
        serverOptions: {
          key: creds.keyPem,
          cert: `${creds.certPem.trim()}\n${deviceCa.chainPem()}`,
          ca: deviceCa.trustedPems(),
          requestCert: true,
          rejectUnauthorized: false,
          minVersion: 'TLSv1.2',
        },
      });
      deviceServer = dev.s;
      this.addresses.deviceApi = `https://${hostOf(config.devices.httpsHost)}:${dev.port}`;
      const main = await listen({ fetch: app.fetch, hostname: config.http.host, port: config.http.port });
      server = main.s;
      const url = `http://${hostOf(config.http.host)}:${main.port}`;
      this.addresses.http = url;
      log.info('hub listening', { url, deviceApi: this.addresses.deviceApi, mqtts: this.addresses.mqtts, anchors: anchors.length, db: store.location, deviceCaFingerprint: this.deviceCaFingerprint });
      return { port: main.port, url };
    },
    async stop(): Promise<void> {
      crlManager.stop();
      unwireFanout();
      await webhooks.stop();
      outbox.stop();
      await replicas?.stop();
      const close = (s: ServerType | undefined) =>
        new Promise<void>((r) => {
          if (!s) return r();
          (s as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          s.close(() => r());
        });
      await Promise.all([close(server), close(deviceServer), broker?.stop(), cluster?.stop()]);
      server = deviceServer = broker = cluster = undefined;
      await store.close();
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
