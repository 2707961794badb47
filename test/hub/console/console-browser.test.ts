// The operator console in a real headless Chromium against the hub on a loopback port: sign in
// (wrong, then right), create a service, issue a credential and an enrollment token, redeem it with
// a CSR, see the edge come online with its lag chart, see a revocation run, switch language, sign
// out. Screenshots of the overview in both languages land in CONSOLE_SCREENSHOTS (or a temp dir).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { edgeStatusTopic } from '../../../shared/topics.ts';
import { createDeviceCsr, derToPem } from '../../../hub/pki/device-ca.ts';
import { initCaDir, type CaDir } from '../../../provisioning/test-ca/store.ts';
import { sharedKeyPair } from '../../helpers/hub.ts';
import { connectEdgeMqtt } from '../../helpers/enrolled-edge.ts';
import { PASSWORD, serveConsoleHub, startConsoleHub, type ConsoleHub } from './helpers/console-hub.ts';

const test = suite('console in Chromium');
let h: ConsoleHub;
let caDir: CaDir;
let caTmp: string;
let served: Awaited<ReturnType<typeof serveConsoleHub>> | undefined;
let url: string;
let browser: Browser;
let page: Page;
const shots = process.env.CONSOLE_SCREENSHOTS ?? join(tmpdir(), 'mykey-console-shots');

test.before(async () => {
  caTmp = mkdtempSync(join(tmpdir(), 'mykey-console-ca-'));
  caDir = await initCaDir(join(caTmp, 'ca'));
  // Ports chosen by the system: other hubs on this machine may hold the default broker port.
  h = await startConsoleHub({ ca: caDir.ca, overrides: { broker: { port: 0 }, devices: { httpsPort: 0 } } });
  await h.addOperator('ops', 'operator');
  served = await serveConsoleHub(h);
  url = served.url;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(10_000);
});

test.after(async () => {
  await browser?.close();
  await served?.close();
  await h?.close();
  rmSync(caTmp, { recursive: true, force: true });
});

test('signs in after a wrong password, in Japanese by default', async () => {
  await page.goto(`${url}/console`);
  assert.match(page.url(), /\/console\/login$/);
  assert.is(await page.getAttribute('html', 'lang'), 'ja');
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, 'sign-in-ja.png') });
  await page.fill('input[name=name]', 'ops');
  await page.fill('input[name=password]', 'not the password at all');
  await page.click('button[type=submit]');
  assert.match((await page.getByTestId('sign-in-error').textContent())!, '運用者名またはパスワードが違います');
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(`${url}/console`);
  assert.is(await page.getByTestId('operator').textContent(), 'ops');
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'mk_session')!;
  assert.ok(session.httpOnly);
  assert.is(session.sameSite, 'Strict');
});

test('creates a service and issues an API credential that the service API accepts', async () => {
  await page.click('nav >> text=サービス');
  await page.fill('input[name=id]', 'library');
  await page.fill('input[name=name]', '中央図書館');
  await page.getByTestId('create-service').click();
  await page.waitForSelector('text=サービスを作成しました');
  await page.fill('input[name=label]', 'pos-1');
  await page.getByTestId('issue-credential').click();
  const token = (await page.getByTestId('issued-token').textContent())!.trim();
  assert.match(token, /^mk_cred_[0-9a-f]{12}\./);
  assert.is((await h.th.hub.links.authenticate(token))?.serviceId, 'library');
  assert.match((await page.getByTestId('credentials').textContent())!, 'pos-1');
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, 'service-ja.png'), fullPage: true });
  // A second service so the overview shows more than one.
  await page.click('nav >> text=サービス');
  await page.fill('input[name=id]', 'museum');
  await page.fill('input[name=name]', '市立美術館');
  await page.getByTestId('create-service').click();
  await page.waitForSelector('text=サービスを作成しました');
});

