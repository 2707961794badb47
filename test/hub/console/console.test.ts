// The operator console through the hub's HTTP stack, in process: sign-in and lockout, sessions and
// their expiry, CSRF, roles, and the audit trail of every action.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { client, PASSWORD, startConsoleHub, type ConsoleHub } from './helpers/console-hub.ts';

const test = suite('console');
const clock = { t: Date.parse('2026-11-25T09:00:00Z') };
let h: ConsoleHub;

test.before(async () => {
  h = await startConsoleHub({ clock, console: { lockout: { accountFailures: 5, addressFailures: 12 } } });
  await h.th.hub.links.createService({ id: 'library', name: '中央図書館' });
  await h.th.hub.links.createService({ id: 'museum', name: 'Museum' });
  await h.addOperator('ops', 'operator');
  await h.addOperator('lib-admin', 'service-admin', 'library');
});
test.after(() => h.close());

const actions = async () => (await h.repo.auditLog({ limit: 1000 })).map((r) => `${r.actor} ${r.action} ${r.outcome}`);

test('pages need a session: unsigned requests go to the sign-in page', async () => {
  const c = client(h);
  const r = await c.get('/console/services');
  assert.is(r.status, 303);
  assert.is(r.location, '/console/login');
  const login = await c.get('/console/login');
  assert.is(login.status, 200);
  assert.match(login.text, 'サインイン');
  assert.match(login.headers.get('content-security-policy') ?? '', "default-src 'none'");
});

test('a wrong password is refused, the right one signs in with an HttpOnly SameSite=Strict session cookie', async () => {
  const c = client(h);
  await c.get('/console/login');
  const bad = await c.post('/console/login', { name: 'ops', password: 'not the password' });
  assert.is(bad.status, 401);
  assert.match(bad.text, '運用者名またはパスワードが違います');
  const good = await c.post('/console/login', { name: 'ops', password: PASSWORD });
  assert.is(good.status, 303);
  assert.is(good.location, '/console');
  const cookie = good.headers.getSetCookie().find((l) => l.startsWith('mk_session='))!;
  assert.ok(cookie);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.match(cookie, /Path=\/console/);
  assert.not.match(cookie, /Secure/); // plain http in this test
  const page = await c.get('/console');
  assert.is(page.status, 200);
  assert.match(page.text, '中央図書館');
  assert.ok((await actions()).includes('ops sign_in failed'));
  assert.ok((await actions()).includes('ops sign_in ok'));
});

test('the session cookie is Secure when the console is served over https', async () => {
  const res = await h.app.request('https://hub.example/console/login');
  const login = res.headers.getSetCookie().find((l) => l.startsWith('mk_login='))!;
  assert.match(login, /Secure/);
  assert.match(login, /HttpOnly/);
});

test('sign-in posts need the login form token and a same-origin Origin', async () => {
  const c = client(h);
  await c.get('/console/login');
  assert.is((await c.post('/console/login', { name: 'ops', password: PASSWORD }, { csrf: 'forged' })).status, 403);
  assert.is((await c.post('/console/login', { name: 'ops', password: PASSWORD }, { origin: 'https://evil.example' })).status, 403);
  const fresh = client(h); // no login cookie at all
  assert.is((await fresh.post('/console/login', { name: 'ops', password: PASSWORD }, { csrf: 'x' })).status, 403);
});

