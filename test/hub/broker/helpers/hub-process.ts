// A whole hub in a process of its own, for measuring the hub's memory apart from the test's clients.
// Prints one JSON line: the broker port, the device CA and enrolled edges' credentials. Then answers
// each stdin line: `mem` -> {rss, peakRss, arrayBuffers, peakArrayBuffers, refusals} (peaks since the
// last `mem`, sampled every 5 ms), `stop` -> closes the hub and exits.
import { createInterface } from 'node:readline';
import { startTestHub } from '../../../helpers/hub.ts';
import { enrollEdge } from '../../../helpers/enrolled-edge.ts';

const count = Number(process.argv[2] ?? '3');
const h = await startTestHub({ overrides: { broker: { port: 0 }, devices: { httpsPort: 0 } } });
await h.hub.start();
await h.hub.links.createService({ id: 'library', name: 'Town library' });
const edges = [];
for (let i = 1; i <= count; i++) {
  const edgeId = `edge-proc-${i}`;
  const e = await enrollEdge(h.hub, edgeId);
  edges.push({ edgeId, certPem: e.certPem, keyPem: e.keyPem });
}
let peak = { rss: 0, arrayBuffers: 0 };
const sample = () => {
  const m = process.memoryUsage();
  peak = { rss: Math.max(peak.rss, m.rss), arrayBuffers: Math.max(peak.arrayBuffers, m.arrayBuffers) };
};
setInterval(sample, 5).unref();
process.stdout.write(JSON.stringify({ port: Number(new URL(h.hub.addresses.mqtts!).port), ca: h.hub.deviceCa!.certPem, edges }) + '\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'mem') {
    sample();
    const m = process.memoryUsage();
    process.stdout.write(JSON.stringify({ rss: m.rss, arrayBuffers: m.arrayBuffers, peakRss: peak.rss, peakArrayBuffers: peak.arrayBuffers, refusals: h.hub.broker!.refusals() }) + '\n');
    peak = { rss: m.rss, arrayBuffers: m.arrayBuffers };
  } else if (line === 'stop') break;
}
await h.close();
process.exit(0);
