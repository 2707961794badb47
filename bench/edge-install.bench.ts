// What a Raspberry Pi reader installs and how fast the built agent comes up. The edge package is built
// (scripts/build.ts, dist/edge), copied into a fresh folder and installed with `npm ci --omit=dev`, as
// the README's Production section says; `edge_install_mb` is that whole folder, node_modules included
// (pcsclite is compiled there by node-gyp, koffi comes as an optional dependency). `edge_start_ms` is
// from spawning `node main.js --config edge.json` to the agent's `health changed {"health":"ok"}`:
// state loaded, reader layer up with a reader seen (pcscd + vpcd), snapshot fetched from a real hub's
// device API over TLS and the MQTT over TLS session up. Median of RUNS starts, each with fresh state.
//
// Targets (issue "Production form"): edge_install_mb <= 40 (the whole repository tree was 126 MB),
// edge_start_ms <= 3000.
import { rmSync } from 'node:fs';
import { benchMain, percentile, progress, round } from './lib.ts';
import { requirePcscd } from '../test/helpers/pcsc.ts';
import { buildEdgePackage, EDGE_READY, installPackage, openTempDir, spawnEdge, startEdgeSite, treeBytes } from '../test/build/edge-fixture.ts';

const RUNS = 5;

benchMain(async () => {
  // The agents watch the vpcd readers: take the machine-wide slot lock so no test inserts a card meanwhile.
  await requirePcscd();
  const work = openTempDir('mykey-edge-bench-');
  try {
    const pkg = await buildEdgePackage(work);
    const installed = installPackage(pkg, work, 'reader');
    const bytes = treeBytes(installed.dir);
    progress(`installed in ${Math.round(installed.ms)} ms: ${(bytes / 1e6).toFixed(1)} MB`);

    const starts: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const site = await startEdgeSite();
      const edge = spawnEdge(installed.dir, site.configFile);
      try {
        starts.push(await edge.until(EDGE_READY, 30_000));
      } finally {
        await edge.stop();
        await site.close();
        rmSync(site.dir, { recursive: true, force: true });
      }
      progress(`start ${i + 1}: ${Math.round(starts[i])} ms`);
    }
    return {
      edge_install_mb: { value: round(bytes / 1e6, 1), unit: 'MB' },
      edge_start_ms: { value: round(percentile(starts, 50), 0), unit: 'ms' },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
