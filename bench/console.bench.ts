// The operator console at fleet scale: the edge list page with 10,000 edges, rendered on the hub
// (SQL filter, sort and page, sparklines of the page's edges, server-side JSX to HTML), in process.
//
// Target (issue 16): console_edges_10k_ms <= 150 (median of the default list page, and reported
// beside it: a filtered, lag-sorted page, a deep page, the overview, and the whole list as CSV).
import { performance } from 'node:perf_hooks';
import { benchMain, percentile, progress, round } from './lib.ts';
import { client, startConsoleHub } from '../test/hub/console/helpers/console-hub.ts';

const EDGES = 10_000;
const RUNS = 30;

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
          await h.devices.recordStatus(id, { online: true, appliedSeq: i + k, version: i % 9 === 0 ? '1.1.0' : '1.2.0', health: ['ok', 'ok', 'ok', 'degraded', 'stale', 'clock_unsure'][i % 6], lag: (i + k) % 11, at: t0 - (12 - k) * 300_000 }, true);
        }
      }
    });
    const c = client(h);
    await c.signIn('ops');
    const get = (path: string) => async () => {
      const r = await c.get(path);
      if (r.status !== 200) throw new Error(`${path}: ${r.status}`);
    };
    const list = await median(get('/console/edges'));
    const filtered = await median(get('/console/edges?service=museum&state=degraded&sort=lag&dir=desc'));
    const deep = await median(get('/console/edges?page=150&sort=last_seen'));
    const overview = await median(get('/console'));
    const csv = await median(get('/console/edges.csv?state=all'));
    return {
      console_edges_10k_ms: { value: round(list, 1), unit: 'ms' },
      console_edges_10k_filtered_ms: { value: round(filtered, 1), unit: 'ms' },
      console_edges_10k_deep_page_ms: { value: round(deep, 1), unit: 'ms' },
      console_overview_10k_ms: { value: round(overview, 1), unit: 'ms' },
      console_edges_csv_10k_ms: { value: round(csv, 1), unit: 'ms' },
    };
  } finally {
    await h.close();
  }
});
