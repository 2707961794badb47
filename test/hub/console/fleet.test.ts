// The console at fleet scale, through the real hub and broker: edges report their health in real
// MQTT status messages and the overview and list show each state (ok, degraded, stale, clock unsure,
// offline, revoked, outdated version); revoking asks for a reason on a confirmation page (no script)
// and the revoked edge's will is not recorded; 10,000 edges seeded through the store are filtered,
// searched, sorted, paged and exported; the operator API's actions are in the audit log. Screenshots
// of every page in both languages (and on a phone) land in CONSOLE_SCREENSHOTS or a temp dir.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { MqttClient } from 'mqtt';
import { edgeStatusTopic } from '../../../shared/topics.ts';
import { createDeviceCsr, derToPem } from '../../../hub/pki/device-ca.ts';
import { initCaDir } from '../../../provisioning/test-ca/store.ts';
import { client, PASSWORD, serveConsoleHub, startConsoleHub, type ConsoleHub } from './helpers/console-hub.ts';
import { connectEdgeMqtt } from '../../helpers/enrolled-edge.ts';

const test = suite('console at fleet scale');
const ADMIN = 'admin-token-for-fleet-tests';
let h: ConsoleHub;
let caTmp: string;
let served: Awaited<ReturnType<typeof serveConsoleHub>> | undefined;
let url: string;
let browser: Browser;
let page: Page;
const edges: MqttClient[] = [];
const shots = process.env.CONSOLE_SCREENSHOTS ?? join(tmpdir(), 'mykey-console-shots');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function enrollAndConnect(edgeId: string, status?: { health: string; version: string }): Promise<MqttClient | undefined> {
  const t = await h.tokens.issue({ serviceId: 'library', edgeId, by: 'ops' });
  const csr = await createDeviceCsr(edgeId);
  const res = await h.app.request('/v1/enrollments', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: t.token, edgeId, csrPem: derToPem(csr.csrDer, 'CERTIFICATE REQUEST') }),
  });
  assert.is(res.status, 201);
  if (!status) return undefined;
  const enrolled = (await res.json()) as { certPem: string; caPem: string };
  const msg = (online: boolean) => Buffer.from(JSON.stringify({ edgeId, serviceId: 'library', online, appliedSeq: 0, version: status.version, health: status.health, at: new Date().toISOString() }));
  const edge = await connectEdgeMqtt(h.th.hub, edgeId, { ...enrolled, keyPem: csr.keyPem }, { will: { topic: edgeStatusTopic(edgeId), payload: msg(false), qos: 1, retain: true } });
  await edge.publishAsync(edgeStatusTopic(edgeId), msg(true), { qos: 1, retain: true });
  edges.push(edge);
  return edge;
}

async function shoot(name: string, fullPage = true) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage });
}

test.before(async () => {
  caTmp = mkdtempSync(join(tmpdir(), 'mykey-fleet-ca-'));
  const caDir = await initCaDir(join(caTmp, 'ca'));
  // The console revokes through the hub's own device enrollment, which drops the edge's connection
  // at once (so aedes publishes the edge's will, the message this test wants ignored).
  h = await startConsoleHub({
    ca: caDir.ca,
    overrides: { admin: { token: ADMIN } },
    console: { enrollment: () => h?.th.hub.enrollment },
  });
  await h.addOperator('ops', 'operator');
  await h.th.hub.links.createService({ id: 'library', name: 'City Library' });
  await h.th.hub.links.createService({ id: 'bulk', name: 'Bulk' });
  await h.th.hub.start();
  served = await serveConsoleHub(h);
  url = served.url;
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(10_000);
  await page.goto(`${url}/console/login`);
  await page.fill('input[name=name]', 'ops');
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
});

test.after(async () => {
  for (const e of edges) e.end(true);
  await browser?.close();
  await served?.close();
  await h?.close();
  rmSync(caTmp, { recursive: true, force: true });
});

const STATES = [
  ['lib-ok', 'ok', '1.2.0'],
  ['lib-degraded', 'degraded', '1.2.0'],
  ['lib-stale', 'stale', '1.2.0'],
  ['lib-clock', 'clock_unsure', '1.2.0'],
  ['lib-old', 'ok', '1.1.9'],
  ['lib-noreader', 'reader_missing', '1.2.0'],
  ['lib-gone', 'ok', '1.2.0'],
] as const;

