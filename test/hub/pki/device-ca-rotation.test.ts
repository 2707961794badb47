// Rotation of the hub's device CA through the real stack: a hub with an enrolled edge (real TLS on
// the device API, the real broker), the CA rotated, the hub restarted on the same data directory.
// The old certificate keeps working (and is told to renew), an edge that trusts only the old CA still
// verifies the hub through the cross certificate, the retired key signs nothing more, and a new
// enrollment is issued by the new CA under the new fingerprint.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { loadHubConfig } from '../../../hub/config.ts';
import { createHub, type Hub } from '../../../hub/main.ts';
import { createDeviceCsr, derToPem, openDeviceCa, readRetiredCas, rotateDeviceCa } from '../../../hub/pki/device-ca.ts';
import { fetchPinnedCa } from '../../../provisioning/enroll/hub-client.ts';
import { DeviceConfig } from '../../../shared/device-api.ts';
import { generateDeviceKey, issuedBy } from '../../../shared/device-csr.ts';
import { MyKeyError } from '../../../shared/errors.ts';
import { HubHttpClient, type HubTls } from '../../../shared/hub-client.ts';
import { silentLogger } from '../../../shared/log.ts';
import { startTestHub, type TestHub } from '../../helpers/hub.ts';
import { runConsoleCli } from '../../../hub/console/cli.ts';
import { client as consoleClient, PASSWORD } from '../console/helpers/console-hub.ts';
import { enrollEdge, rotateDevice } from '../../helpers/enrolled-edge.ts';

interface Edge {
  edgeId: string;
  tls: { ca: string; cert: string; key: string };
}
interface Ctx {
  h: TestHub;
  /** The hub restarted after the rotation (same data directory). */
  hub2: Hub;
  oldCaPem: string;
  edge: Edge;
  spare: Edge;
}
const test = suite<Ctx>('device CA rotation', {} as Ctx);

async function enroll(hub: Hub, edgeId: string): Promise<Edge> {
  return { edgeId, tls: (await enrollEdge(hub, edgeId)).tls };
}

const client = (hub: Hub, tls: HubTls) => new HubHttpClient({ baseUrl: hub.addresses.deviceApi!, tls, timeoutMs: 5000 });
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: unknown) => (e instanceof MyKeyError ? e.code : `other: ${String(e)}`),
  );

