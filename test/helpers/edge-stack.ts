// The sync side of an edge, as edge/main.ts assembles it, for tests that run it against a real hub:
// a cache, its durable state, the sync agent (not started) and a touch lookup over the cache.
import { EdgeCache } from '../../edge/cache/edge-cache.ts';
import { TouchLookup } from '../../edge/lookup/index.ts';
import { EdgeState } from '../../edge/state/edge-state.ts';
import { SyncAgent } from '../../edge/sync/sync-agent.ts';
import type { Hub } from '../../hub/main.ts';
import { silentLogger, type Logger } from '../../shared/log.ts';
import type { EdgeTls } from './enrolled-edge.ts';

export interface EdgeStack {
  cache: EdgeCache;
  state: EdgeState;
  /** Not started: the test starts it when its hub side is ready. */
  agent: SyncAgent;
  /** Always healthy, handing off nowhere; keyed with the sync secret the state holds. */
  lookup: TouchLookup;
}

/** Opens the edge's state in `dir` and builds its sync agent for `hub`, as `edge`, with short reconnect backoff. */
export async function edgeStack(hub: Hub, edge: EdgeTls, opts: { dir: string; version: string; log?: Logger }): Promise<EdgeStack> {
  const log = opts.log ?? silentLogger;
  const cache = new EdgeCache();
  const state = new EdgeState({ dir: opts.dir, log });
  await state.open(cache);
  const agent = new SyncAgent({
    hubUrl: hub.addresses.deviceApi!,
    brokerUrl: hub.addresses.mqtts!,
    tls: edge.tls,
    state,
    cache,
    version: opts.version,
    ...(opts.log ? { log: opts.log } : {}),
    backoff: { minMs: 100, maxMs: 500 },
  });
  const lookup = new TouchLookup({
    cache,
    secret: () => (state.identity() ? new Uint8Array(Buffer.from(state.identity()!.syncSecret, 'base64url')) : undefined),
    health: () => ({ state: 'ok', lastContactMs: Date.now() }),
    policy: { maxStalenessMs: 3_600_000, whenStale: 'refuse' },
    handoff: { dispatch: () => undefined },
    context: { serviceId: edge.serviceId, edgeId: edge.edgeId },
  });
  return { cache, state, agent, lookup };
}
