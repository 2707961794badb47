// The hub's start and stop (hub/main.ts over shared/lifecycle.ts), through real sockets: the
// components start in order and stop in reverse, and a start that fails half-way (the HTTP port is
// taken) closes what had opened, so nothing keeps listening.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHubConfig } from '../../hub/config.ts';
import { createHub } from '../../hub/main.ts';
import { createLogger } from '../../shared/log.ts';

async function hubAt(dir: string, httpPort = 0) {
  const lines: { name?: string; msg?: string; component?: string }[] = [];
  const log = createLogger('hub', { level: 'info', json: true, write: (l) => lines.push(JSON.parse(l)) });
  const config = loadHubConfig({
    env: {},
    overrides: { dataDir: dir, http: { host: '127.0.0.1', port: httpPort }, broker: { host: '127.0.0.1', port: 0 }, devices: { httpsHost: '127.0.0.1', httpsPort: 0 } },
  });
  return { hub: await createHub(config, { log }), lines };
}

/** The components named in the lifecycle log lines ending in `what`, in log order. */
const logged = (lines: { name?: string; msg?: string; component?: string }[], what: 'started' | 'stopped') =>
  lines.filter((l) => l.name === 'hub.lifecycle' && l.msg === `${l.component} ${what}`).map((l) => l.component);

/** Resolves true when something accepts a TCP connection at host:port, false when it is refused. */
const accepts = (url: string) =>
  new Promise<boolean>((resolve) => {
    const { hostname, port } = new URL(url);
    const s = connect({ host: hostname, port: Number(port) });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

test('a hub starts its components in order and stops them in reverse', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-lifecycle-'));
  try {
    const { hub, lines } = await hubAt(dir);
    await hub.start();
    const order = ['device-ca', 'broker', 'device-enrollment', 'outbox', 'crl-schedule', 'webhooks', 'rekey', 'http-device', 'http-public'];
    assert.equal(logged(lines, 'started'), order);
    for (const url of [hub.addresses.http!, hub.addresses.deviceApi!, hub.addresses.mqtts!]) assert.ok(await accepts(url), url);
    await hub.stop();
    assert.equal(logged(lines, 'stopped'), [...order].reverse());
    for (const url of [hub.addresses.http!, hub.addresses.deviceApi!, hub.addresses.mqtts!]) assert.not.ok(await accepts(url), url);
    // A second stop stops nothing again.
    await hub.stop();
    assert.is(logged(lines, 'stopped').length, order.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a hub whose HTTP port is taken fails to start and leaves neither the broker nor the device API listening', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-lifecycle-'));
  const taken: Server = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  try {
    const { hub, lines } = await hubAt(dir, (taken.address() as AddressInfo).port);
    await hub.start().then(
      () => assert.unreachable('the start should fail'),
      (e: NodeJS.ErrnoException) => assert.is(e.code, 'EADDRINUSE'),
    );
    assert.ok(lines.some((l) => l.name === 'hub.lifecycle' && l.component === 'http-public' && /failed to start/.test(l.msg ?? '')));
    // What had started was stopped, last first.
    assert.equal(logged(lines, 'stopped'), ['http-device', 'rekey', 'webhooks', 'crl-schedule', 'outbox', 'device-enrollment', 'broker', 'device-ca']);
    assert.not.ok(await accepts(hub.addresses.mqtts!), 'the broker no longer listens');
    assert.not.ok(await accepts(hub.addresses.deviceApi!), 'the device API no longer listens');
    // Stopping the hub afterwards stops nothing twice.
    await hub.stop();
    assert.is(logged(lines, 'stopped').length, 8);
  } finally {
    await new Promise((r) => taken.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a hub that never started stops cleanly and closes its store', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-lifecycle-'));
  try {
    const { hub, lines } = await hubAt(dir);
    await hub.stop();
    assert.not.ok(hub.db.open);
    assert.equal(logged(lines, 'stopped'), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
