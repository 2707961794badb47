// The edge cache: lookup latency, start-up load from the state directory, heap per mapping at a
// million mappings, and delta throughput.
//
// Targets (issue 5): lookup_p99_us <= 5, cache_load_100k_ms <= 500, heap_bytes_per_mapping_1m <= 150,
// delta_apply_per_s >= 50,000.
//
// Heap is measured as process.memoryUsage() heapUsed + arrayBuffers after forced GCs (run with
// --expose-gc, as bench/run.ts does), before and after building the index, with only the index kept
// alive: everything it holds (tables, id arena, dedup table) is in the difference.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchMain, percentile, progress, round } from './lib.ts';
import { EdgeCache } from '../edge/cache/edge-cache.ts';
import { KeyIndex } from '../edge/cache/key-index.ts';
import { EdgeState } from '../edge/state/edge-state.ts';
import { checkEntry } from '../edge/sync/payloads.ts';
import type { ChangeEntry } from '../shared/sync.ts';

const gc = (globalThis as { gc?: () => void }).gc;

function heapNow(): number {
  for (let i = 0; i < 4; i++) gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

// Key i as a keyed identity (a hash, so keys look like the real HMAC outputs).
const kbuf = Buffer.alloc(16);
function keyAt(i: number): string {
  kbuf.writeUInt32BE(i, 0);
  // Cheap mixing instead of a real hash: a million sha256 calls would dominate the set-up.
  kbuf.writeInt32BE(Math.imul(i, 0x9e3779b1), 4);
  kbuf.writeInt32BE(Math.imul(i ^ 0x5bd1e995, 0x85ebca77), 8);
  kbuf.writeInt32BE(Math.imul(i + 0x27d4eb2f, 0xc2b2ae3d), 12);
  return kbuf.toString('base64url');
}
// Two keys (MyKey ID and certificate) per service user id, like the hub's snapshots.
const userAt = (i: number) => `LIB-${String(i >> 1).padStart(8, '0')}`;

function heapPerMapping(n: number, distinct: boolean): number {
  const before = heapNow();
  let idx: KeyIndex | undefined = new KeyIndex();
  for (let i = 0; i < n; i++) idx.set(keyAt(i), distinct ? `LIB-${String(i).padStart(8, '0')}` : userAt(i));
  const after = heapNow();
  if (idx.size !== n) throw new Error('size');
  idx = undefined;
  return (after - before) / n;
}

function lookupLatencies(n: number): { p50: number; p99: number; p999: number; mykeyP99: number } {
  const secret = randomBytes(32);
  const cache = new EdgeCache({ secret });
  const idx = new KeyIndex(n);
  for (let i = 0; i < n; i++) idx.set(keyAt(i), userAt(i));
  cache.replace(idx, 1);
  const samples = 200_000;
  const probes: string[] = [];
  for (let i = 0; i < samples; i++) probes.push(i % 4 === 3 ? randomBytes(16).toString('base64url') : keyAt((Math.random() * n) | 0));
  // Warm up, then time each lookup on its own.
  let hits = 0;
  for (let i = 0; i < 50_000; i++) if (cache.get(probes[i]) !== undefined) hits++;
  const t = new Float64Array(samples);
  for (let i = 0; i < samples; i++) {
    const t0 = process.hrtime.bigint();
    const v = cache.get(probes[i]);
    t[i] = Number(process.hrtime.bigint() - t0) / 1000;
    if (v !== undefined) hits++;
  }
  // The full touch path: HMAC of the MyKey ID, then the lookup.
  const my = new Float64Array(20_000);
  for (let i = 0; i < my.length; i++) {
    const id = `ABCD${String(i % 10000).padStart(4, '2')}`;
    const t0 = process.hrtime.bigint();
    cache.lookupMyKey(id);
    my[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  if (hits === 0) throw new Error('no hits');
  const arr = Array.from(t);
  return { p50: percentile(arr, 50), p99: percentile(arr, 99), p999: percentile(arr, 99.9), mykeyP99: percentile(Array.from(my), 99) };
}

async function loadFromState(n: number): Promise<{ cold: number; median: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'cache-bench-'));
  try {
    const cache = new EdgeCache();
    const state = new EdgeState({ dir, compactEveryEntries: 1_000_000 });
    await state.open(cache);
    await state.setIdentity({ edgeId: 'edge-bench', serviceId: 'library', syncSecret: randomBytes(32).toString('base64url') });
    const idx = new KeyIndex(n);
    for (let i = 0; i < n; i++) idx.set(keyAt(i), userAt(i));
    cache.replace(idx, 1000);
    await state.checkpoint();
    // And a journal of 1,000 applied entries on top, as between two checkpoints.
    const entries: ChangeEntry[] = [];
    for (let s = 1001; s <= 2000; s++) entries.push({ seq: s, kind: 'link', at: '2026-01-01T00:00:00Z', remove: [keyAt(s)], set: { keys: [keyAt(n + s)], serviceUserId: userAt(n + s) } });
    for (const e of entries) cache.apply(e);
    await state.recordApplied(entries);
    await state.close();
    const times: number[] = [];
    for (let run = 0; run < 5; run++) {
      const c = new EdgeCache();
      const s = new EdgeState({ dir });
      const t0 = performance.now();
      const r = await s.open(c);
      times.push(performance.now() - t0);
      if (r.checkpoint !== 'ok' || c.size !== n || c.appliedSeq !== 2000) throw new Error(`load: ${JSON.stringify(r)}`);
      await s.close();
    }
    return { cold: times[0], median: percentile(times, 50) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function deltaRates(base: number, count: number): Promise<{ cacheOnly: number; durable: number }> {
  const idx = new KeyIndex(base);
  for (let i = 0; i < base; i++) idx.set(keyAt(i), userAt(i));
  // Realistic entries: a link (2 keys), an unlink, a carry-over (remove 2, set 2), in rotation.
  const raw: unknown[] = [];
  for (let s = 1; s <= count; s++) {
    const k = (s * 7919) % base;
    const kind = s % 3;
    raw.push(
      kind === 0
        ? { seq: s, kind: 'link', at: '2026-01-01T00:00:00Z', remove: [keyAt(k), keyAt(k + 1)], set: { keys: [keyAt(k), keyAt(k + 1)], serviceUserId: userAt(base + s) } }
        : kind === 1
          ? { seq: s, kind: 'unlink', at: '2026-01-01T00:00:00Z', remove: [keyAt(k), keyAt(k + 1)], reason: 'holder' }
          : {
              seq: s,
              kind: 'carry_over',
              at: '2026-01-01T00:00:00Z',
              remove: [keyAt(k)],
              set: { keys: [keyAt(k), createHash('sha256').update(String(s)).digest().subarray(0, 16).toString('base64url')], serviceUserId: userAt(k) },
            },
    );
  }
  const json = raw.map((r) => JSON.stringify(r));

  let cacheOnly = 0;
  let durable = 0;
  // Cache only: parse + validate + apply.
  {
    const cache = new EdgeCache();
    cache.replace(KeyIndex.unpack(idx.pack()), 0);
    const t0 = performance.now();
    for (const j of json) {
      const v = checkEntry(JSON.parse(j));
      if (!v.ok || cache.apply(v.value).result !== 'applied') throw new Error('apply');
    }
    cacheOnly = count / ((performance.now() - t0) / 1000);
  }
  // Durable: parse + validate + apply + journal, in pages of 1,000 (as /changes and bursts deliver them).
  const dir = mkdtempSync(join(tmpdir(), 'cache-bench-'));
  try {
    const cache = new EdgeCache();
    const state = new EdgeState({ dir, compactEveryEntries: 20_000 });
    await state.open(cache);
    cache.replace(KeyIndex.unpack(idx.pack()), 0);
    await state.checkpoint();
    const t0 = performance.now();
    for (let p = 0; p < json.length; p += 1000) {
      const page: ChangeEntry[] = [];
      for (const j of json.slice(p, p + 1000)) {
        const v = checkEntry(JSON.parse(j));
        if (!v.ok || cache.apply(v.value).result !== 'applied') throw new Error('apply');
        page.push(v.value);
      }
      await state.recordApplied(page);
    }
    durable = count / ((performance.now() - t0) / 1000);
    await state.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { cacheOnly, durable };
}

benchMain(async () => {
  if (!gc) progress('warning: run with --expose-gc (bench/run.ts does) for a clean heap figure');
  progress('heap per mapping at 1,000,000 mappings');
  const heap = heapPerMapping(1_000_000, false);
  const heapDistinct = heapPerMapping(1_000_000, true);
  progress(`  ${heap.toFixed(1)} B (2 keys per id), ${heapDistinct.toFixed(1)} B (every id distinct)`);
  progress('lookup latency with 1,000,000 mappings');
  const lat = lookupLatencies(1_000_000);
  progress(`  p50 ${lat.p50.toFixed(2)} us, p99 ${lat.p99.toFixed(2)} us, p99.9 ${lat.p999.toFixed(2)} us; by MyKey ID p99 ${lat.mykeyP99.toFixed(2)} us`);
  progress('load of 100,000 mappings (checkpoint + 1,000 journal records)');
  const load = await loadFromState(100_000);
  progress(`  cold ${load.cold.toFixed(1)} ms, median ${load.median.toFixed(1)} ms`);
  progress('delta throughput on 100,000 mappings');
  const d = await deltaRates(100_000, 60_000);
  progress(`  ${Math.round(d.durable)}/s durable, ${Math.round(d.cacheOnly)}/s cache only`);
  return {
    lookup_p99_us: { value: round(lat.p99, 2), unit: 'us' },
    lookup_p50_us: { value: round(lat.p50, 2), unit: 'us' },
    lookup_mykey_p99_us: { value: round(lat.mykeyP99, 2), unit: 'us' },
    cache_load_100k_ms: { value: round(load.cold, 1), unit: 'ms' },
    cache_load_100k_median_ms: { value: round(load.median, 1), unit: 'ms' },
    heap_bytes_per_mapping_1m: { value: round(heap, 1), unit: 'B' },
    heap_bytes_per_mapping_1m_distinct_ids: { value: round(heapDistinct, 1), unit: 'B' },
    delta_apply_per_s: { value: Math.round(d.durable), unit: '1/s' },
    delta_apply_cache_only_per_s: { value: Math.round(d.cacheOnly), unit: '1/s' },
  };
});
