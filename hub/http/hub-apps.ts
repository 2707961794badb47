// The hub's HTTP surface, assembled from its parts: one app per listener, and the console mounted on
// the public one. The public listener never answers device routes or enrollment, and the device
// listener never answers the holders' routes, the services' or operator API, or the console
// (hub/http/app.ts).
import type { Hono } from 'hono';
import type { Logger } from '../../shared/log.ts';
import type { HubConfig } from '../config.ts';
import { mountConsole } from '../console/mount.tsx';
import type { DeviceEnrollment } from '../enrollment/device-enrollment.ts';
import type { EnrollmentTokens } from '../enrollment/tokens.ts';
import type { LinkageImporter } from '../linkage/index.ts';
import type { Links } from '../links/links.ts';
import type { HubMetrics } from '../metrics/hub-metrics.ts';
import type { ChallengeStore } from '../mykey/challenges.ts';
import type { MyKeyService } from '../mykey/service.ts';
import type { DeviceCa } from '../pki/device-ca.ts';
import type { TrustAnchor } from '../pki/trust-anchors.ts';
import type { Releases } from '../releases/releases.ts';
import type { RateBuckets } from '../replicas/shared-rate-limit.ts';
import type { Store } from '../store/store.ts';
import { createDeviceApp, createPublicApp } from './app.ts';
import { tlsDeviceResolver, type DeviceResolver } from './device-routes.ts';

/** The addresses the hub's listeners are bound to, filled in as each starts. */
export interface HubAddresses {
  http?: string;
  deviceApi?: string;
  mqtts?: string;
  mqtt?: string;
  brokerAuth?: string;
}

export interface HubAppsParts {
  config: HubConfig;
  version: string;
  log: Logger;
  store: Store;
  metrics: HubMetrics;
  /** The revocation repository as the hub uses it (instrumented by the metrics). */
  revocations: Store['revocations'];
  service: MyKeyService;
  challenges: ChallengeStore;
  links: Links;
  anchors: () => readonly TrustAnchor[];
  /** How many CRLs the hub holds (/healthz). */
  crlCount: () => number;
  /** Rate-limit buckets shared by hub replicas (PostgreSQL store); without them each hub counts alone. */
  sharedRates?: RateBuckets;
  releases: Releases;
  linkage: LinkageImporter;
  enrollmentTokens: EnrollmentTokens;
  /** Getters: the device CA and the device enrollment open in the hub's start(). */
  enrollment: () => DeviceEnrollment | undefined;
  deviceCa: () => DeviceCa | undefined;
  addresses: HubAddresses;
  /** The hub's clock, in milliseconds. */
  now: () => number;
  /** How the device API finds the calling device (default: the TLS client certificate). Tests only. */
  resolveDevice?: DeviceResolver;
}

/** The public app (holders, services, operator API, console) and the device app (device API, enrollment redemption). */
export function createHubApps(p: HubAppsParts): { app: Hono; deviceApp: Hono } {
  const { config, store, links, addresses } = p;
  const { mykeys, links: linkRepo, console: consoleRepo, releases: releaseRepo, devices } = store;
  const httpLog = p.log.child('http');
  const common = { version: p.version, maxBodyBytes: config.http.maxBodyBytes, log: (msg: string, err?: unknown) => httpLog.error(msg, { error: err }) };
  const accessLog = { log: httpLog.child('access'), observe: p.metrics.observeHttp };
  const audit = async (e: Parameters<typeof consoleRepo.audit>[0]) => void (await consoleRepo.audit(e).catch((err) => p.log.error('an audit entry could not be written', { error: err })));
  const adminToken = () => config.admin.token;
  const shared = p.sharedRates ? { shared: p.sharedRates } : {};
  const rateLimits = { challenge: { ...config.rateLimits.challenge, ...shared }, register: { ...config.rateLimits.register, ...shared } };
  const app = createPublicApp({
    ...common,
    accessLog: { app: 'public', ...accessLog },
    service: p.service,
    challenges: p.challenges,
    links,
    linkRepo,
    linksOf: links.linksOf,
    audit,
    adminToken,
    webhookUrlPolicy: config.webhooks,
    rateLimits,
    health: async () => ({ mykeyIds: await mykeys.counts(), crls: p.crlCount(), anchors: p.anchors().length }),
    metrics: { token: () => config.metrics.token, scrape: p.metrics.scrape },
    releases: { releases: p.releases, repo: releaseRepo, adminToken },
    linkage: { importer: p.linkage, adminToken, maxBytes: config.jpki.linkageMaxBytes, audit },
  });
  const deviceApp = createDeviceApp({
    ...common,
    accessLog: { app: 'device', ...accessLog },
    links,
    mykeys,
    service: p.service,
    challenges: p.challenges,
    resolveDevice: p.resolveDevice ?? tlsDeviceResolver(devices, p.enrollment),
    needsRenewal: (der) => {
      const ca = p.deviceCa();
      return !!ca && !ca.issuedByCurrent(der);
    },
    jpkiAnchors: () => p.anchors().map((a) => a.cert.der),
    rateLimits,
    releases: { releases: p.releases },
    enrollments: {
      consoleRepo,
      linkRepo,
      tokens: p.enrollmentTokens,
      enrollment: p.enrollment,
      deviceCertValidityDays: config.devices.certValidityDays,
      brokerUrl: () => config.enrollment.brokerUrl || addresses.mqtts,
      brokerUrls: config.enrollment.brokerUrls,
      hubUrl: () => config.enrollment.hubUrl || addresses.deviceApi,
      releaseKey: config.releases.publicKeys[0],
      rateLimit: { ...config.enrollment.rateLimit, ...shared },
      now: p.now,
    },
  });
  mountConsole(app, {
    webhookUrlPolicy: config.webhooks,
    repo: consoleRepo,
    links,
    linkRepo,
    mykeys,
    revocations: p.revocations,
    linkageImports: () => p.linkage.recentImports(50),
    devices,
    releases: { releases: p.releases, repo: releaseRepo },
    enrollment: p.enrollment,
    tokens: p.enrollmentTokens,
    deviceApiUrl: () => config.enrollment.hubUrl || addresses.deviceApi,
    log: p.log.child('console'),
    now: p.now,
    secureCookies: config.console.secureCookies,
    origins: config.console.origins,
    trustForwardedFor: config.console.trustForwardedFor,
    session: { idleMs: config.console.sessionIdleMinutes * 60_000, maxMs: config.console.sessionMaxHours * 3600_000 },
  });
  return { app, deviceApp };
}
