// The edge renews its own certificate after a device CA rotation, through the real stack: a hub with
// real TLS and broker, an edge agent enrolled under the old CA, the CA rotated and the hub restarted
// on the same addresses; at its next contact the agent is told to renew, gets a certificate of the new
// CA, stores it atomically and reconnects to the broker with it. And the files a power cut may leave.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEdgeConfig } from '../../../edge/config.ts';
import { createEdgeAgent, type EdgeAgent } from '../../../edge/main.ts';
import type { PcscContext } from '../../../edge/reader/pcsc-port.ts';
import { CertRenewer, pendingKeyPath, recoverRenewal } from '../../../edge/renew/renewer.ts';
import { loadHubConfig } from '../../../hub/config.ts';
import { createHub, type Hub } from '../../../hub/main.ts';
import { rotateDeviceCa } from '../../../hub/pki/device-ca.ts';
import { certMatchesKey, createCsr, generateDeviceKey, issuedBy } from '../../../shared/device-csr.ts';
import { pemToDer } from '../../../hub/pki/device-ca.ts';
import { silentLogger } from '../../../shared/log.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';
import { until } from '../../helpers/polling.ts';

/** No readers at all: the renewal needs none. */
const noPcsc = (): PcscContext => {
  const ctx: PcscContext = { on: () => ctx, removeAllListeners: () => ctx, close: () => {} };
  return ctx;
};

interface Ctx {
  h: TestHub;
  hub2?: Hub;
  dir: string;
  agent?: EdgeAgent;
  oldCaPem: string;
  paths: { key: string; cert: string; ca: string };
}
const test = suite<Ctx>('edge certificate renewal', {} as Ctx);

async function enrollFiles(hub: Hub, edgeId: string, dir: string) {
  const { keyPair, keyPem } = await generateDeviceKey();
  const csr = await createCsr(edgeId, keyPair);
  const r = await hub.enrollment!.enroll(pemToDer(csr, 'CERTIFICATE REQUEST'), { edgeId, serviceId: 'library', validityDays: 30 });
  if (!r.ok) throw new Error(r.code);
  const paths = { key: join(dir, `${edgeId}.key`), cert: join(dir, `${edgeId}.pem`), ca: join(dir, `${edgeId}-ca.pem`) };
  writeFileSync(paths.key, keyPem, { mode: 0o600 });
  writeFileSync(paths.cert, r.value.certPem);
  writeFileSync(paths.ca, r.value.caPem);
  return paths;
}

test.before(async (ctx) => {
  ctx.h = await startTestHub();
  await ctx.h.hub.start();
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library' });
  ctx.oldCaPem = ctx.h.hub.deviceCa!.certPem;
  ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-renew-'));
  ctx.paths = await enrollFiles(ctx.h.hub, 'lib-renew-1', ctx.dir);
  // The rotation, and the hub back on the same addresses (what the edge's config names).
  const mqtts = new URL(ctx.h.hub.addresses.mqtts!);
  const api = new URL(ctx.h.hub.addresses.deviceApi!);
  await ctx.h.hub.stop();
  await rotateDeviceCa(join(ctx.h.dir, 'device-ca'));
  const c = ctx.h.hub.config;
  ctx.hub2 = await createHub(loadHubConfig({ env: {}, overrides: { ...c, broker: { ...c.broker, port: Number(mqtts.port) }, devices: { ...c.devices, httpsPort: Number(api.port) } } }), {
    log: silentLogger,
  });
  await ctx.hub2.start();
});
test.after(async (ctx) => {
  await ctx.agent?.stop();
  await ctx.hub2?.stop();
  rmSync(ctx.h.dir, { recursive: true, force: true });
  rmSync(ctx.dir, { recursive: true, force: true });
});