test('issues an enrollment token; redeeming it enrolls the edge, which then shows online with its lag chart', async () => {
  await page.click('nav >> text=登録トークン');
  await page.selectOption('select[name=serviceId]', 'library');
  await page.fill('input[name=edgeId]', 'library-main-01');
  await page.getByTestId('issue-enrollment').click();
  const token = (await page.getByTestId('issued-enrollment-token').textContent())!.trim();
  assert.match(token, /^mket_/);
  assert.match((await page.getByTestId('enrollment-tokens').textContent())!, '未使用');
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, 'enrollments-ja.png'), fullPage: true });

  // The technician's side: a CSR from the new device, over real HTTP.
  const csr = await createDeviceCsr('library-main-01');
  const csrPem = derToPem(csr.csrDer, 'CERTIFICATE REQUEST');
  const res = await fetch(`${url}/v1/enrollments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, edgeId: 'library-main-01', csrPem }) });
  assert.is(res.status, 201);
  const enrolled = (await res.json()) as { certPem: string; caPem: string };
  const again = await fetch(`${url}/v1/enrollments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, edgeId: 'library-main-01', csrPem }) });
  assert.is(again.status, 409);

  await page.reload();
  assert.match((await page.getByTestId('enrollment-tokens').textContent())!, '使用済み');
  await page.click('nav >> text=エッジ端末');
  assert.match((await page.locator('tr[data-edge="library-main-01"]').textContent())!, 'オフライン');

  // The edge connects to the hub's broker over TLS with its new certificate and reports its status.
  await h.th.hub.start();
  const edge = await connectEdgeMqtt(
    h.th.hub,
    'library-main-01',
    { ...enrolled, keyPem: csr.keyPem },
    {
      will: {
        topic: edgeStatusTopic('library-main-01'),
        payload: Buffer.from(JSON.stringify({ edgeId: 'library-main-01', serviceId: 'library', online: false, appliedSeq: 0, version: '0.1.0', health: 'ok', at: new Date().toISOString() })),
        qos: 1,
        retain: true,
      },
    },
  );
  await edge.publishAsync(
    edgeStatusTopic('library-main-01'),
    JSON.stringify({ edgeId: 'library-main-01', serviceId: 'library', online: true, appliedSeq: 0, version: '0.1.0', health: 'ok', at: new Date().toISOString() }),
    { qos: 1, retain: true },
  );
  for (let i = 0; i < 100 && !(await h.devices.get('library-main-01'))?.online; i++) await new Promise((r) => setTimeout(r, 50));
  await page.reload();
  assert.match((await page.locator('tr[data-edge="library-main-01"]').textContent())!, '正常');

  // Its lag history, as the broker samples it over the last 40 minutes.
  const t0 = Date.now() - 40 * 60_000;
  const lags = [0, 0, 3, 12, 7, 2, 0, 0, 5, 1, 0];
  for (const [i, lag] of lags.entries()) await h.devices.recordStatus('library-main-01', { online: true, appliedSeq: 10 + i, version: '0.1.0', health: 'ok', lag, at: t0 + i * 4 * 60_000 }, true);
  await h.devices.enroll({ edgeId: 'library-branch-02', serviceId: 'library', certSerial: '02', certFingerprint: 'e'.repeat(64), notAfter: Date.now() + 365 * 86400_000 }, Date.now());
  await page.reload();
  const row = (await page.locator('tr[data-edge="library-main-01"]').textContent())!;
  assert.match(row, '正常');
  assert.match(row, '0.1.0');
  assert.is(await page.locator('tr[data-edge="library-main-01"] svg.spark path.line').count(), 1);
  await page.click('a:text("library-main-01")');
  assert.is(await page.locator('main svg.chart:not(.spark) path.line').count(), 1);
  // Its connection drops: the will takes it offline.
  await edge.endAsync(true);
  for (let i = 0; i < 100 && (await h.devices.get('library-main-01'))?.online; i++) await new Promise((r) => setTimeout(r, 50));
  await page.click('nav >> text=エッジ端末');
  assert.match((await page.locator('tr[data-edge="library-main-01"]').textContent())!, 'オフライン');
});