test('each state an edge reports over MQTT shows on the overview and in the list, and each count opens the filtered list', async () => {
  for (const [id, health, version] of STATES) await enrollAndConnect(id, { health, version });
  await enrollAndConnect('lib-never'); // enrolled, never connected: offline
  const settled = async () => {
    for (const [id, health] of STATES) if ((await h.devices.get(id))?.state !== health) return false;
    return true;
  };
  for (let i = 0; i < 100 && !(await settled()); i++) await sleep(50);

  await page.goto(`${url}/console`);
  const count = async (s: string) => (await page.getByTestId(`count-${s}`).textContent())!.replace(/\D/g, '');
  assert.is(await count('ok'), '3');
  assert.is(await count('degraded'), '1');
  assert.is(await count('stale'), '1');
  assert.is(await count('clock_unsure'), '1');
  assert.is(await count('reader_missing'), '1');
  assert.is(await count('offline'), '1');
  assert.is(await count('outdated'), '1');
  assert.is(await count('behind'), '0'); // nothing in the library's change log yet: every edge is in sync
  await shoot('overview-ja');
  await page.getByTestId('count-degraded').click();
  assert.match(page.url(), /state=degraded/);
  const rows = await page.locator('table[data-testid=edges] tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-edge')));
  assert.equal(rows, ['lib-degraded']);
  await page.getByTestId('count-degraded').count(); // (the list page has no counts; nothing to click)
  await page.goto(`${url}/console/edges?state=outdated`);
  await page.getByTestId('lang-switch').click(); // the switch keeps the filter
  assert.match(page.url(), /\/console\/edges\?state=outdated$/);
  assert.is(await page.getAttribute('html', 'lang'), 'en');
  await page.goto(`${url}/console/lang/ja?next=/console`);
  await page.goto(`${url}/console/edges?state=outdated`);
  assert.equal(await page.locator('table[data-testid=edges] tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-edge'))), ['lib-old']);
  await page.goto(`${url}/console/edges`);
  for (const [id, label] of [
    ['lib-stale', '同期が古い'],
    ['lib-clock', '時刻不確か'],
    ['lib-never', 'オフライン'],
    ['lib-old', '旧バージョン'],
  ]) {
    assert.match((await page.locator(`tr[data-edge="${id}"]`).textContent())!, label);
  }
  await shoot('edges-ja');
});

test('revoking an edge asks for a reason on a confirmation page, says what happened, and its will is not recorded', async () => {
  const before = (await h.devices.get('lib-gone'))!;
  await page.goto(`${url}/console/edges/lib-gone`);
  await page.getByTestId('revoke-link').click();
  assert.match(page.url(), /\/edges\/lib-gone\/revoke$/);
  await shoot('confirm-ja');
  // Without a reason the browser's own check stops the form; a post without one (no script, old
  // browser) gets the page back with the error, nothing revoked.
  const c = client(h);
  await c.signIn('ops');
  await c.get('/console/edges/lib-gone/revoke');
  const bare = await c.post('/console/edges/lib-gone/revoke', { reason: '' });
  assert.is(bare.status, 400);
  assert.match(bare.text, 'data-testid="form-error"');
  assert.is((await h.devices.get('lib-gone'))!.status, 'active');

  await page.fill('textarea[name=reason]', 'stolen from the branch');
  await page.getByTestId('confirm-submit').click();
  assert.match((await page.getByTestId('done').textContent())!, 'lib-gone');
  assert.is(await page.getByTestId('revoked-by').textContent(), 'ops');
  assert.is(await page.getByTestId('revoked-reason').textContent(), 'stolen from the branch');
  await shoot('edge-revoked-ja');
  // The hub cut the connection: the edge's client sees it close, and aedes publishes its will.
  const gone = edges[STATES.findIndex(([id]) => id === 'lib-gone')];
  for (let i = 0; i < 100 && gone.connected; i++) await sleep(50);
  assert.is(gone.connected, false);
  assert.not.ok(h.th.hub.broker!.connectedEdges().includes('lib-gone'));
  await sleep(300); // the will reaches the published hook
  const after = (await h.devices.get('lib-gone'))!;
  assert.is(after.state, 'revoked');
  assert.is(after.online, 0);
  assert.is(after.lag, null);
  assert.is(after.last_seen_at, before.last_seen_at);
  // Out of the default list, in the revoked one.
  await page.goto(`${url}/console/edges`);
  assert.is(await page.locator('tr[data-edge="lib-gone"]').count(), 0);
  await page.goto(`${url}/console/edges?state=revoked`);
  assert.is(await page.locator('tr[data-edge="lib-gone"]').count(), 1);
  const audit = await c.get('/console/audit?action=device.revoke');
  assert.match(audit.text, 'stolen from the branch');
});

