// The hub's Prometheus metrics: one prom-client Registry per hub (never the global default registry,
// so a test process can run several hubs). Counters move where events happen, through decorators put
// on at wiring (hub/main.ts): the MyKey service's register results, the revocation repo's run
// records, the HTTP access-log middleware. Gauges are read at scrape time from what the hub already
// keeps: the applied CRLs, the device table (online, applied sequence), the two outboxes.
//
// No identifier is ever a label value: no MyKey ID, service user ID, certificate serial, edge id or
// CRL URL (a URL may carry credentials). Service ids (operator-chosen, few) and issuer key ids (a CA
// key's hash) are; a CRL source is named by its index in jpki.crlSources.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MyKeyError } from '../../shared/errors.ts';
import type { Sql } from '../store/sql.ts';
import type { DeviceRow } from '../store/device-repo.ts';
import type { NewRevocationRun } from '../store/revocation-repo.ts';

export interface HubMetricsDeps {
  sql: Sql;
  /** The device table (hub/store/device-repo.ts list). */
  devices: () => Promise<Pick<DeviceRow, 'service_id' | 'status' | 'online' | 'applied_seq'>[]>;
  /** The head sequence of a service's change log. */
  headSeq: (serviceId: string) => Promise<number>;
  /** The CRL applied per issuer key id, with its thisUpdate (crlManager.crls). */
  crls: () => Iterable<[string, { thisUpdate: Date }]>;
  /** The configured CRL source URLs, to name a run's source by its index. */
  crlSources: () => readonly string[];
  now: () => number;
  /** Also collect the process metrics (CPU, memory, event loop lag); for the hub process, not tests. */
  processMetrics?: boolean;
}