test('at its next contact the agent renews its certificate from the new CA, stores it, and reconnects to the broker with it', async (ctx) => {
  const hub = ctx.hub2!;
  const config = loadEdgeConfig({
    env: {},
    overrides: {
      edgeId: 'lib-renew-1',
      serviceId: 'library',
      hub: { url: hub.addresses.deviceApi },
      broker: { url: hub.addresses.mqtts },
      tls: ctx.paths,
      stateDir: join(ctx.dir, 'state'),
      kiosk: { enabled: false },
      registration: { enabled: false },
      logLevel: 'error',
    },
  });
  ctx.agent = createEdgeAgent(config, { log: silentLogger, pcsc: noPcsc, renewIntervalMs: 3600_000 });
  await ctx.agent.start();
  const fileFp = () => new X509Certificate(readFileSync(ctx.paths.cert)).fingerprint256.replace(/:/g, '').toLowerCase();
  await until(async () => issuedBy(readFileSync(ctx.paths.cert, 'utf8'), hub.deviceCa!.certPem) && (await hub.devices.get('lib-renew-1'))?.cert_fingerprint === fileFp(), {
    what: 'the renewed certificate on file and on record',
  });
  await until(() => ctx.agent!.sync.connected && hub.broker!.connectedEdges().includes('lib-renew-1'), { what: 'the broker session with the renewed certificate' });
  // The files: key and certificate belong together, the CA file is the new CA, the key is 0600, no pending key left.
  assert.ok(certMatchesKey(readFileSync(ctx.paths.cert, 'utf8'), readFileSync(ctx.paths.key, 'utf8')));
  assert.is(readFileSync(ctx.paths.ca, 'utf8'), hub.deviceCa!.certPem);
  assert.not.ok(issuedBy(readFileSync(ctx.paths.cert, 'utf8'), ctx.oldCaPem));
  assert.is(statSync(ctx.paths.key).mode & 0o777, 0o600);
  assert.not.ok(existsSync(pendingKeyPath(ctx.paths)));
  // Asked again, the hub has nothing more to say.
  assert.is(await ctx.agent.renewer!.check(), 'current');
});

test('a renewal the hub refuses leaves the files as they were', async (ctx) => {
  const hub = ctx.hub2!;
  const paths = await enrollFiles(hub, 'lib-renew-2', ctx.dir);
  const before = [readFileSync(paths.key, 'utf8'), readFileSync(paths.cert, 'utf8'), readFileSync(paths.ca, 'utf8')];
  const tls = { key: before[0], cert: before[1], ca: before[2] };
  const r = new CertRenewer({ hubUrl: hub.addresses.deviceApi!, edgeId: 'lib-renew-2', paths, tls, log: silentLogger });
  await hub.enrollment!.revoke('lib-renew-2', 'test');
  const code = await r.renew().then(
    () => 'renewed',
    (e: { code?: string }) => e.code,
  );
  assert.is(code, 'unauthorized');
  assert.equal([readFileSync(paths.key, 'utf8'), readFileSync(paths.cert, 'utf8'), readFileSync(paths.ca, 'utf8')], before);
  assert.is(tls.cert, before[1]);
  assert.not.ok(existsSync(pendingKeyPath(paths)));
});

test('a renewal cut by a power cut is finished or dropped before the files are read', async (ctx) => {
  const dir = mkdtempSync(join(ctx.dir, 'cut-'));
  const paths = await enrollFiles(ctx.hub2!, 'lib-renew-3', dir);
  const oldKey = readFileSync(paths.key, 'utf8');
  assert.is(recoverRenewal(paths), 'none');
  // A pending key that matches nothing (the CSR never got an answer) is dropped; the key stays.
  writeFileSync(pendingKeyPath(paths), (await generateDeviceKey()).keyPem);
  assert.is(recoverRenewal(paths), 'dropped');
  assert.is(readFileSync(paths.key, 'utf8'), oldKey);
  assert.not.ok(existsSync(pendingKeyPath(paths)));
  // The certificate was replaced but the key not yet: the pending key is the certificate's, and is taken.
  const fresh = await enrollFiles(ctx.hub2!, 'lib-renew-4', dir);
  writeFileSync(paths.cert, readFileSync(fresh.cert));
  writeFileSync(pendingKeyPath(paths), readFileSync(fresh.key));
  assert.is(recoverRenewal(paths), 'completed');
  assert.ok(certMatchesKey(readFileSync(paths.cert, 'utf8'), readFileSync(paths.key, 'utf8')));
  assert.not.ok(existsSync(pendingKeyPath(paths)));
});

test.run();
