// The hub's /metrics through the real stack: a hub whose CRL source is fetched over HTTP (its URL
// holds a secret), real registrations and refusals, a counter link, an enrolled edge online over
// MQTT over TLS (the real sync agent), then a scrape with the scrape token. The metric names are
// there, the numbers are what happened, and no identifier the story used appears anywhere in the
// text: no MyKey ID, certificate serial, service user ID, edge id, device certificate serial or CRL
// URL. The access log names route patterns, never the path's values.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, type IssuedCert, type TestCa } from '../../provisioning/test-ca/ca.ts';
import { writeCrl } from '../../provisioning/test-ca/crl-writer.ts';
import { EdgeCache } from '../../edge/cache/edge-cache.ts';
import { EdgeState } from '../../edge/state/edge-state.ts';
import { SyncAgent } from '../../edge/sync/sync-agent.ts';
import { formatMyKeyId } from '../../shared/ids.ts';
import { quantile } from '../../hub/metrics/hub-metrics.ts';
import { silentLogger, tapLogs, type LogRecord } from '../../shared/log.ts';
import { issue, startTestHub, type TestHub } from '../helpers/hub.ts';
import { until } from '../helpers/polling.ts';
import { counterLink, enrollEdge } from '../helpers/enrolled-edge.ts';

const ADMIN = 'admin-token-for-metrics-test';
const SCRAPE = 'scrape-token-for-metrics-test';
const CRL_KEY = 'crlkey-s3cret-9f2';
const EDGE_ID = 'lib-counter-metrics-1';
const SERVICE_USER_ID = 'L-SECRET-7731';

interface Ctx {
  ca: TestCa;
  h: TestHub;
  crlServer: Server;
  crlUrl: string;
  revoked: IssuedCert;
  edge: { certPem: string; keyPem: string; caPem: string };
  dir: string;
  agent?: SyncAgent;
  state?: EdgeState;
  records: LogRecord[];
  untap: () => void;
  needles: Set<string>;
}
const test = suite<Ctx>('hub metrics', {} as Ctx);

function serialForms(hex: string): string[] {
  const up = hex.toUpperCase().replace(/^0+/, '');
  const out = [up, up.toLowerCase(), hex, BigInt(`0x${hex}`).toString(10)];
  if (hex.length % 2 === 0) out.push(hex.match(/../g)!.join(':').toLowerCase());
  return out;
}

function addCert(ctx: Ctx, cert: IssuedCert) {
  for (const s of serialForms(cert.serial.toString(16))) ctx.needles.add(s);
}

test.before(async (ctx) => {
  ctx.needles = new Set([EDGE_ID, SERVICE_USER_ID, CRL_KEY]);
  ctx.records = [];
  ctx.untap = tapLogs((r) => void ctx.records.push(r));
  ctx.ca = await createTestCa();
  // A CRL source the hub fetches at start; it revokes one certificate before it is ever registered.
  ctx.revoked = await issue(ctx.ca);
  addCert(ctx, ctx.revoked);
  const der = await writeCrl({
    issuerNameDer: ctx.ca.nameDer,
    signingKey: ctx.ca.keyPair.privateKey,
    thisUpdate: new Date(Date.now() - 60_000),
    nextUpdate: new Date(Date.now() + 86400_000),
    crlNumber: 1n,
    entries: [{ serial: ctx.revoked.serial, revokedAt: new Date(Date.now() - 120_000), reason: 'keyCompromise' }],
  });
  ctx.crlServer = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/pkix-crl' });
    res.end(Buffer.from(der));
  });
  await new Promise<void>((r) => ctx.crlServer.listen(0, '127.0.0.1', r));
  ctx.crlUrl = `http://127.0.0.1:${(ctx.crlServer.address() as AddressInfo).port}/jpki.crl?key=${CRL_KEY}`;
  ctx.needles.add(ctx.crlUrl);
  ctx.h = await startTestHub({
    ca: ctx.ca,
    overrides: {
      admin: { token: ADMIN },
      metrics: { token: SCRAPE },
      broker: { port: 0 },
      devices: { httpsPort: 0 },
      jpki: { crlSources: [ctx.crlUrl] },
      webhooks: { allowPrivateTargets: true, allowHttp: true, baseDelayMs: 60_000 },
    },
  });
  await ctx.h.hub.start();
  await until(() => ctx.h.hub.crlManager.crls.size === 1, { what: 'the CRL source applied' });
  // The library's business system is down: its notices wait in the webhook outbox.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const hookUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/hook?key=${CRL_KEY}`;
  await new Promise((r) => closed.close(r));
  ctx.needles.add(hookUrl);
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library', requireHolderProof: false, webhookUrl: hookUrl });
  const enrolled = await enrollEdge(ctx.h.hub, EDGE_ID);
  ctx.edge = enrolled;
  for (const s of serialForms(new X509Certificate(enrolled.certPem).serialNumber)) ctx.needles.add(s);
  ctx.dir = mkdtempSync(join(tmpdir(), 'hub-metrics-'));
});