/** The fan-out lag quantiles reported over the online edges. */
const LAG_QUANTILES = [0.5, 0.9, 0.99, 1];
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The q-quantile of sorted values (nearest rank). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function createHubMetrics(deps: HubMetricsDeps) {
  const registry = new Registry();
  const registers = [registry];
  if (deps.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'mykey_hub_' });

  const registrations = new Counter({
    name: 'mykey_hub_registrations_total',
    help: 'MyKey ID registrations answered: created a MyKey ID, or returned the one the certificate already had',
    labelNames: ['result'] as const,
    registers,
  });
  const refusals = new Counter({
    name: 'mykey_hub_registration_refusals_total',
    help: 'MyKey ID registrations refused once the request was read (challenge, certificate, revocation, signature), by stable error code (shared/errors.ts); malformed or rate-limited requests are in mykey_hub_http_requests_total',
    labelNames: ['code'] as const,
    registers,
  });
  for (const result of ['created', 'existing']) registrations.inc({ result }, 0);

  const crlRuns = new Counter({
    name: 'mykey_hub_crl_runs_total',
    help: 'revocation runs (CRL fetched or imported and applied), by result and error code',
    labelNames: ['result', 'code'] as const,
    registers,
  });
  const suspended = new Counter({ name: 'mykey_hub_crl_suspensions_total', help: 'MyKey IDs suspended by revocation runs', registers });
  const lastSuccess = new Gauge({
    name: 'mykey_hub_crl_last_success_timestamp_seconds',
    help: 'when a CRL of this source was last applied (source: index in jpki.crlSources, or "import")',
    labelNames: ['source'] as const,
    registers,
  });

  new Gauge({
    name: 'mykey_hub_crl_age_seconds',
    help: "seconds since thisUpdate of the CRL applied for each issuer key (issuer_key_id: the CA key's id)",
    labelNames: ['issuer_key_id'] as const,
    registers,
    collect() {
      this.reset();
      const now = deps.now();
      for (const [keyId, crl] of deps.crls()) this.set({ issuer_key_id: keyId }, Math.max(0, (now - crl.thisUpdate.getTime()) / 1000));
    },
  });

  // The device table is read once per scrape for the edge gauges below (scrape() reads it first).
  type EdgeSnapshot = { online: Map<string, number>; enrolled: Map<string, number>; lags: number[]; maxLag: Map<string, number> };
  let edgeSnapshot: EdgeSnapshot | undefined;
  const noEdges = (): EdgeSnapshot => ({ online: new Map(), enrolled: new Map(), lags: [], maxLag: new Map() });
  const edges = (): EdgeSnapshot => edgeSnapshot ?? noEdges();
  async function readEdges(): Promise<EdgeSnapshot> {
    const online = new Map<string, number>();
    const enrolled = new Map<string, number>();
    const maxLag = new Map<string, number>();
    const heads = new Map<string, number>();
    const lags: number[] = [];
    for (const d of await deps.devices()) {
      if (d.status !== 'active') continue;
      enrolled.set(d.service_id, (enrolled.get(d.service_id) ?? 0) + 1);
      if (!online.has(d.service_id)) online.set(d.service_id, 0);
      if (!d.online) continue;
      online.set(d.service_id, online.get(d.service_id)! + 1);
      let head = heads.get(d.service_id);
      if (head === undefined) {
        head = await deps.headSeq(d.service_id);
        heads.set(d.service_id, head);
      }
      const lag = Math.max(0, head - d.applied_seq);
      lags.push(lag);
      maxLag.set(d.service_id, Math.max(maxLag.get(d.service_id) ?? 0, lag));
    }
    lags.sort((a, b) => a - b);
    return { online, enrolled, lags, maxLag };
  }
  new Gauge({
    name: 'mykey_hub_edges_online',
    help: 'enrolled edges whose last status said online, per service',
    labelNames: ['service'] as const,
    registers,
    collect() {
      this.reset();
      for (const [service, n] of edges().online) this.set({ service }, n);
    },
  });
  new Gauge({
    name: 'mykey_hub_edges_enrolled',
    help: 'enrolled (not revoked) edges, per service',
    labelNames: ['service'] as const,
    registers,
    collect() {
      this.reset();
      for (const [service, n] of edges().enrolled) this.set({ service }, n);
    },
  });
  new Gauge({
    name: 'mykey_hub_fanout_lag_entries',
    help: "change-log entries the online edges are behind (service head sequence - the edge's reported applied sequence), as quantiles over the edges",
    labelNames: ['quantile'] as const,
    registers,
    collect() {
      this.reset();
      const { lags } = edges();
      for (const q of LAG_QUANTILES) this.set({ quantile: String(q) }, quantile(lags, q));
    },
  });
  new Gauge({
    name: 'mykey_hub_fanout_lag_max_entries',
    help: 'the largest lag of an online edge, per service',
    labelNames: ['service'] as const,
    registers,
    collect() {
      this.reset();
      for (const [service, n] of edges().maxLag) this.set({ service }, n);
    },
  });

  // The outboxes are read straight from their tables: a count, no rows.
  const q = {
    outbox: 'SELECT COUNT(*) AS n FROM mqtt_outbox',
    webhooks: 'SELECT service_id, COUNT(*) AS n, MIN(created_at) AS oldest FROM webhook_outbox WHERE delivered_at IS NULL GROUP BY service_id',
  };
  let outboxDepth = 0;
  new Gauge({
    name: 'mykey_hub_outbox_depth',
    help: 'change-log entries stored but not yet taken by the MQTT broker',
    registers,
    collect() {
      this.set(outboxDepth);
    },
  });
  let webhookRows: { service_id: string; n: number; oldest: number }[] | undefined;
  const webhookBacklog = () => webhookRows ?? [];
  new Gauge({
    name: 'mykey_hub_webhook_backlog',
    help: 'revocation notices (失効連絡) waiting for delivery, per service',
    labelNames: ['service'] as const,
    registers,
    collect() {
      this.reset();
      for (const r of webhookBacklog()) this.set({ service: r.service_id }, r.n);
    },
  });
  new Gauge({
    name: 'mykey_hub_webhook_oldest_pending_seconds',
    help: 'age of the oldest undelivered notice, per service',
    labelNames: ['service'] as const,
    registers,
    collect() {
      this.reset();
      const now = deps.now();
      for (const r of webhookBacklog()) this.set({ service: r.service_id }, Math.max(0, (now - r.oldest) / 1000));
    },
  });

  const httpRequests = new Counter({
    name: 'mykey_hub_http_requests_total',
    help: 'HTTP requests answered, by listener, method, route pattern (never the raw path) and status',
    labelNames: ['app', 'method', 'route', 'status'] as const,
    registers,
  });
  const httpDuration = new Histogram({
    name: 'mykey_hub_http_request_duration_seconds',
    help: 'time to answer an HTTP request, by listener, method and route pattern',
    labelNames: ['app', 'method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });

  return {
    registry,

    /** Counts a service's register results and refusals (by code); the service is otherwise untouched. */
    instrumentService<S extends { register: (...a: never[]) => Promise<{ created: boolean }> }>(service: S): S {
      const register = service.register.bind(service) as S['register'];
      const wrapped = async (...a: Parameters<S['register']>) => {
        try {
          const r = await register(...a);
          registrations.inc({ result: r.created ? 'created' : 'existing' });
          return r;
        } catch (e) {
          refusals.inc({ code: e instanceof MyKeyError ? e.code : 'internal' });
          throw e;
        }
      };
      return { ...service, register: wrapped };
    },

    /** Counts the revocation runs a revocation repo records (wrap its recordRun). */
    instrumentRevocations<R extends { recordRun: (row: NewRevocationRun) => Promise<number> }>(repo: R): R {
      const record = repo.recordRun.bind(repo);
      return {
        ...repo,
        async recordRun(row: NewRevocationRun): Promise<number> {
          const id = await record(row);
          crlRuns.inc({ result: row.ok ? 'applied' : 'failed', code: row.ok ? '' : (row.code ?? 'internal') });
          if (row.ok) {
            if (row.newly_suspended) suspended.inc(row.newly_suspended);
            const i = deps.crlSources().indexOf(row.source);
            lastSuccess.set({ source: i >= 0 ? String(i) : 'import' }, row.finished_at / 1000);
          }
          return id;
        },
      };
    },

    /** One HTTP request answered (the access-log middleware calls it). */
    observeHttp(app: string, method: string, route: string, status: number, seconds: number): void {
      const m = METHODS.has(method) ? method : 'OTHER';
      httpRequests.inc({ app, method: m, route, status: String(status) });
      httpDuration.observe({ app, method: m, route }, seconds);
    },

    /** The Prometheus text exposition. */
    async scrape(): Promise<{ contentType: string; body: string }> {
      edgeSnapshot = webhookRows = undefined;
      try {
        // The gauges are read from the store before the registry collects (collect() is synchronous).
        edgeSnapshot = await readEdges();
        webhookRows = await deps.sql.all<{ service_id: string; n: number; oldest: number }>(q.webhooks);
        outboxDepth = (await deps.sql.get<{ n: number }>(q.outbox))?.n ?? 0;
        return { contentType: registry.contentType, body: await registry.metrics() };
      } finally {
        edgeSnapshot = webhookRows = undefined;
      }
    },
  };
}

export type HubMetrics = ReturnType<typeof createHubMetrics>;
