// The sync agent in its own process, for tests that kill it: `agent-child.ts <stateDir> <hubUrl>
// <brokerUrl>`. Prints one JSON line per event; on SIGTERM stops cleanly and exits 0.
import { EdgeCache } from '../../../../edge/cache/edge-cache.ts';
import { EdgeState } from '../../../../edge/state/edge-state.ts';
import { SyncAgent } from '../../../../edge/sync/sync-agent.ts';
import { createLogger } from '../../../../shared/log.ts';

const [dir, hubUrl, brokerUrl] = process.argv.slice(2);
const log = createLogger('agent-child', { level: (process.env.CHILD_LOG as 'debug' | undefined) ?? 'warn' });
const cache = new EdgeCache();
const state = new EdgeState({ dir, log, compactEveryEntries: 25 });
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const report = await state.open(cache);
out({ event: 'opened', checkpoint: report.checkpoint, appliedSeq: report.appliedSeq });
const agent = new SyncAgent({ hubUrl, brokerUrl, state, cache, version: 'test', log, backoff: { minMs: 100, maxMs: 500 }, keepaliveS: 5 });
agent.events.on('applied', (e) => out({ event: 'applied', seq: e.seq }));
agent.events.on('snapshot', (e) => out({ event: 'snapshot', seq: e.seq }));
agent.events.on('connected', () => out({ event: 'connected' }));
process.on('SIGTERM', async () => {
  await agent.stop();
  await state.close();
  out({ event: 'stopped', appliedSeq: cache.appliedSeq });
  process.exit(0);
});
await agent.start();