test('a CRL applied through the CRL manager shows as a revocation run with what it suspended', async () => {
  // Three holders register; two link to the library; one certificate is then revoked.
  const certs = await Promise.all([1, 2, 3].map(async () => caDir.issue({ keyPair: await sharedKeyPair() })));
  const ids: string[] = [];
  for (const cert of certs) {
    const r = await h.th.request('/v1/mykey-ids', { proof: await h.th.proof(cert) });
    assert.is(r.status, 201);
    ids.push(((await r.json()) as { mykeyId: string }).mykeyId);
  }
  await h.th.hub.links.link({ serviceId: 'library', mykeyId: ids[0], serviceUserId: 'L-0001', by: 'test' });
  await h.th.hub.links.link({ serviceId: 'library', mykeyId: ids[1], serviceUserId: 'L-0002', by: 'test' });
  await h.th.hub.links.link({ serviceId: 'museum', mykeyId: ids[2], serviceUserId: 'M-0001', by: 'test' });
  await caDir.revoke(certs[1].serialHex, 'keyCompromise');
  const run = await h.th.hub.crlManager.apply(await caDir.publishCrl(), 'http://crl.jpki.example/user-auth.crl');
  assert.is(run.newlySuspended, 1);

  await page.click('nav >> text=失効確認');
  const runs = (await page.getByTestId('revocation-runs').textContent())!;
  assert.match(runs, 'http://crl.jpki.example/user-auth.crl');
  assert.match(runs, '成功');
  assert.match((await page.getByTestId('crls').textContent())!, 'http://crl.jpki.example/user-auth.crl');
  await page.click('nav >> text=概要');
  assert.match((await page.getByTestId('revocation-status').textContent())!, 'user-auth.crl');
  assert.match((await page.getByTestId('mykey-counts').textContent())!, '一時停止 1');
});

test('the overview reads well in both languages (screenshots), and the switch keeps the page', async () => {
  mkdirSync(shots, { recursive: true });
  await page.goto(`${url}/console`);
  await page.screenshot({ path: join(shots, 'overview-ja.png'), fullPage: true });
  await page.getByTestId('lang-switch').click();
  await page.waitForURL(`${url}/console`);
  assert.is(await page.getAttribute('html', 'lang'), 'en');
  assert.match((await page.locator('h1').textContent())!, 'Overview');
  assert.match((await page.getByTestId('links-per-service').textContent())!, '中央図書館');
  await page.screenshot({ path: join(shots, 'overview-en.png'), fullPage: true });
  await page.click('nav >> text=Edges');
  await page.click('a:text("library-main-01")');
  await page.screenshot({ path: join(shots, 'edge-en.png'), fullPage: true });
  await page.click('nav >> text=Audit log');
  const audit = (await page.getByTestId('audit').textContent())!;
  for (const a of ['sign_in', 'service.create', 'credential.issue', 'enrollment.issue', 'enrollment.redeem']) assert.match(audit, a);
  // Reloading the page a form led to repeats nothing (Post/Redirect/Get).
  assert.is((await h.repo.auditLog()).filter((a) => a.action === 'enrollment.issue').length, 1);
  await page.screenshot({ path: join(shots, 'audit-en.png'), fullPage: true });
  await page.getByTestId('lang-switch').click();
  assert.is(await page.getAttribute('html', 'lang'), 'ja');
});

test('signs out: the session is gone and pages lead back to sign-in', async () => {
  await page.getByTestId('sign-out').click();
  await page.waitForURL(/\/console\/login\?bye=1$/);
  assert.match((await page.locator('.flash.info').textContent())!, 'サインアウトしました');
  await page.goto(`${url}/console/services`);
  assert.match(page.url(), /\/console\/login/);
  assert.ok((await h.repo.auditLog()).some((a) => a.actor === 'ops' && a.action === 'sign_out'));
});

test.run();
