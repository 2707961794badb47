// The operator console at fleet scale: the edge list page with 10,000 edges, rendered on the hub
// (SQL filter, sort and page, sparklines of the page's edges, server-side JSX to HTML), in process.
//
// Target (issue 16): console_edges_10k_ms <= 150 (median of the default list page, and reported
// beside it: a filtered, lag-sorted page, a deep page, the overview, and the whole list as CSV).
import { performance } from 'node:perf_hooks';
import { benchMain, percentile, progress, round, type Metrics } from './lib.ts';
import { client, startConsoleHub } from '../test/hub/console/helpers/console-hub.ts';

const EDGES = 10_000;
const RUNS = 30;
/** The pages timed, by metric name: each the median of RUNS loads, in ms. */
const PAGES = {
  console_edges_10k_ms: '/console/edges',
  console_edges_10k_filtered_ms: '/console/edges?service=museum&state=degraded&sort=lag&dir=desc',
  console_edges_10k_deep_page_ms: '/console/edges?page=150&sort=last_seen',
  console_overview_10k_ms: '/console',
  console_edges_csv_10k_ms: '/console/edges.csv?state=all',
};

async function median(fn: () => Promise<unknown>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < 3; i++) await fn(); // warm statements and JIT
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return percentile(ms, 50);
}

benchMain(async () => {
  const h = await startConsoleHub();
  try {
    await h.addOperator('ops', 'operator');
    for (const id of ['library', 'museum', 'points']) await h.th.hub.links.createService({ id, name: id });
    const t0 = Date.now();
    progress(`seeding ${EDGES} edges with lag samples`);
    await h.th.hub.store.sql.tx(async () => {
      for (let i = 0; i < EDGES; i++) {
        const id = `edge-${String(i).padStart(5, '0')}`;
        await h.devices.enroll({ edgeId: id, serviceId: ['library', 'museum', 'points'][i % 3], certSerial: i.toString(16), certFingerprint: `fp${i}`, notAfter: t0 + 86400_000 }, t0);
        if (i % 5 === 0) continue; // offline, never reported
        for (let k = 0; k < 12; k++) {
          await h.devices.recordStatus(
            id,
            {
              online: true,
              appliedSeq: i + k,
              version: i % 9 === 0 ? '1.1.0' : '1.2.0',
              health: ['ok', 'ok', 'ok', 'degraded', 'stale', 'clock_unsure'][i % 6],
              lag: (i + k) % 11,
              at: t0 - (12 - k) * 300_000,
            },
            true,
          );
        }
      }
    });
    const c = client(h);
    await c.signIn('ops');
    const metrics: Metrics = {};
    for (const [name, path] of Object.entries(PAGES)) {
      const ms = await median(async () => {
        const r = await c.get(path);
        if (r.status !== 200) throw new Error(`${path}: ${r.status}`);
      });
      metrics[name] = { value: round(ms, 1), unit: 'ms' };
    }
    return metrics;
  } finally {
    await h.close();
  }
});
