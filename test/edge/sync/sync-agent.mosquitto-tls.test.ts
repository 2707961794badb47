// The agent against a stock Mosquitto speaking TLS that demands client certificates (as the hub's
// broker does), and a device API over HTTPS that demands them too: the TLS material the agent is
// given (ca, cert, key) is what both connections present. Certificates made with openssl.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeCache } from '../../../edge/cache/edge-cache.ts';
import { EdgeState } from '../../../edge/state/edge-state.ts';
import { SyncAgent } from '../../../edge/sync/sync-agent.ts';
import { startMosquitto } from './helpers/brokers.ts';
import { FakeHub } from './helpers/fake-hub.ts';
import { until } from '../../helpers/polling.ts';

const dir = mkdtempSync(join(tmpdir(), 'mosq-tls-'));
const f = (n: string) => join(dir, n);
const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

function certificates(): void {
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('ca.key'));
  openssl('req', '-x509', '-new', '-key', f('ca.key'), '-subj', '/CN=Test device CA', '-days', '2', '-out', f('ca.pem'));
  const leaf = (name: string, subj: string, ext: string) => {
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f(`${name}.key`));
    openssl('req', '-new', '-key', f(`${name}.key`), '-subj', subj, '-out', f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), ext);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`));
  };
  leaf('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('edge', '/CN=edge-tls-1', 'extendedKeyUsage=clientAuth\n');
  leaf('hub', '/CN=hub', 'extendedKeyUsage=clientAuth\n');
  // Mosquitto started as root reads its files after dropping to its own user.
  chmodSync(dir, 0o755);
  for (const n of readdirSync(dir)) chmodSync(f(n), 0o644);
}

test('syncs with Mosquitto and the device API over TLS with its client certificate', async () => {
  certificates();
  const read = (n: string) => readFileSync(f(n), 'utf8');
  const broker = await startMosquitto({ cafile: f('ca.pem'), certfile: f('server.pem'), keyfile: f('server.key') });
  const hub = new FakeHub({
    edgeId: 'edge-tls-1',
    brokerUrl: broker.url,
    tls: { key: read('server.key'), cert: read('server.pem'), ca: read('ca.pem'), client: { key: read('hub.key'), cert: read('hub.pem') } },
  });
  const stateDir = mkdtempSync(join(tmpdir(), 'sync-tls-'));
  const cache = new EdgeCache();
  const state = new EdgeState({ dir: stateDir });
  await state.open(cache);
  try {
    await hub.start();
    hub.link('TTTT2222', 'TLS-1');
    const agent = new SyncAgent({
      hubUrl: hub.url,
      brokerUrl: broker.url,
      state,
      cache,
      version: 'tls',
      backoff: { minMs: 100, maxMs: 300 },
      tls: { ca: read('ca.pem'), cert: read('edge.pem'), key: read('edge.key') },
    });
    await agent.start();
    try {
      await until(() => cache.synced && cache.lookupMyKey('TTTT2222') === 'TLS-1', { what: 'synced over https' });
      await until(() => agent.connected, { what: 'connected over mqtts' });
      await agent.catchUp();
      hub.link('TTTT2223', 'TLS-2');
      await until(() => cache.lookupMyKey('TTTT2223') === 'TLS-2', { what: 'live over mqtts' });
      assert.ok(hub.url.startsWith('https://'));
      assert.ok(broker.url.startsWith('mqtts://'));
    } finally {
      await agent.stop();
    }
  } finally {
    await state.close();
    await hub.stop();
    await broker.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('is refused by the broker and the device API without a certificate from the CA', async () => {
  const read = (n: string) => readFileSync(f(n), 'utf8');
  const broker = await startMosquitto({ cafile: f('ca.pem'), certfile: f('server.pem'), keyfile: f('server.key') });
  const hub = new FakeHub({ edgeId: 'edge-tls-1', tls: { key: read('server.key'), cert: read('server.pem'), ca: read('ca.pem') } });
  await hub.start();
  const stateDir = mkdtempSync(join(tmpdir(), 'sync-tls-'));
  const cache = new EdgeCache();
  const state = new EdgeState({ dir: stateDir });
  await state.open(cache);
  // The server trusts the CA, but the agent presents no client certificate.
  const agent = new SyncAgent({ hubUrl: hub.url, brokerUrl: broker.url, state, cache, version: 'tls', backoff: { minMs: 100, maxMs: 300 }, tls: { ca: read('ca.pem') } });
  try {
    await agent.start();
    await new Promise((r) => setTimeout(r, 800));
    assert.is(cache.synced, false);
    assert.is(agent.connected, false);
    assert.is(hub.requests.config, 0, 'the TLS handshake refused it before any request');
    assert.is(agent.health(), 'degraded');
  } finally {
    await agent.stop();
    await state.close();
    await hub.stop();
    await broker.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
