import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HubClient } from '../../../edge/sync/hub-client.ts';
import { codeOf } from '../../helpers/assertions.ts';

const KEY = 'AAAAAAAAAAAAAAAAAAAAAA';
let server: Server;
let url = '';
const routes = new Map<string, { status: number; body: string; date?: string }>();

test.before(async () => {
  server = createServer((req, res) => {
    const r = routes.get(new URL(req.url!, 'http://x').pathname) ?? { status: 404, body: '{}' };
    res.writeHead(r.status, { 'content-type': 'application/json', ...(r.date ? { date: r.date } : {}) });
    res.end(r.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
test.after(() => new Promise<void>((r) => server.close(() => r())));

test('reads config, snapshot and changes, with the hub Date header', async () => {
  routes.set('/v1/device/config', { status: 200, body: JSON.stringify({ edgeId: 'edge-1', serviceId: 'library', syncSecret: 'A'.repeat(43) }), date: 'Mon, 01 Jun 2026 12:00:00 GMT' });
  routes.set('/v1/device/snapshot', { status: 200, body: JSON.stringify({ serviceId: 'library', seq: 3, generatedAt: '2026-06-01T12:00:00Z', entries: [[KEY, 'LIB-1']] }) });
  routes.set('/v1/device/changes', { status: 200, body: JSON.stringify({ headSeq: 4, entries: [{ seq: 4, kind: 'unlink', at: '2026-06-01T12:00:00Z', remove: [KEY] }] }) });
  const hub = new HubClient({ hubUrl: url });
  const c = await hub.config();
  assert.is(c.value.edgeId, 'edge-1');
  assert.is(c.hubDate, Date.parse('2026-06-01T12:00:00Z'));
  assert.equal((await hub.snapshot()).value.entries, [[KEY, 'LIB-1']]);
  assert.is((await hub.changes(3, 1000)).value.headSeq, 4);
});

test('refuses bodies that are not the schema, not JSON, too large, or error statuses, with codes', async () => {
  const table: [string, { status: number; body: string }, string][] = [
    ['bad secret', { status: 200, body: JSON.stringify({ edgeId: 'edge-1', serviceId: 'library', syncSecret: 'short' }) }, 'validation_failed'],
    ['not json', { status: 200, body: '<html>' }, 'validation_failed'],
    ['server error', { status: 503, body: '{}' }, 'unavailable'],
    ['revoked device', { status: 403, body: '{}' }, 'forbidden'],
  ];
  const hub = new HubClient({ hubUrl: url });
  for (const [name, r, want] of table) {
    routes.set('/v1/device/config', r);
    assert.is(await codeOf(hub.config()), want, name);
  }
  routes.set('/v1/device/snapshot', { status: 200, body: JSON.stringify({ serviceId: 'library', seq: 1, generatedAt: '2026-06-01T12:00:00Z', entries: [[KEY, 'x'.repeat(2000)]] }) });
  assert.is(await codeOf(new HubClient({ hubUrl: url, maxSnapshotBytes: 1000 }).snapshot()), 'payload_too_large');
  assert.is(await codeOf(new HubClient({ hubUrl: 'http://127.0.0.1:1' }).config()), 'unavailable');
});

test('a changes page is checked entry by entry against the shared ChangeEntry rules', async () => {
  const hub = new HubClient({ hubUrl: url });
  const table: [string, unknown, string][] = [
    ['a good entry', { headSeq: 4, entries: [{ seq: 4, kind: 'unlink', at: '2026-06-01T12:00:00Z', remove: [KEY] }] }, 'resolved'],
    ['an unknown kind', { headSeq: 4, entries: [{ seq: 4, kind: 'drop_all', at: '2026-06-01T12:00:00Z', remove: [] }] }, 'validation_failed'],
    ['a key in clear', { headSeq: 4, entries: [{ seq: 4, kind: 'unlink', at: '2026-06-01T12:00:00Z', remove: ['4QG7CSUQ'] }] }, 'validation_failed'],
    ['seq 0', { headSeq: 4, entries: [{ seq: 0, kind: 'unlink', at: '2026-06-01T12:00:00Z', remove: [KEY] }] }, 'validation_failed'],
    ['a negative head', { headSeq: -1, entries: [] }, 'validation_failed'],
  ];
  for (const [name, body, want] of table) {
    routes.set('/v1/device/changes', { status: 200, body: JSON.stringify(body) });
    assert.is(await codeOf(hub.changes(3, 1000)), want, name);
  }
});

test('uses an injected fetch instead of its own transport', async () => {
  const seen: string[] = [];
  const fetch = (async (u: URL | string) => {
    seen.push(String(u));
    return new Response(JSON.stringify({ headSeq: 0, entries: [] }), { status: 200, headers: { date: 'Mon, 01 Jun 2026 12:00:00 GMT' } });
  }) as typeof globalThis.fetch;
  const hub = new HubClient({ hubUrl: 'https://hub.invalid/base', fetch });
  const r = await hub.changes(7, 50);
  assert.equal(r.value, { headSeq: 0, entries: [] });
  assert.equal(seen, ['https://hub.invalid/base/v1/device/changes?after=7&limit=50']);
});

test.run();