test('10,000 edges are filtered, searched, sorted, paged and exported on the server', async () => {
  const t0 = Date.now();
  await h.th.hub.store.sql.tx(async () => {
    for (let i = 0; i < 10_000; i++) {
      const id = `bulk-${String(i).padStart(5, '0')}`;
      await h.devices.enroll({ edgeId: id, serviceId: 'bulk', certSerial: i.toString(16), certFingerprint: `fp${i}`, notAfter: t0 + 86400_000 }, t0);
      if (i % 4 !== 0) await h.devices.recordStatus(id, { online: true, appliedSeq: i, version: i % 10 === 1 ? '1.1.0' : '1.2.0', health: i % 3 === 0 ? 'degraded' : 'ok', lag: i % 7, at: t0 }, false);
    }
  });
  const c = client(h);
  await c.signIn('ops');
  const first = await c.get('/console/edges?service=bulk');
  assert.is(first.status, 200);
  assert.match(first.text, /data-testid="showing">[^<]*10000/);
  assert.is(first.text.match(/<tr data-edge=/g)!.length, 50);
  const offline = await c.get('/console/edges?service=bulk&state=offline&page=3');
  assert.match(offline.text, /data-testid="showing">[^<]*2500/);
  assert.match(offline.text, 'data-edge="bulk-00400"'); // 3rd page of every 4th edge: 100..149 -> 00400
  const search = await c.get('/console/edges?q=bulk-0004');
  assert.is(search.text.match(/<tr data-edge=/g)!.length, 10);
  const desc = await c.get('/console/edges?service=bulk&sort=edge&dir=desc');
  assert.match(desc.text.slice(desc.text.indexOf('<tbody')), /^<tbody><tr data-edge="bulk-09999"/);
  const version = await c.get('/console/edges?service=bulk&version=1.1.0');
  assert.match(version.text, /data-testid="showing">[^<]*1000/);
  const bad = await c.get('/console/edges?state=sleepy');
  assert.is(bad.status, 400);
  const csv = await c.get('/console/edges.csv?service=bulk&state=degraded');
  assert.is(csv.headers.get('content-type'), 'text/csv; charset=utf-8');
  assert.is(csv.text.trim().split('\r\n').length, 1 + (await h.devices.page({ serviceId: 'bulk', state: 'degraded' })).total);
  // The overview counts the connected edges behind their change log, and the largest lag.
  let behind = 0;
  for (let i = 0; i < 10_000; i++) if (i % 4 !== 0 && i % 7 !== 0) behind++;
  const overview = await c.get('/console');
  assert.match(overview.text, new RegExp(`data-testid="count-behind"[^>]*>[\\s\\S]*?<b>${behind}</b>`));
  await page.goto(`${url}/console/edges?service=bulk`);
  await page.getByTestId('next-page').click();
  assert.match(page.url(), /page=2/);
  assert.is(await page.locator('table[data-testid=edges] tbody tr').first().getAttribute('data-edge'), 'bulk-00050');
});

test("a service administrator's list, counts and export hold their own service's edges only, whatever the URL asks", async () => {
  await h.addOperator('bulk-admin', 'service-admin', 'bulk');
  const c = client(h);
  await c.signIn('bulk-admin');
  const list = await c.get('/console/edges?service=library&q=lib-');
  assert.is(list.status, 200);
  assert.not.match(list.text, 'data-edge="lib-');
  const csv = await c.get('/console/edges.csv?service=library&state=all');
  assert.not.match(csv.text, 'lib-');
  assert.is(csv.text.trim().split('\r\n').length, 1 + 10_000);
  const other = await c.get('/console/edges/lib-ok');
  assert.is(other.status, 403);
  const overview = await c.get('/console');
  assert.match(overview.text, /data-testid="count-offline"[^>]*>[\s\S]*?<b>2500<\/b>/);
});

