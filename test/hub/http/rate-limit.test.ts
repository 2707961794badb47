// Rate limits and the challenge store under attack: a host rotating through the addresses of its IPv6
// /64 is limited as one client, distinct IPv4 addresses are distinct clients (real sockets from
// 127.0.0.2 and 127.0.0.3), and a client flooding the challenge store fills only its own quota while
// another client's challenge is still issued.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { clientKeyOf } from '../../../hub/http/rate-limit.ts';
import { createChallengeStore } from '../../../hub/mykey/challenges.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';

const test = suite('rate limits and the challenge store');

test('a client is an IPv4 address or an IPv6 /64, whatever the spelling', () => {
  const table: [string | undefined, string][] = [
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['::ffff:c000:207', '192.0.2.7'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:0000:0000:0000:0009', '2001:db8:1:2::/64'],
    ['2001:DB8:1:2:a:b:c:d', '2001:db8:1:2::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['2001:db8:1:3::1', '2001:db8:1:3::/64'],
    ['::1', '0:0:0:0::/64'],
    ['not an address', 'unknown'],
    [undefined, 'unknown'],
  ];
  for (const [address, key] of table) assert.is(clientKeyOf(address), key, String(address));
});

/** A request as if from `address` (the hub's test seam: the Node bindings Hono reads the peer from). */
function from(h: TestHub, address: string, path: string, body: unknown): Promise<Response> {
  return Promise.resolve(
    h.hub.app.request(
      path,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
      { incoming: { socket: { remoteAddress: address, remoteFamily: address.includes(':') ? 'IPv6' : 'IPv4' } } },
    ),
  );
}

test('many addresses of one IPv6 /64 are rate-limited as one client; another /64 is not', async () => {
  const h = await startTestHub({ overrides: { rateLimits: { challenge: { perSecond: 0.01, burst: 5 } } } });
  try {
    const statuses: number[] = [];
    for (let i = 1; i <= 8; i++) statuses.push((await from(h, `2001:db8:aa:1::${i.toString(16)}:${(i * 7919).toString(16)}`, '/v1/challenges', { purpose: 'register' })).status);
    assert.equal(statuses, [201, 201, 201, 201, 201, 429, 429, 429]);
    const other = await from(h, '2001:db8:aa:2::1', '/v1/challenges', { purpose: 'register' });
    assert.is(other.status, 201, 'the neighbouring /64 is another client');
  } finally {
    await h.close();
  }
});

function realPost(url: string, localAddress: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', localAddress, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test('over real sockets, each IPv4 address is its own client', async () => {
  const h = await startTestHub({ overrides: { rateLimits: { challenge: { perSecond: 0.01, burst: 2 } } } });
  try {
    await h.hub.start();
    const url = new URL('/v1/challenges', h.hub.addresses.http).toString();
    const a: number[] = [];
    for (let i = 0; i < 3; i++) a.push(await realPost(url, '127.0.0.2', { purpose: 'register' }));
    assert.equal(a, [201, 201, 429]);
    assert.is(await realPost(url, '127.0.0.3', { purpose: 'register' }), 201);
  } finally {
    await h.close();
  }
});

test("one client flooding the challenge store gets challenge_quota_exceeded; another client's challenge is still issued", async () => {
  const h = await startTestHub({ overrides: { jpki: { challengesPerClient: 10 } } });
  try {
    const flood: number[] = [];
    const codes = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const r = await from(h, `2001:db8:bad:1:${i.toString(16)}::1`, '/v1/challenges', { purpose: 'status' });
      flood.push(r.status);
      if (r.status !== 201) codes.add(((await r.json()) as { code: string }).code);
    }
    assert.is(flood.filter((s) => s === 201).length, 10);
    assert.equal([...codes], ['challenge_quota_exceeded']);
    assert.is(flood.at(-1), 429);
    for (const client of ['2001:db8:600d:1::1', '198.51.100.4', '::ffff:198.51.100.5']) {
      const r = await from(h, client, '/v1/challenges', { purpose: 'status' });
      assert.is(r.status, 201, client);
    }
  } finally {
    await h.close();
  }
});

test('the store: a flooder never takes the last places, and its quota comes back as its challenges are used or expire', () => {
  let t = 0;
  const store = createChallengeStore({ ttlMs: 1000, maxOutstanding: 30, maxPerClient: 10, now: () => t, random: (k) => randomBytes(k) });
  const mine: string[] = [];
  for (let i = 0; i < 50; i++) {
    const r = store.issue({ operation: 'status' }, 'flooder');
    if (r.ok) mine.push(r.value.challenge);
    else assert.is(r.code, 'challenge_quota_exceeded');
  }
  assert.is(mine.length, 10);
  assert.ok(store.issue({ operation: 'status' }, 'bystander').ok);
  // Used challenges give the quota back at once.
  assert.ok(store.consume(mine[0], { operation: 'status' }).ok);
  assert.ok(store.issue({ operation: 'status' }, 'flooder').ok);
  assert.not.ok(store.issue({ operation: 'status' }, 'flooder').ok);
  // Expired ones give it back when they are swept.
  t += 1500;
  for (let i = 0; i < 10; i++) assert.ok(store.issue({ operation: 'status' }, 'flooder').ok, `after expiry ${i}`);
  assert.is(store.outstanding('flooder'), 10);
});

test('the store: full of used challenges kept for their precise errors, it drops those before refusing anyone', () => {
  const store = createChallengeStore({ ttlMs: 60_000, maxOutstanding: 30, maxPerClient: 10, now: () => 0, random: (k) => randomBytes(k) });
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 10; i++) {
      const r = store.issue({ operation: 'status' }, `client-${c}`);
      assert.ok(r.ok);
      if (r.ok) assert.ok(store.consume(r.value.challenge, { operation: 'status' }).ok);
    }
  }
  assert.is(store.size, 30);
  assert.ok(store.issue({ operation: 'status' }, 'newcomer').ok);
});

test.run();