test('state-changing forms are refused without the session CSRF token or from another Origin', async () => {
  const c = client(h);
  await c.signIn('ops');
  await c.get('/console/services');
  const noToken = await c.post('/console/services', { id: 'csrf-a', name: 'A' }, { csrf: null });
  assert.is(noToken.status, 403);
  assert.match(noToken.text, 'csrf-refused');
  const wrongToken = await c.post('/console/services', { id: 'csrf-a', name: 'A' }, { csrf: 'A'.repeat(43) });
  assert.is(wrongToken.status, 403);
  const wrongOrigin = await c.post('/console/services', { id: 'csrf-a', name: 'A' }, { origin: 'https://evil.example' });
  assert.is(wrongOrigin.status, 403);
  const noOrigin = await c.post('/console/services', { id: 'csrf-a', name: 'A' }, { origin: null });
  assert.is(noOrigin.status, 403);
  assert.is(await h.th.hub.linkRepo.service('csrf-a'), undefined);
  const ok = await c.post('/console/services', { id: 'csrf-a', name: 'A' });
  assert.is(ok.status, 303);
  assert.is(ok.location, '/console/services/csrf-a');
  assert.ok(await h.th.hub.linkRepo.service('csrf-a'));
  // Another session's token does not work either: tokens are bound to their session.
  const other = client(h);
  await other.signIn('ops');
  await other.get('/console/services');
  const cross = await c.post('/console/services', { id: 'csrf-b', name: 'B' }, { csrf: other.csrf });
  assert.is(cross.status, 403);
  assert.ok((await actions()).some((a) => a.startsWith('ops csrf.refused forbidden')));
});

test('an account locks after 5 failures: even the right password is refused until the lock ends', async () => {
  await h.addOperator('locky', 'operator');
  const c = client(h);
  await c.get('/console/login');
  for (let i = 0; i < 4; i++) assert.is((await c.post('/console/login', { name: 'locky', password: `wrong ${i} password` })).status, 401);
  const fifth = await c.post('/console/login', { name: 'locky', password: 'wrong again, fifth' });
  assert.is(fifth.status, 429);
  assert.match(fifth.text, '一時的にロックしています');
  assert.match(fifth.text, /約 15 分後/);
  const right = await c.post('/console/login', { name: 'locky', password: PASSWORD });
  assert.is(right.status, 429);
  assert.ok((await actions()).includes('locky sign_in locked'));
  // Other accounts are not affected by this account's lock.
  assert.is((await client(h).signIn('ops')).status, 303);
  clock.t += 16 * 60_000;
  assert.is((await c.post('/console/login', { name: 'locky', password: PASSWORD })).status, 303);
});

test('an address locks after repeated failures across account names, with an English message when asked', async () => {
  const c = client(h);
  await c.get('/console/lang/en?next=/console/login');
  await c.get('/console/login');
  let last = 0;
  let text = '';
  for (let i = 0; i < 12; i++) {
    const r = await c.post('/console/login', { name: `nobody${i}`, password: 'guessing a password' });
    last = r.status;
    text = r.text;
  }
  assert.is(last, 429);
  assert.match(text, 'Too many failed sign-ins');
  // The real operator from the same address has to wait too.
  assert.is((await c.post('/console/login', { name: 'ops', password: PASSWORD })).status, 429);
  clock.t += 16 * 60_000;
  assert.is((await c.post('/console/login', { name: 'ops', password: PASSWORD })).status, 303);
});

test('behind a proxy the lockout counts the forwarded client address, not the proxy', async () => {
  const px = await startConsoleHub({ clock, console: { trustForwardedFor: true, lockout: { addressFailures: 3 } } });
  try {
    await px.addOperator('ops', 'operator');
    const attempt = async (name: string, xff: string) => {
      const c = client(px);
      await c.get('/console/login');
      const body = new URLSearchParams({ name, password: 'wrong wrong wrong', _csrf: c.csrf });
      const res = await px.app.request('/console/login', {
        method: 'POST',
        body: body.toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://localhost', cookie: `mk_login=${c.jar.get('mk_login')}`, 'x-forwarded-for': xff },
      });
      return res.status;
    };
    assert.equal([await attempt('a1', '10.0.0.9, 192.0.2.1'), await attempt('a2', '192.0.2.1'), await attempt('a3', '192.0.2.1')], [401, 401, 429]);
    assert.is(await attempt('b1', '192.0.2.2'), 401);
  } finally {
    await px.close();
  }
});