test("the operator API's actions are in the audit log, filtered by actor, action and service", async () => {
  const api = (method: string, path: string, body?: unknown) =>
    h.th.hub.app.request(path, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  assert.is((await api('POST', '/v1/admin/services', { id: 'api-made', name: 'Made by API' })).status, 201);
  const cred = (await (await api('POST', '/v1/admin/services/api-made/credentials', { label: 'pos' })).json()) as { id: string };
  assert.is((await api('DELETE', `/v1/admin/services/api-made/credentials/${cred.id}`)).status, 204);
  const c = client(h);
  await c.signIn('ops');
  const log = await c.get('/console/audit?actor=api%3Aadmin&service=api-made');
  for (const action of ['service.create', 'credential.issue', 'credential.revoke']) assert.match(log.text, action);
  const onlyCreate = await c.get('/console/audit?actor=api%3Aadmin&action=service.create');
  assert.not.match(onlyCreate.text, '>credential.issue<');
  const family = await c.get('/console/audit?action=credential&service=api-made');
  assert.match(family.text, '>credential.revoke<');
  const none = await c.get('/console/audit?from=2001-01-01&to=2001-01-02');
  assert.not.match(none.text, 'data-audit-id');
});

test('revoking a credential or a token asks for a reason too, and says what happened', async () => {
  const c = client(h);
  await c.signIn('ops');
  const cred = await h.th.hub.links.issueCredential('library', 'till');
  const t = await h.tokens.issue({ serviceId: 'library', edgeId: 'lib-spare', by: 'ops' });
  for (const [confirmPath, back, check] of [
    [
      `/console/services/library/credentials/${cred.id}/revoke`,
      '/console/services/library',
      async () => (await h.th.hub.linkRepo.credentials('library')).find((k) => k.id === cred.id)!.revoked_at !== null,
    ],
    [`/console/enrollments/${t.id}/revoke`, '/console/enrollments', async () => (await h.repo.token(t.id))!.revoked_at !== null],
  ] as const) {
    const confirm = await c.get(confirmPath);
    assert.is(confirm.status, 200);
    assert.match(confirm.text, 'data-testid="confirm"');
    const bare = await c.post(confirmPath, { reason: 'x' });
    assert.is(bare.status, 400);
    assert.match(bare.text, '>x</textarea>'); // what was typed comes back
    assert.is(await check(), false);
    const done = await c.post(confirmPath, { reason: 'no longer used' });
    assert.is(done.status, 303);
    assert.is(done.location, back);
    assert.is(await check(), true);
    assert.match((await c.get(back)).text, 'data-testid="done"');
  }
});

test('a refused form says why in Japanese and keeps what was typed', async () => {
  const c = client(h);
  await c.signIn('ops');
  await c.get('/console/services');
  const r = await c.post('/console/services', { id: 'Bad Id!', name: '港区立図書館', webhookUrl: 'ftp://x' });
  assert.is(r.status, 400);
  assert.match(r.text, '入力内容を確認してください。');
  assert.match(r.text, 'data-testid="error-id"');
  assert.match(r.text, 'data-testid="error-webhookUrl"');
  assert.not.match(r.text, 'data-testid="error-name"');
  assert.match(r.text, 'value="港区立図書館"');
  assert.match(r.text, 'value="Bad Id!"');
  const dup = await c.post('/console/services', { id: 'library', name: 'Again', webhookUrl: '' });
  assert.is(dup.status, 409);
  assert.match(dup.text, '同じIDのものが既にあります。');
});

test('an enrollment token warns when its edge id is enrolled or has an unused token, and the list says when each was used and by which edge', async () => {
  const c = client(h);
  await c.signIn('ops');
  await c.get('/console/enrollments');
  await c.post('/console/enrollments', { serviceId: 'library', edgeId: 'lib-ok', hours: '2' });
  const first = await c.get('/console/enrollments');
  assert.match(first.text, 'data-warning="enrolled"');
  assert.not.match(first.text, 'data-warning="unused"');
  await c.post('/console/enrollments', { serviceId: 'library', edgeId: 'lib-ok', hours: '2' });
  const second = await c.get('/console/enrollments');
  assert.match(second.text, 'data-warning="unused"');
  await c.post('/console/enrollments', { serviceId: 'library', edgeId: 'lib-brand-new', hours: '2' });
  assert.not.match((await c.get('/console/enrollments')).text, 'data-testid="issue-warnings"');
  // Used tokens (the ones the edges above enrolled with) say when, and for which edge.
  assert.match(second.text, /data-testid="used">[^<]*lib-degraded/);
  const audit = await c.get('/console/audit?action=enrollment.issue');
  assert.match(audit.text, 'edgeId=lib-ok');
});

test('every page in both languages, and the edge list on a phone (screenshots)', async () => {
  for (const lang of ['ja', 'en'] as const) {
    await page.goto(`${url}/console/lang/${lang}?next=/console`);
    for (const [name, path] of [
      ['overview', '/console'],
      ['services', '/console/services'],
      ['service', '/console/services/library'],
      ['edges', '/console/edges'],
      ['edge', '/console/edges/lib-degraded'],
      ['enrollments', '/console/enrollments'],
      ['audit', '/console/audit'],
      ['revocations', '/console/revocations'],
      ['confirm', '/console/edges/lib-ok/revoke'],
    ]) {
      await page.goto(`${url}${path}`);
      assert.is(await page.getAttribute('html', 'lang'), lang);
      await shoot(`${name}-${lang}`);
    }
  }
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${url}/console/edges`);
  const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
  assert.ok(overflow <= 1, `the edge list fits a phone (overflow ${overflow}px)`);
  await shoot('edges-phone-en', false);
  await page.goto(`${url}/console/edges/lib-degraded`);
  await shoot('edge-phone-en', false);
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.goto(`${url}/console`);
  await shoot('overview-tablet-en', false);
});

test.run();