/** MQTT over TLS with the edge's files; resolves with 'connected' or the failure. */
async function brokerConnect(hub: Hub, e: Edge, tls: HubTls = e.tls): Promise<string> {
  const url = new URL(hub.addresses.mqtts!);
  let timer: ReturnType<typeof setTimeout> | undefined;
  // A socket the broker destroys at the handshake may leave mqtt.js waiting: the timer answers then.
  const timeout = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error('refused: no CONNACK in time')), 6000)));
  try {
    const c = await Promise.race([
      timeout,
      mqtt.connectAsync({
        host: url.hostname,
        port: Number(url.port),
        protocol: 'mqtts',
        clientId: e.edgeId,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        rejectUnauthorized: true,
      }),
    ]);
    await c.endAsync(true);
    return 'connected';
  } catch (err) {
    return `refused: ${(err as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
}

test.before(async (ctx) => {
  ctx.h = await startTestHub();
  await ctx.h.hub.start();
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library' });
  ctx.oldCaPem = ctx.h.hub.deviceCa!.certPem;
  ctx.edge = await enroll(ctx.h.hub, 'lib-rot-1');
  ctx.spare = await enroll(ctx.h.hub, 'lib-rot-2');
  assert.is(await brokerConnect(ctx.h.hub, ctx.edge), 'connected');
});
test.after(async (ctx) => {
  await ctx.hub2?.stop();
  rmSync(ctx.h.dir, { recursive: true, force: true });
});

test('a hub still running when its CA is rotated signs nothing more with the retired key: device_ca_retired', async (ctx) => {
  const r = await rotateDeviceCa(join(ctx.h.dir, 'device-ca'));
  assert.is(r.retiredFingerprint, new X509Certificate(ctx.oldCaPem).fingerprint256.replace(/:/g, '').toLowerCase());
  // The attack: get a certificate signed by the retired key after the rotation, through the real device API.
  const csr = await createDeviceCsr(ctx.spare.edgeId);
  const rotate = client(ctx.h.hub, ctx.spare.tls).call({ method: 'POST', path: '/v1/device/rotate', body: { csrPem: derToPem(csr.csrDer, 'CERTIFICATE REQUEST') }, expect: [201], what: 'rotate' });
  assert.is(await codeOf(rotate), 'device_ca_retired');
  const direct = await ctx.h.hub.deviceCa!.issueDeviceCertificate(csr.csrDer, { edgeId: 'lib-rot-9', serviceId: 'library', validityDays: 1 });
  assert.is(direct.ok ? 'issued' : direct.code, 'device_ca_retired');
  // The retired key is out of the CA's files (0600 in retired/, for the operator to archive and delete).
  assert.not.equal(readFileSync(join(ctx.h.dir, 'device-ca', 'ca-key.pem'), 'utf8'), readFileSync(r.retiredKeyPath, 'utf8'));
  assert.is(statSync(r.retiredKeyPath).mode & 0o777, 0o600);
  // Restart on the same data directory: the new CA is the issuer from now on.
  await ctx.h.hub.stop();
  const config = loadHubConfig({ env: {}, overrides: { ...ctx.h.hub.config, http: { ...ctx.h.hub.config.http, port: 0 } } });
  ctx.hub2 = await createHub(config, { log: silentLogger });
  await ctx.hub2.start();
  assert.is(ctx.hub2.deviceCa!.certPem, r.certPem);
  assert.not.equal(ctx.hub2.deviceCa!.certPem, ctx.oldCaPem);
});

test('an edge that trusts only the old CA still verifies the device API and the broker, with its old certificate, and is told to renew', async (ctx) => {
  const old = client(ctx.hub2, ctx.edge.tls);
  const cfg = await old.call({ method: 'GET', path: '/v1/device/config', schema: DeviceConfig, what: 'config' });
  assert.is(cfg.value.edgeId, ctx.edge.edgeId);
  assert.is(cfg.value.renewCertificate, true);
  assert.is(await brokerConnect(ctx.hub2, ctx.edge), 'connected');
});

test("the edge's renewal is issued by the new CA; the new certificate works on the broker trusting the new CA alone, and is not told to renew", async (ctx) => {
  const r = await rotateDevice(client(ctx.hub2, ctx.edge.tls), ctx.edge.edgeId);
  assert.is(r.caPem, ctx.hub2.deviceCa!.certPem);
  assert.ok(issuedBy(r.certPem, r.caPem));
  assert.not.ok(issuedBy(r.certPem, ctx.oldCaPem));
  const renewed: Edge = { edgeId: ctx.edge.edgeId, tls: { cert: r.certPem, key: r.keyPem, ca: r.caPem } };
  const cfg = await client(ctx.hub2, renewed.tls).call({ method: 'GET', path: '/v1/device/config', schema: DeviceConfig, what: 'config' });
  assert.is(cfg.value.renewCertificate, undefined);
  assert.is(await brokerConnect(ctx.hub2, renewed), 'connected');
  // The renewal, once used, superseded the old certificate: the broker refuses it now.
  assert.match(await brokerConnect(ctx.hub2, ctx.edge), /refused/);
});

test('a certificate of the retired CA that was never renewed still works until it expires', async (ctx) => {
  const cfg = await client(ctx.hub2, ctx.spare.tls).call({ method: 'GET', path: '/v1/device/config', schema: DeviceConfig, what: 'config' });
  assert.is(cfg.value.renewCertificate, true);
  assert.is(await brokerConnect(ctx.hub2, ctx.spare), 'connected');
});

test('a new enrollment is issued by the new CA, and the pinned fingerprint the token page shows is the new one', async (ctx) => {
  const fp = ctx.hub2.deviceCaFingerprint!;
  assert.is.not(fp, new X509Certificate(ctx.oldCaPem).fingerprint256);
  assert.is(fp, new X509Certificate(ctx.hub2.enrollment!.caPem).fingerprint256);
  // The enrollment tool's pin finds the new CA in the chain the device listener presents.
  const pinned = await fetchPinnedCa(new URL(ctx.hub2.addresses.deviceApi!), fp);
  assert.is(new X509Certificate(pinned).fingerprint256, fp);
  // ...and the old fingerprint is not offered to a new enrollment.
  assert.is(await codeOf(fetchPinnedCa(new URL(ctx.hub2.addresses.deviceApi!), new X509Certificate(ctx.oldCaPem).fingerprint256)), 'hub_ca_mismatch');
  const e = await enroll(ctx.hub2, 'lib-rot-3');
  assert.ok(issuedBy(e.tls.cert, ctx.hub2.deviceCa!.certPem));
  assert.not.ok(issuedBy(e.tls.cert, ctx.oldCaPem));
  assert.is(await brokerConnect(ctx.hub2, e), 'connected');
  // An edge enrolled now verifies the hub with the new CA alone.
  assert.is((await client(ctx.hub2, e.tls).call({ method: 'GET', path: '/v1/device/config', schema: DeviceConfig, what: 'config' })).value.edgeId, 'lib-rot-3');
});

test("the console's token page shows the new CA fingerprint, not the retired one", async (ctx) => {
  const hub = ctx.hub2;
  const code = await runConsoleCli(['add-operator', 'rot-ops', '--role', 'operator'], hub.db, { out: () => {}, readPassword: async () => PASSWORD });
  assert.is(code, 0);
  const c = consoleClient({ app: hub.app });
  await c.signIn('rot-ops');
  const page = await c.get('/console/enrollments');
  assert.match(page.text, `data-testid="ca-fingerprint">${hub.deviceCaFingerprint}<`);
  assert.not.match(page.text, new X509Certificate(ctx.oldCaPem).fingerprint256);
});

test("a certificate naming the hub's CA as issuer but signed by another key is refused by the device API and the broker", async (ctx) => {
  // The CA certificate is public: an impostor puts it beside a key of its own. Same issuer name, same
  // authority key identifier; only the signature tells, and the TLS layer checks it.
  const dir = join(ctx.h.dir, 'impostor-ca');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'ca-cert.pem'), ctx.hub2.deviceCa!.certPem);
  writeFileSync(join(dir, 'ca-key.pem'), (await generateDeviceKey()).keyPem);
  const impostor = await openDeviceCa(dir);
  const csr = await createDeviceCsr('lib-rot-1');
  const r = await impostor.issueDeviceCertificate(csr.csrDer, { edgeId: 'lib-rot-1', serviceId: 'library', validityDays: 1 });
  if (!r.ok) throw new Error(r.code);
  assert.is(
    await codeOf(client(ctx.hub2, { cert: r.value.certPem, key: csr.keyPem, ca: ctx.hub2.deviceCa!.certPem }).call({ method: 'GET', path: '/v1/device/config', what: 'config' })),
    'device_cert_required',
  );
  assert.match(await brokerConnect(ctx.hub2, { edgeId: 'lib-rot-1', tls: { cert: r.value.certPem, key: csr.keyPem, ca: ctx.hub2.deviceCa!.certPem } }), /refused|closed|ECONNRESET|socket/i);
});

test('the retired CA is trusted until the last certificate it signed expires, then dropped from trust and chain', async (ctx) => {
  const dir = join(ctx.h.dir, 'device-ca');
  const [retired] = readRetiredCas(dir);
  assert.ok(retired.trustUntil > Date.now());
  const during = await openDeviceCa(dir);
  assert.is(during.trustedPems().length, 2);
  assert.is(during.chainPem().match(/BEGIN CERTIFICATE/g)!.length, 3);
  const after = await openDeviceCa(dir, { now: () => new Date(retired.trustUntil + 1000) });
  assert.equal(after.trustedPems(), [after.certPem]);
  assert.is(after.chainPem(), after.certPem);
});

test('a rotation cut short after its commit mark is finished at the next open; one cut before it is dropped', async (ctx) => {
  const dir = join(ctx.h.dir, 'cut-ca');
  const ca = await openDeviceCa(dir);
  const before = ca.certPem;
  // Before the mark: a stray next key alone is dropped, the CA is unchanged.
  writeFileSync(join(dir, 'ca-key.pem.next'), 'partial');
  assert.is((await openDeviceCa(dir)).certPem, before);
  assert.not.ok(existsSync(join(dir, 'ca-key.pem.next')));
  // After the mark: both files are taken.
  const other = await openDeviceCa(join(ctx.h.dir, 'cut-ca-2'));
  writeFileSync(join(dir, 'ca-key.pem.next'), readFileSync(join(ctx.h.dir, 'cut-ca-2', 'ca-key.pem')));
  writeFileSync(join(dir, 'ca-cert.pem.next'), other.certPem);
  assert.is((await openDeviceCa(dir)).certPem, other.certPem);
});

test.run();