test('a session ends after 30 idle minutes and after 12 hours in any case; sign-out ends it at once', async () => {
  const c = client(h);
  await c.signIn('ops');
  clock.t += 29 * 60_000;
  assert.is((await c.get('/console')).status, 200);
  clock.t += 31 * 60_000;
  const idle = await c.get('/console');
  assert.is(idle.status, 303);
  assert.is(idle.location, '/console/login?expired=1');

  const d = client(h);
  await d.signIn('ops');
  for (let i = 0; i < 25; i++) {
    clock.t += 29 * 60_000;
    const r = await d.get('/console');
    if (i < 24) assert.is(r.status, 200, `still alive after ${(i + 1) * 29} min`);
    else assert.is(r.status, 303, 'ended after 12 h');
  }

  const e = client(h);
  await e.signIn('ops');
  const page = await e.get('/console');
  assert.is(page.status, 200);
  const out = await e.post('/console/logout', {});
  assert.is(out.status, 303);
  assert.is(out.location, '/console/login?bye=1');
  assert.is((await e.get('/console')).status, 303);
  assert.is(await h.repo.session('x'), undefined);
});

test('a service administrator sees and manages only their own service', async () => {
  const c = client(h);
  assert.is((await c.signIn('lib-admin')).status, 303);
  const overview = await c.get('/console');
  assert.match(overview.text, '中央図書館');
  assert.not.match(overview.text, 'Museum');
  assert.not.match(overview.text, 'mykey-counts'); // platform-wide counts are the operator's
  const list = await c.get('/console/services');
  assert.match(list.text, '/console/services/library');
  assert.not.match(list.text, '/console/services/museum');
  assert.is((await c.get('/console/services/library')).status, 200);
  assert.is((await c.get('/console/services/museum')).status, 403);
  assert.is((await c.get('/console/services/nonexistent')).status, 403);
  assert.is((await c.get('/console/revocations')).status, 403);
  await c.get('/console/enrollments');
  assert.is((await c.post('/console/enrollments', { serviceId: 'museum', edgeId: 'museum-01', hours: '24' })).status, 403);
  assert.is((await c.post('/console/services/museum/credentials', { label: 'x' })).status, 403);
  assert.is((await c.post('/console/services', { id: 'mine', name: 'Mine' })).status, 403);
  const own = await c.post('/console/services/library/credentials', { label: 'pos' });
  assert.is(own.status, 303);
  // An edge of another service is not theirs either.
  await h.devices.enroll({ edgeId: 'museum-edge', serviceId: 'museum', certSerial: '01', certFingerprint: 'f'.repeat(64), notAfter: clock.t + 86400_000 }, clock.t);
  assert.is((await c.get('/console/edges/museum-edge')).status, 403);
  assert.not.match((await c.get('/console/edges')).text, 'museum-edge');
  // Their audit page shows their service's entries only.
  const audit = await c.get('/console/audit');
  assert.match(audit.text, 'credential.issue');
  assert.not.match(audit.text, 'csrf-a');
  assert.ok((await actions()).includes('lib-admin service.view forbidden'));
  assert.ok((await actions()).includes('lib-admin enrollment.issue forbidden'));
});

test('an operator revokes an edge device certificate from its page', async () => {
  await h.devices.enroll({ edgeId: 'worn-out-01', serviceId: 'library', certSerial: '0a', certFingerprint: 'a'.repeat(64), notAfter: clock.t + 86400_000 }, clock.t);
  const admin = client(h);
  await admin.signIn('lib-admin');
  assert.is((await admin.get('/console/edges/worn-out-01')).status, 200); // their service's edge
  const c = client(h);
  await c.signIn('ops');
  const page = await c.get('/console/edges/worn-out-01');
  assert.match(page.text, '/console/edges/worn-out-01/revoke');
  const r = await c.post('/console/edges/worn-out-01/revoke', { reason: 'worn out in a test' });
  assert.is(r.status, 303);
  assert.is((await h.devices.get('worn-out-01'))!.status, 'revoked');
  assert.ok(await h.devices.isCertRevoked('a'.repeat(64)));
  assert.match((await c.get('/console/edges/worn-out-01')).text, '失効済み');
  assert.ok((await actions()).includes('ops device.revoke ok'));
  // Revoking again changes nothing and says so in the audit.
  await c.post('/console/edges/worn-out-01/revoke', { reason: 'worn out in a test' });
  assert.ok((await actions()).includes('ops device.revoke device_revoked'));
});

