// The edge's Prometheus metrics, on its own loopback listener (metrics.port; 0 is off): aggregate
// touch outcomes, the sync state (contact age, connection, applied sequence, health) and the cache
// size. One prom-client Registry per agent. Loopback only and without a token: the numbers are
// aggregates, and what reads them is an agent on the same board (a Prometheus agent or node
// exporter's textfile collector) that forwards them; the kiosk page's listener, which a tablet
// reaches over the shop network, does not serve them. No label holds an identifier or the edge id.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { TouchCounters } from './lookup/touch-lookup.ts';
import type { ContactAssessment } from './sync/contact-clock.ts';
import type { Health, SyncStats } from './sync/sync-agent.ts';

export interface EdgeMetricsDeps {
  /** The touch path's aggregate counters since start (TouchLookup.counters). */
  touches: () => TouchCounters;
  sync: { contact(): ContactAssessment; readonly connected: boolean; stats(): SyncStats; health(): Health };
  cache: { readonly size: number; readonly appliedSeq: number; readonly synced: boolean };
  /** PIN-checked touches (#14), aggregate: asked for the PIN, handed over after a verified signature, failures. */
  pinTouches?: () => { pinTouches: number; pinVerified: number; pinFailures: number };
  /** Also collect the process metrics (memory, CPU, event loop lag); for the agent process, not tests. */
  processMetrics?: boolean;
}

/** The touch outcomes as labels, from the counters' names. */
const OUTCOMES: [keyof TouchCounters, string][] = [
  ['handoffs', 'handed_over'],
  ['notLinked', 'not_linked'],
  ['refused', 'refused'],
  ['errors', 'read_error'],
  ['degraded', 'degraded'],
];
const HEALTH: Health[] = ['ok', 'degraded', 'stale', 'clock_unsure', 'reader_missing'];
const SYNC_EVENTS: (keyof SyncStats)[] = ['applied', 'duplicates', 'gaps', 'snapshots', 'catchUps', 'dropped', 'connects', 'batches'];

export function createEdgeMetrics(deps: EdgeMetricsDeps) {
  const registry = new Registry();
  const registers = [registry];
  if (deps.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'mykey_edge_' });

  // Counters read at scrape time from the counters the touch path already keeps.
  new Counter({
    name: 'mykey_edge_touches_total',
    help: 'card touches since the agent started',
    registers,
    collect() {
      this.reset();
      this.inc(deps.touches().touches);
    },
  });
  new Counter({
    name: 'mykey_edge_touch_outcomes_total',
    help: 'touch outcomes since start, in aggregate (handed_over includes degraded answers that handed a service ID over)',
    labelNames: ['outcome'] as const,
    registers,
    collect() {
      this.reset();
      const c = deps.touches();
      for (const [k, outcome] of OUTCOMES) this.inc({ outcome }, c[k]);
    },
  });
  new Counter({
    name: 'mykey_edge_pin_touches_total',
    help: 'PIN-checked touches since start, in aggregate: asked (the PIN pad opened), verified (handed over after the card signature verified), failed (wrong PINs, blocked PINs, refused certificates or signatures)',
    labelNames: ['event'] as const,
    registers,
    collect() {
      this.reset();
      const c = deps.pinTouches?.();
      if (!c) return;
      this.inc({ event: 'asked' }, c.pinTouches);
      this.inc({ event: 'verified' }, c.pinVerified);
      this.inc({ event: 'failed' }, c.pinFailures);
    },
  });
  new Counter({
    name: 'mykey_edge_sync_events_total',
    help: 'sync events since start: change-log entries applied, duplicates, gaps, snapshots, catch-ups, dropped messages, connections',
    labelNames: ['event'] as const,
    registers,
    collect() {
      this.reset();
      const s = deps.sync.stats();
      for (const event of SYNC_EVENTS) this.inc({ event }, s[event]);
    },
  });
  new Gauge({
    name: 'mykey_edge_hub_connected',
    help: '1 while the MQTT session with the hub is up',
    registers,
    collect() {
      this.set(deps.sync.connected ? 1 : 0);
    },
  });
  new Gauge({
    name: 'mykey_edge_hub_contact_age_seconds',
    help: 'seconds since the last contact with the hub (0 while connected); NaN when the clock is unsure or there was none',
    registers,
    collect() {
      const c = deps.sync.contact();
      this.set(c.ageMs !== undefined ? c.ageMs / 1000 : Number.NaN);
    },
  });
  new Gauge({
    name: 'mykey_edge_health',
    help: 'the health the edge reports to the hub: 1 for the current state',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const h = deps.sync.health();
      for (const state of HEALTH) this.set({ state }, state === h ? 1 : 0);
    },
  });
  new Gauge({
    name: 'mykey_edge_applied_seq',
    help: "the last change-log sequence applied to the cache (the hub's lag is its head minus this)",
    registers,
    collect() {
      this.set(deps.cache.appliedSeq);
    },
  });
  new Gauge({
    name: 'mykey_edge_cache_mappings',
    help: 'mappings in the local cache',
    registers,
    collect() {
      this.set(deps.cache.size);
    },
  });
  new Gauge({
    name: 'mykey_edge_cache_synced',
    help: '1 once the cache holds a snapshot of the service',
    registers,
    collect() {
      this.set(deps.cache.synced ? 1 : 0);
    },
  });

  let server: Server | undefined;
  return {
    registry,
    async scrape(): Promise<{ contentType: string; body: string }> {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    /** Serves GET /metrics on 127.0.0.1:port (0 picks a free port); resolves with the URL. */
    async listen(port: number): Promise<string> {
      const s = createServer((req, res) => {
        if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
          return;
        }
        registry.metrics().then(
          (body) => res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' }).end(body),
          () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n'),
        );
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => resolve());
      });
      server = s;
      return `http://127.0.0.1:${(s.address() as AddressInfo).port}/metrics`;
    },
    async close(): Promise<void> {
      const s = server;
      server = undefined;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    },
  };
}

export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;
