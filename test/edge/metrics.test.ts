// The edge's /metrics on its own loopback listener: touch outcomes in aggregate (from the real touch
// path), contact age and sync state, cache size; never the MyKey ID or service user ID a touch
// carried, nor the edge id. An agent built from its config serves nothing until metrics.port is set.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EdgeCache } from '../../edge/cache/edge-cache.ts';
import { KeyIndex } from '../../edge/cache/key-index.ts';
import { loadEdgeConfig } from '../../edge/config.ts';
import { TouchLookup } from '../../edge/lookup/index.ts';
import { createEdgeMetrics } from '../../edge/metrics.ts';
import type { ContactAssessment } from '../../edge/sync/contact-clock.ts';
import type { Health, SyncStats } from '../../edge/sync/sync-agent.ts';
import { keyedId } from '../../shared/sync.ts';

const secret = new Uint8Array(32).fill(7);
const LINKED = 'B7NQ4KXW';
const UNLINKED = 'ZZZZ2222';
const SERVICE_USER_ID = 'LIB-SECRET-0042';
const EDGE_ID = 'counter-metrics-9';

function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('serves touch outcomes, contact age, sync state and cache size on loopback, and no identifier', async () => {
  const cache = new EdgeCache({ secret });
  cache.replace(new KeyIndex(), 0);
  cache.apply({ seq: 1, kind: 'link', at: new Date().toISOString(), remove: [], set: { keys: [keyedId(secret, 'mykey', LINKED)], serviceUserId: SERVICE_USER_ID } });
  const lookup = new TouchLookup({
    cache,
    secret: () => secret,
    health: () => ({ state: 'ok', lastContactMs: Date.now() }),
    policy: { maxStalenessMs: 60_000, whenStale: 'refuse' },
    handoff: { dispatch: () => undefined },
    context: { serviceId: 'library', edgeId: EDGE_ID },
  });
  const stats: SyncStats = { applied: 1, duplicates: 0, gaps: 0, snapshots: 1, catchUps: 2, dropped: 0, connects: 1, batches: 0 };
  let contact: ContactAssessment = { verdict: 'fresh', ageMs: 0 };
  let connected = true;
  let health: Health = 'ok';
  const metrics = createEdgeMetrics({
    touches: () => lookup.counters(),
    sync: {
      contact: () => contact,
      get connected() {
        return connected;
      },
      stats: () => stats,
      health: () => health,
    },
    cache,
  });
  await lookup.touch('r1', { kind: 'mykey', mykeyId: LINKED });
  await lookup.touch('r1', { kind: 'mykey', mykeyId: UNLINKED });
  lookup.touchFailed('r1', 'card_removed');
  const url = await metrics.listen(0);
  try {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    let res = await fetch(url);
    assert.is(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    let text = await res.text();
    assert.is(sample(text, 'mykey_edge_touches_total'), 3);
    assert.is(sample(text, 'mykey_edge_touch_outcomes_total', 'outcome="handed_over"'), 1);
    assert.is(sample(text, 'mykey_edge_touch_outcomes_total', 'outcome="not_linked"'), 1);
    assert.is(sample(text, 'mykey_edge_touch_outcomes_total', 'outcome="read_error"'), 1);
    assert.is(sample(text, 'mykey_edge_touch_outcomes_total', 'outcome="refused"'), 0);
    assert.is(sample(text, 'mykey_edge_cache_mappings'), 1);
    assert.is(sample(text, 'mykey_edge_cache_synced'), 1);
    assert.is(sample(text, 'mykey_edge_applied_seq'), 1);
    assert.is(sample(text, 'mykey_edge_hub_connected'), 1);
    assert.is(sample(text, 'mykey_edge_hub_contact_age_seconds'), 0);
    assert.is(sample(text, 'mykey_edge_health', 'state="ok"'), 1);
    assert.is(sample(text, 'mykey_edge_sync_events_total', 'event="catchUps"'), 2);
    for (const s of [LINKED, UNLINKED, SERVICE_USER_ID, EDGE_ID, 'card_removed']) assert.not.ok(text.includes(s), `${s} in the scrape`);

    // Out of touch: the contact age grows, the health says so; a second scrape is not a second count.
    connected = false;
    contact = { verdict: 'stale', ageMs: 90_500 };
    health = 'stale';
    text = await (await fetch(url)).text();
    assert.is(sample(text, 'mykey_edge_hub_connected'), 0);
    assert.is(sample(text, 'mykey_edge_hub_contact_age_seconds'), 90.5);
    assert.is(sample(text, 'mykey_edge_health', 'state="stale"'), 1);
    assert.is(sample(text, 'mykey_edge_health', 'state="ok"'), 0);
    assert.is(sample(text, 'mykey_edge_touches_total'), 3);
    // An unsure clock has no age to give.
    contact = { verdict: 'clock_unsure', clockReason: 'before_build_date' };
    text = await (await fetch(url)).text();
    assert.ok(Number.isNaN(sample(text, 'mykey_edge_hub_contact_age_seconds')));

    res = await fetch(url.replace('/metrics', '/other'));
    assert.is(res.status, 404);
    await res.text();
  } finally {
    await metrics.close();
  }
});

test('metrics.port defaults to 0: an agent serves no metrics unless asked', () => {
  const base = { edgeId: EDGE_ID, serviceId: 'library', hub: { url: 'https://h:1' }, broker: { url: 'mqtts://h:2' }, tls: { cert: 'c', key: 'k', ca: 'a' } };
  assert.is(loadEdgeConfig({ env: {}, overrides: base }).metrics.port, 0);
  assert.is(loadEdgeConfig({ env: { MYKEY_EDGE_METRICS_PORT: '9464' }, overrides: base }).metrics.port, 9464);
});

test.run();