test('every operator action is audited, and the audit log cannot be changed', async () => {
  const c = client(h);
  await c.signIn('ops');
  await c.get('/console/services');
  const created = await c.post('/console/services', { id: 'audited', name: 'Audited', webhookUrl: 'https://example.invalid/hook' });
  assert.is(created.status, 303);
  // The webhook secret is shown once, on the page the post leads to, and not again.
  const first = await c.get(created.location!);
  assert.match(first.text, 'data-testid="webhook-secret"');
  assert.not.match((await c.get(created.location!)).text, 'data-testid="webhook-secret"');
  const posted = await c.post('/console/services/audited/credentials', { label: 'till' });
  assert.is(posted.status, 303);
  const issued = await c.get(posted.location!);
  assert.match(issued.text, /data-testid="issued-token">mk_cred_/);
  const credId = /cred_[0-9a-f]{12}/.exec(issued.text)![0];
  assert.is((await c.post(`/console/services/audited/credentials/${credId}/revoke`, { reason: 'retired in a test' })).status, 303);
  assert.is((await c.post('/console/services/audited/webhook', { url: '' })).status, 303);
  const issuedTok = await c.post('/console/enrollments', { serviceId: 'audited', edgeId: 'audited-01', hours: '24' });
  assert.is(issuedTok.status, 303);
  const tok = await c.get(issuedTok.location!);
  const tokenId = /data-token="([0-9a-f]{12})"/.exec(tok.text)![1];
  assert.is((await c.post(`/console/enrollments/${tokenId}/revoke`, { reason: 'retired in a test' })).status, 303);
  await c.post('/console/logout', {});
  const mine = (await h.repo.auditLog({ limit: 1000 })).filter((r) => r.actor === 'ops').map((r) => `${r.action} ${r.target ?? ''} ${r.outcome}`);
  for (const want of [
    'service.create audited ok',
    `credential.issue ${credId} ok`,
    `credential.revoke ${credId} ok`,
    'webhook.set audited ok',
    `enrollment.issue mket_${tokenId} ok`,
    `enrollment.revoke mket_${tokenId} ok`,
    'sign_out  ok',
    'sign_in  ok',
  ])
    assert.ok(mine.includes(want), `audit has "${want}"`);
  assert.ok((await h.repo.auditLog({ limit: 1000 })).some((r) => r.actor === 'cli' && r.action === 'operator.add' && r.target === 'lib-admin'));
  await h.th.hub.store.sql.run("UPDATE audit_log SET actor = 'someone'").then(
    () => assert.unreachable('an update'),
    (e) => assert.match(String(e), /append-only/),
  );
  await h.th.hub.store.sql.run('DELETE FROM audit_log').then(
    () => assert.unreachable('a delete'),
    (e) => assert.match(String(e), /append-only/),
  );
  // No page shows the token secret again, and the audit never holds it.
  const token = /mket_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}/.exec(tok.text)![0];
  assert.not.ok(JSON.stringify(await h.repo.auditLog({ limit: 1000 })).includes(token.split('.')[1]));
});

test('what operators type is escaped in pages, and unknown console paths answer 404', async () => {
  const c = client(h);
  await c.signIn('ops');
  await c.get('/console/services');
  const r = await c.post('/console/services', { id: 'escaped', name: '<img src=x onerror=alert(1)>' });
  const page = await c.get(r.location!);
  assert.not.match(page.text, '<img src=x');
  assert.match(page.text, '&lt;img src=x onerror=alert(1)&gt;');
  assert.is((await c.get('/console/no/such/page')).status, 404);
});

test('the language switch sets a cookie and only redirects back into the console', async () => {
  const c = client(h);
  const r = await c.get('/console/lang/en?next=/console/login');
  assert.is(r.status, 303);
  assert.is(r.location, '/console/login');
  assert.match((await c.get('/console/login')).text, 'Sign in');
  assert.is((await c.get('/console/lang/ja?next=https://evil.example/')).location, '/console');
  assert.is((await c.get('/console/lang/ja?next=//evil.example/x')).location, '/console');
  assert.match((await c.get('/console/login')).text, 'サインイン');
});

test.run();
