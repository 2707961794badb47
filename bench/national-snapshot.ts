// The device-snapshot part of bench/national.bench.ts: one service's snapshot over the device API
// (HTTPS) of a hub that holds it, first, kept, gzip-encoded and one change later (and the edge's own
// client, at that head and first at the next), with challenge
// requests to the same hub meanwhile (snapshot_450k_* and request_p99_during_snapshot_ms). The
// service's users are L0, L1...: two of them (L7, L8) are unlinked to make the next heads.
import { request as httpsRequest } from 'node:https';
import { performance } from 'node:perf_hooks';
import { HubClient } from '../edge/sync/hub-client.ts';
import type { Hub } from '../hub/main.ts';
import { percentile, progress, round } from './lib.ts';

/**
 * Fetches the library's device snapshot over the hub's device API (HTTPS) while four clients ask for
 * challenges over HTTP; then again (kept), gzip-encoded, and once through the edge's own client, which
 * checks the body against the shared schema.
 */
export async function measureSnapshot(hub: Hub, serviceId: string, links: number) {
  const { url } = await hub.start();
  const device = new URL(hub.addresses.deviceApi!);
  const ca = hub.deviceCa!.certPem;
  const get = (gzip: boolean) =>
    new Promise<{ ms: number; bytes: number }>((resolve, reject) => {
      const t = performance.now();
      const req = httpsRequest({ host: device.hostname, port: device.port, path: '/v1/device/snapshot', ca, headers: gzip ? { 'accept-encoding': 'gzip' } : {} }, (res) => {
        let bytes = 0;
        res.on('data', (d: Buffer) => (bytes += d.length));
        res.on('end', () => (res.statusCode === 200 ? resolve({ ms: performance.now() - t, bytes }) : reject(new Error(`snapshot: HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });
  const lat: number[] = [];
  let stop = false;
  const client = async () => {
    while (!stop) {
      const t = performance.now();
      const r = await fetch(`${url}/v1/challenges`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"purpose":"register"}' });
      await r.arrayBuffer();
      lat.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const clients = Array.from({ length: 4 }, client);
  // A second of the same requests first: on a shared machine, what the hub answers at anyway.
  await new Promise((r) => setTimeout(r, 1000));
  const quiet = lat.slice(5);
  const before = lat.length;
  const cpu = process.cpuUsage();
  const first = await get(false);
  const firstCpu = process.cpuUsage(cpu);
  const during = lat.slice(before);
  stop = true;
  await Promise.all(clients);
  const cached = await get(false);
  const gzipFirst = await get(true);
  const gzipCached = await get(true);
  // One change later (a new head): made from the kept snapshot and the change log.
  await hub.links.unlink({ serviceId, serviceUserId: 'L7', by: 'bench', reason: 'bench' });
  const nextHead = await get(false);
  // The edge's own client: size cap, gzip, schema.
  const edge = new HubClient({ hubUrl: hub.addresses.deviceApi!, tls: { ca } });
  const t = performance.now();
  const { value } = await edge.snapshot();
  const edgeMs = performance.now() - t;
  if (value.entries.length !== 2 * (links - 1)) throw new Error(`the snapshot has ${value.entries.length} mappings, not ${2 * (links - 1)}`);
  // The edge's own client first at a new head (as edges ask when the head moves): its gzip form sent as it is made.
  await hub.links.unlink({ serviceId, serviceUserId: 'L8', by: 'bench', reason: 'bench' });
  const t2 = performance.now();
  const fresh = await edge.snapshot();
  const edgeNewHeadMs = performance.now() - t2;
  if (fresh.value.entries.length !== 2 * (links - 2)) throw new Error(`the snapshot has ${fresh.value.entries.length} mappings, not ${2 * (links - 2)}`);
  const p99 = percentile(during, 99);
  progress(
    `snapshot of ${links.toLocaleString('en')} links (${(first.bytes / 1e6).toFixed(1)} MB, gzip ${(gzipFirst.bytes / 1e6).toFixed(1)} MB): first ${Math.round(first.ms)} ms ` +
      `(CPU ${Math.round((firstCpu.user + firstCpu.system) / 1000)} ms, server and client), kept ${Math.round(cached.ms)} ms, gzip first ${Math.round(gzipFirst.ms)} ms, kept ${Math.round(gzipCached.ms)} ms; next head ${Math.round(nextHead.ms)} ms; ` +
      `edge client with its checks ${Math.round(edgeMs)} ms, first at a new head ${Math.round(edgeNewHeadMs)} ms; ${during.length} challenge requests meanwhile, p99 ${round(p99, 1)} ms, max ${round(Math.max(...during), 1)} ms; before it p99 ${round(percentile(quiet, 99), 1)} ms`,
  );
  return {
    snapshot_450k_ms: { value: round(first.ms, 0), unit: 'ms' },
    snapshot_450k_cached_ms: { value: round(cached.ms, 0), unit: 'ms' },
    snapshot_450k_gzip_ms: { value: round(gzipFirst.ms, 0), unit: 'ms' },
    snapshot_450k_next_head_ms: { value: round(nextHead.ms, 0), unit: 'ms' },
    snapshot_450k_mb: { value: round(first.bytes / 1e6, 1), unit: 'MB' },
    snapshot_450k_gzip_mb: { value: round(gzipFirst.bytes / 1e6, 1), unit: 'MB' },
    snapshot_450k_edge_ms: { value: round(edgeMs, 0), unit: 'ms' },
    snapshot_450k_edge_new_head_ms: { value: round(edgeNewHeadMs, 0), unit: 'ms' },
    request_p99_during_snapshot_ms: { value: round(p99, 1), unit: 'ms' },
    request_p99_before_snapshot_ms: { value: round(percentile(quiet, 99), 1), unit: 'ms' },
    requests_during_snapshot: { value: during.length, unit: 'requests' },
  };
}