test.after(async (ctx) => {
  ctx.untap();
  await ctx.agent?.stop();
  await ctx.state?.close();
  await ctx.h.close();
  await new Promise((r) => ctx.crlServer.close(r));
  rmSync(ctx.dir, { recursive: true, force: true });
});

async function register(ctx: Ctx, cert: IssuedCert): Promise<Response> {
  return ctx.h.request('/v1/mykey-ids', { proof: await ctx.h.proof(cert) });
}

/** The value of one sample line `name{labels} value`, or undefined. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('a scrape after registrations, refusals, a fetched CRL and an edge online counts them all and names no identifier', async (ctx) => {
  // Registrations: two created, one answered again.
  const a = await issue(ctx.ca);
  const b = await issue(ctx.ca);
  addCert(ctx, a);
  addCert(ctx, b);
  for (const [cert, status] of [
    [a, 201],
    [a, 200],
    [b, 201],
  ] as const) {
    const r = await register(ctx, cert);
    assert.is(r.status, status, await r.clone().text());
    const { mykeyId } = (await r.json()) as { mykeyId: string };
    for (const f of [mykeyId, formatMyKeyId(mykeyId)]) [f, f.toLowerCase()].forEach((x) => void ctx.needles.add(x));
  }
  // Refusals, each with its own code: the revoked certificate (from the fetched CRL), a foreign CA's
  // under the same name (the chain does not verify), a replayed challenge.
  assert.is(((await (await register(ctx, ctx.revoked)).json()) as { code: string }).code, 'cert_revoked');
  const foreign = await issue(await createTestCa());
  addCert(ctx, foreign);
  assert.is(((await (await register(ctx, foreign)).json()) as { code: string }).code, 'cert_chain_broken');
  const proof = await ctx.h.proof(b);
  await ctx.h.request('/v1/mykey-ids', { proof });
  const replay = await ctx.h.request('/v1/mykey-ids', { proof });
  assert.is(((await replay.json()) as { code: string }).code, 'challenge_replayed');

  // A counter link, then the edge syncs and reports itself online.
  assert.is(await counterLink(ctx.h.hub, ctx.edge, a.certDer, SERVICE_USER_ID), 201);
  const cache = new EdgeCache();
  ctx.state = new EdgeState({ dir: ctx.dir, log: silentLogger });
  await ctx.state.open(cache);
  ctx.agent = new SyncAgent({
    hubUrl: ctx.h.hub.addresses.deviceApi!,
    brokerUrl: ctx.h.hub.addresses.mqtts!,
    tls: { ca: ctx.edge.caPem, cert: ctx.edge.certPem, key: ctx.edge.keyPem },
    state: ctx.state,
    cache,
    version: '0.1.0-metrics',
    log: silentLogger,
    backoff: { minMs: 100, maxMs: 500 },
  });
  await ctx.agent.start();
  const head = await ctx.h.hub.links.headSeq('library');
  await until(async () => (await ctx.h.hub.devices.get(EDGE_ID))?.online === 1 && (await ctx.h.hub.devices.get(EDGE_ID))?.applied_seq === head, { what: 'the hub has the edge online at the head' });

  // A path that no route has, holding an identifier: counted as unmatched, the path nowhere.
  const someId = [...ctx.needles].find((n) => /^[0-9A-Z]{8}$/.test(n))!;
  assert.is((await ctx.h.request(`/v1/mykey-ids/${someId}`)).status, 404);

  // No token, a wrong token: refused. The scrape token: the text.
  assert.is((await ctx.h.request('/metrics')).status, 401);
  assert.is((await ctx.h.request('/metrics', undefined, { headers: { authorization: `Bearer ${ADMIN}` } })).status, 401, 'the operator token is not the scrape token');
  const res = await ctx.h.request('/metrics', undefined, { headers: { authorization: `Bearer ${SCRAPE}` } });
  assert.is(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();

  assert.is(sample(text, 'mykey_hub_registrations_total', 'result="created"'), 2);
  assert.is(sample(text, 'mykey_hub_registrations_total', 'result="existing"'), 2, 'a again, and b before its proof was replayed');
  assert.is(sample(text, 'mykey_hub_registration_refusals_total', 'code="cert_revoked"'), 1);
  assert.is(sample(text, 'mykey_hub_registration_refusals_total', 'code="cert_chain_broken"'), 1);
  assert.is(sample(text, 'mykey_hub_registration_refusals_total', 'code="challenge_replayed"'), 1);
  const keyId = ctx.h.hub.anchors[0].keyId;
  const age = sample(text, 'mykey_hub_crl_age_seconds', `issuer_key_id="${keyId}"`);
  assert.ok(age !== undefined && age >= 59 && age < 3600, `CRL age ${age}`);
  assert.is(sample(text, 'mykey_hub_crl_runs_total', 'result="applied",code=""'), 1);
  assert.ok((sample(text, 'mykey_hub_crl_last_success_timestamp_seconds', 'source="0"') ?? 0) > Date.now() / 1000 - 600, 'the source is named by its index');
  assert.is(sample(text, 'mykey_hub_edges_online', 'service="library"'), 1);
  assert.is(sample(text, 'mykey_hub_edges_enrolled', 'service="library"'), 1);
  for (const q of ['0.5', '0.9', '0.99', '1']) assert.is(sample(text, 'mykey_hub_fanout_lag_entries', `quantile="${q}"`), 0, q);
  assert.is(sample(text, 'mykey_hub_fanout_lag_max_entries', 'service="library"'), 0);
  assert.ok(sample(text, 'mykey_hub_outbox_depth') !== undefined);
  assert.is(sample(text, 'mykey_hub_webhook_backlog', 'service="library"'), 1, 'the link.created notice waits');
  assert.ok((sample(text, 'mykey_hub_webhook_oldest_pending_seconds', 'service="library"') ?? -1) >= 0);
  assert.ok((sample(text, 'mykey_hub_http_requests_total', 'app="public",method="POST",route="/v1/mykey-ids",status="201"') ?? 0) >= 2);
  assert.ok((sample(text, 'mykey_hub_http_requests_total', 'app="public",method="GET",route="unmatched",status="404"') ?? 0) >= 1);
  assert.is(sample(text, 'mykey_hub_http_requests_total', 'app="public",method="GET",route="/metrics",status="401"'), 2);
  assert.ok((sample(text, 'mykey_hub_http_requests_total', 'app="device",method="POST",route="/v1/device/links",status="201"') ?? 0) >= 1);

  const leaks = [...ctx.needles].filter((n) => n.length >= 5 && text.includes(n));
  assert.equal(leaks, [], `identifiers in the scrape: ${leaks.join(', ')}`);
});

test('the access log line of a route whose path holds identifiers carries its pattern, never the values', async (ctx) => {
  const cred = await ctx.h.request('/v1/admin/services/library/credentials', { label: 'ils' }, { headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` } });
  assert.is(cred.status, 201);
  const { token } = (await cred.json()) as { token: string };
  ctx.records.length = 0;
  const r = await ctx.h.request(`/v1/services/library/links/${SERVICE_USER_ID}?why=${CRL_KEY}`, undefined, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  assert.is(r.status, 200, await r.clone().text());
  const access = ctx.records.filter((x) => x.name.endsWith('.http.access') && x.level === 'info');
  assert.is(access.length, 1, JSON.stringify(ctx.records));
  const line = access[0].line;
  const rec = JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>;
  assert.is(rec.route, '/v1/services/:serviceId/links/:serviceUserId');
  assert.is(rec.status, 200);
  assert.is(rec.method, 'DELETE');
  assert.type(rec.durationMs, 'number');
  for (const s of [SERVICE_USER_ID, CRL_KEY, token, 'why=']) assert.not.ok(line.includes(s), `${s} in ${line}`);

  // Every access line of the whole story, and every record at info or above, is clean as well.
  const scrape = await ctx.h.request('/metrics', undefined, { headers: { authorization: `Bearer ${SCRAPE}` } });
  assert.not.ok((await scrape.text()).includes(SERVICE_USER_ID));
  const loud = ctx.records.filter((x) => x.level !== 'debug');
  const leaks = loud.flatMap((x) => [...ctx.needles].filter((n) => n.length >= 5 && x.line.includes(n)).map((n) => `${n} in ${x.line}`));
  assert.equal(leaks, []);
});

test('fan-out lag quantiles are nearest-rank over the online edges', () => {
  const lags = [0, 0, 0, 1, 1, 2, 3, 5, 8, 400];
  const table: [number, number][] = [
    [0.5, 1],
    [0.9, 8],
    [0.99, 400],
    [1, 400],
    [0, 0],
  ];
  for (const [q, want] of table) assert.is(quantile(lags, q), want, String(q));
  assert.is(quantile([], 0.5), 0, 'no online edge: no lag');
  assert.is(quantile([7], 0.5), 7);
});

test('an empty metrics.token serves no /metrics at all', async () => {
  const h = await startTestHub();
  try {
    const r = await h.request('/metrics', undefined, { headers: { authorization: 'Bearer anything' } });
    assert.is(r.status, 404);
    assert.is(((await r.json()) as { code: string }).code, 'not_found');
  } finally {
    await h.close();
  }
});

test('two hubs in one process keep their own registries', async (ctx) => {
  const other = await startTestHub({ overrides: { metrics: { token: SCRAPE } } });
  try {
    const text = await (await other.request('/metrics', undefined, { headers: { authorization: `Bearer ${SCRAPE}` } })).text();
    assert.is(sample(text, 'mykey_hub_registrations_total', 'result="created"'), 0);
    assert.ok(other.hub.metrics.registry !== ctx.h.hub.metrics.registry);
  } finally {
    await other.close();
  }
});

test.run();
