// Sign-in limits: attempts are counted before the password hash runs, so parallel guesses cannot
// outrun the limit; limits are per account name from one address, per client address (IPv4 address,
// IPv6 /64) with a back-off that doubles, and per account name over all addresses, which expires and
// never grows: a stranger hammering an account cannot keep its operator out, who signs in meanwhile
// from another address.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { addressKey } from '../../../hub/console/address-key.ts';
import { client, PASSWORD, serveConsoleHub, startConsoleHub, type ConsoleHub } from './helpers/console-hub.ts';

const test = suite('sign-in limits');

test('client addresses are counted by IPv4 address and by IPv6 /64', () => {
  const table: [string, string][] = [
    ['203.0.113.7', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['::ffff:cb00:7107', '203.0.113.7'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002:0:0:0:9', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['64:ff9b::192.0.2.33', '64:ff9b:0:0::/64'],
    ['local', 'local'],
    ['x'.repeat(100), 'x'.repeat(64)],
  ];
  for (const [raw, key] of table) assert.is(addressKey(raw), key, raw);
});

test('50 parallel guesses over HTTP get no more password checks than the limit, and the right password among them does not get in', async () => {
  const h = await startConsoleHub({ console: { lockout: { accountFailures: 5, addressFailures: 20 } } });
  const srv = await serveConsoleHub(h);
  try {
    await h.addOperator('ops', 'operator');
    const c = client(h, undefined, srv.url);
    await c.get('/console/login');
    // The attacker fires everything at once; the right password is the last of 50.
    const guesses = Array.from({ length: 50 }, (_, i) => (i === 49 ? PASSWORD : `wrong guess number ${i}`));
    const results = await Promise.all(guesses.map((password) => c.post('/console/login', { name: 'ops', password })));
    const statuses = results.map((r) => r.status);
    const checked = statuses.filter((s) => s === 401 || s === 303).length;
    assert.ok(checked <= 5, `password checks: ${checked} (${statuses.join(',')})`);
    assert.is(statuses.filter((s) => s === 429).length, 50 - checked);
    assert.is(statuses[49], 429, 'the right password came after the limit');
    // The audit trail agrees: at most 5 attempts reached the password check.
    const log = (await h.repo.auditLog({ limit: 1000 })).filter((a) => a.action === 'sign_in');
    assert.ok(log.filter((a) => a.outcome === 'failed' || a.outcome === 'ok').length <= 5);
  } finally {
    await srv.close();
    await h.close();
  }
});

test('while a stranger hammers an account from one address, its operator signs in from another', async () => {
  const h = await startConsoleHub({ console: { lockout: { accountFailures: 5, addressFailures: 20, accountTotalFailures: 100 } } });
  // Listening on '::' takes both loopbacks: the stranger comes from 127.0.0.1, the operator from ::1.
  const srv = await serveConsoleHub(h, '::');
  try {
    await h.addOperator('ops', 'operator');
    const port = new URL(srv.url).port;
    const stranger = client(h, undefined, `http://127.0.0.1:${port}`);
    await stranger.get('/console/login');
    const hammer = await Promise.all(Array.from({ length: 40 }, (_, i) => stranger.post('/console/login', { name: 'ops', password: `stranger guess ${i}` })));
    assert.ok(hammer.filter((r) => r.status === 429).length >= 35);
    assert.is((await stranger.post('/console/login', { name: 'ops', password: PASSWORD })).status, 429, 'the stranger address stays locked');
    const operator = client(h, undefined, `http://[::1]:${port}`);
    const res = await operator.signIn('ops');
    assert.is(res.status, 303, 'the operator from another address signs in');
    assert.is((await operator.get('/console')).status, 200);
    const addresses = (await h.repo.auditLog({ limit: 1000 })).filter((a) => a.action === 'sign_in').map((a) => `${a.outcome} ${JSON.parse(a.detail ?? '{}').address}`);
    assert.ok(addresses.includes('ok ::1'), addresses.join(','));
  } finally {
    await srv.close();
    await h.close();
  }
});

/** One sign-in attempt through a proxy that says the client is `xff`. */
async function attempt(h: ConsoleHub, name: string, password: string, xff: string): Promise<number> {
  const c = client(h);
  await c.get('/console/login');
  const body = new URLSearchParams({ name, password, _csrf: c.csrf });
  const res = await h.app.request('/console/login', {
    method: 'POST',
    body: body.toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://localhost', cookie: `mk_login=${c.jar.get('mk_login')}`, 'x-forwarded-for': xff },
  });
  return res.status;
}

test('an address that keeps guessing is locked for twice as long each time', async () => {
  const clock = { t: Date.parse('2026-11-25T09:00:00Z') };
  const h = await startConsoleHub({ clock, console: { trustForwardedFor: true, lockout: { accountFailures: 5, lockMs: 15 * 60_000 } } });
  try {
    await h.addOperator('ops', 'operator');
    const guess = async (n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push(await attempt(h, 'ops', `guess ${i}`, '198.51.100.7'));
      return out;
    };
    assert.equal(await guess(5), [401, 401, 401, 401, 429]);
    clock.t += 16 * 60_000;
    assert.equal(await guess(5), [401, 401, 401, 401, 429]);
    // Second lock: 30 minutes.
    clock.t += 16 * 60_000;
    assert.is(await attempt(h, 'ops', PASSWORD, '198.51.100.7'), 429);
    clock.t += 15 * 60_000;
    assert.equal(await guess(4), [401, 401, 401, 401]);
    assert.is(await attempt(h, 'ops', PASSWORD, '198.51.100.7'), 303, 'the right password after the lock ends');
  } finally {
    await h.close();
  }
});

test('guesses from many addresses lock the account everywhere, for lockMs only, never longer', async () => {
  const clock = { t: Date.parse('2026-11-25T09:00:00Z') };
  const h = await startConsoleHub({ clock, console: { trustForwardedFor: true, lockout: { accountFailures: 5, accountTotalFailures: 12, lockMs: 10 * 60_000 } } });
  try {
    await h.addOperator('ops', 'operator');
    for (let round = 0; round < 3; round++) {
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) statuses.push(await attempt(h, 'ops', 'botnet guess', `192.0.2.${round * 20 + i + 1}`));
      assert.is(statuses[11], 429, `round ${round}: ${statuses}`);
      assert.is(await attempt(h, 'ops', PASSWORD, '203.0.113.50'), 429, 'locked everywhere for now');
      clock.t += 10 * 60_000 + 1;
    }
    // Three locks later the account lock is still 10 minutes: it has ended.
    assert.is(await attempt(h, 'ops', PASSWORD, '203.0.113.50'), 303);
  } finally {
    await h.close();
  }
});

test('IPv6 addresses of one /64 share a counter; another /64 does not', async () => {
  const h = await startConsoleHub({ console: { trustForwardedFor: true, lockout: { addressFailures: 3 } } });
  try {
    const statuses = [
      await attempt(h, 'a1', 'nope nope nope', '2001:db8:1:2::1'),
      await attempt(h, 'a2', 'nope nope nope', '2001:db8:1:2::2'),
      await attempt(h, 'a3', 'nope nope nope', '2001:db8:1:2:ffff::3'),
    ];
    assert.equal(statuses, [401, 401, 429]);
    assert.is(await attempt(h, 'a4', 'nope nope nope', '2001:db8:1:2:abcd::9'), 429);
    assert.is(await attempt(h, 'a5', 'nope nope nope', '2001:db8:1:3::1'), 401);
  } finally {
    await h.close();
  }
});

test('successful sign-ins give their count back: an office behind one address is never locked by them', async () => {
  const h = await startConsoleHub({ console: { trustForwardedFor: true, lockout: { addressFailures: 5, accountFailures: 3 } } });
  try {
    await h.addOperator('ops', 'operator');
    for (let i = 0; i < 12; i++) assert.is(await attempt(h, 'ops', PASSWORD, '203.0.113.9'), 303, `sign-in ${i}`);
    assert.is(await attempt(h, 'ops', 'one typo here', '203.0.113.9'), 401);
    assert.is(await attempt(h, 'ops', PASSWORD, '203.0.113.9'), 303);
  } finally {
    await h.close();
  }
});

test.run();
