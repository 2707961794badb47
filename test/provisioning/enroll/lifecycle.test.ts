// The device's own lifecycle through the real CLI and a real hub (device API over mutual TLS, MQTT
// over TLS): rotation without a token (the old certificate stays valid until the new one is used or
// the overlap passes), self-revocation on decommission (audited, the broker session cut at once), and
// what a revoked or stolen certificate gets from these routes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeviceCsr, derToPem } from '../../../hub/pki/device-ca.ts';
import { createDeviceEnrollment } from '../../../hub/enrollment/device-enrollment.ts';
import { certFacts } from '../../../provisioning/enroll/device-key.ts';
import { fetchDeviceConfig, rotateOverDeviceApi, selfRevoke, type DeviceTls } from '../../../provisioning/enroll/hub-client.ts';
import { connectDevice } from '../../../provisioning/enroll/self-test.ts';
import { stateLayout, modeOf } from '../../../provisioning/enroll/state-dir.ts';
import { MyKeyError } from '../../../shared/errors.ts';
import { runEnrollCli, startEnrollHub, type EnrollHub } from './helpers/enroll-hub.ts';

interface Ctx {
  h: EnrollHub;
  root: string;
}
const test = suite<Ctx>('device lifecycle', {} as Ctx);

test.before(async (ctx) => {
  ctx.h = await startEnrollHub();
  ctx.root = mkdtempSync(join(tmpdir(), 'mykey-lifecycle-'));
});
test.after(async (ctx) => {
  await ctx.h.close();
  rmSync(ctx.root, { recursive: true, force: true });
});

const run = runEnrollCli;

async function enrolled(ctx: Ctx, edgeId: string): Promise<{ dir: string; tls: DeviceTls }> {
  const dir = join(ctx.root, edgeId);
  const r = await run(['enroll', ...ctx.h.hubArgs, '--token', await ctx.h.issueToken(edgeId), '--edge-id', edgeId, '--state-dir', dir, '--dry-run']);
  assert.is(r.code, 0, r.out);
  const L = stateLayout(dir);
  return { dir, tls: { cert: readFileSync(L.cert, 'utf8'), key: readFileSync(L.key, 'utf8'), ca: readFileSync(L.ca, 'utf8') } };
}

const errorCode = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: unknown) => (e instanceof MyKeyError ? e.code : `other: ${String(e)}`),
  );

test('rotate without a token: a new key and certificate over mutual TLS, the self-test passes, the old certificate is refused', async (ctx) => {
  const { dir, tls: old } = await enrolled(ctx, 'lib-rot-1');
  const L = stateLayout(dir);
  const r = await run(['rotate', '--state-dir', dir, '--dry-run']);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /Asking the hub for a new certificate/);
  assert.match(r.out, /stays valid until the new one is used/);
  assert.match(r.out, /device API .* knows lib-rot-1 \(library\)/);
  assert.match(r.out, /accepted the certificate; subscribed/);
  assert.is.not(readFileSync(L.key, 'utf8'), old.key);
  assert.is(modeOf(L.key), 0o600);
  assert.not.ok(existsSync(L.previous));
  const row = (await ctx.h.th.hub.devices.get('lib-rot-1'))!;
  assert.is(row.cert_fingerprint, certFacts(readFileSync(L.cert, 'utf8')).fingerprint256.replace(/:/g, '').toLowerCase());
  // The self-test used the new certificate: the old one is superseded everywhere.
  assert.is(await errorCode(fetchDeviceConfig(ctx.h.deviceApi, old, 5000)), 'unauthorized');
  const v = await connectDevice(ctx.h.th.hub.addresses.mqtts!, 'lib-rot-1', old, 5000);
  assert.not.ok(v.accepted, 'the superseded certificate is refused by the broker');
  const audit = (await ctx.h.th.hub.consoleRepo.auditLog({ serviceId: 'library' })).find((a) => a.action === 'device.rotate' && a.target === 'lib-rot-1');
  assert.ok(audit, 'the rotation is in the audit log');
});

test('until the new certificate is used the old one stays valid; its first use supersedes the old one and drops its session', async (ctx) => {
  const { tls: old } = await enrolled(ctx, 'lib-rot-2');
  const csr = await createDeviceCsr('lib-rot-2');
  const answer = await rotateOverDeviceApi(ctx.h.deviceApi, old, derToPem(csr.csrDer, 'CERTIFICATE REQUEST'), 5000);
  assert.ok(Date.parse(answer.overlapUntil) > Date.now());
  const fresh: DeviceTls = { cert: answer.certPem, key: csr.keyPem, ca: answer.caPem };
  // The old certificate still works on both sides, and the new one is not on the broker yet.
  assert.is((await fetchDeviceConfig(ctx.h.deviceApi, old, 5000)).edgeId, 'lib-rot-2');
  const session = await connectDevice(ctx.h.th.hub.addresses.mqtts!, 'lib-rot-2', old, 5000);
  assert.ok(session.accepted, 'the old certificate is accepted during the overlap');
  if (!session.accepted) return;
  const dropped = new Promise<void>((res) => session.client.once('close', () => res()));
  const early = await connectDevice(ctx.h.th.hub.addresses.mqtts!, 'lib-rot-2', fresh, 5000);
  assert.not.ok(early.accepted);
  // First use of the new certificate on the device API.
  assert.is((await fetchDeviceConfig(ctx.h.deviceApi, fresh, 5000)).edgeId, 'lib-rot-2');
  await dropped;
  await session.client.endAsync(true);
  assert.is(await errorCode(fetchDeviceConfig(ctx.h.deviceApi, old, 5000)), 'unauthorized');
  const now = await connectDevice(ctx.h.th.hub.addresses.mqtts!, 'lib-rot-2', fresh, 5000);
  assert.ok(now.accepted, 'the new certificate is the device now');
  if (now.accepted) await now.client.endAsync(true);
});

test('a rotation never used takes over when the overlap passes, and the old certificate is refused', async (ctx) => {
  const { tls: old } = await enrolled(ctx, 'lib-rot-3');
  const hub = ctx.h.th.hub;
  // The hub's own repo and CA with a 50 ms overlap (the hub's default is ten minutes).
  const short = createDeviceEnrollment({ deviceCa: hub.deviceCa!, devices: hub.devices, rotationOverlapMs: 50 });
  const csr = await createDeviceCsr('lib-rot-3');
  const r = await short.rotate('lib-rot-3', csr.csrDer, 30);
  assert.ok(r.ok);
  assert.is((await fetchDeviceConfig(ctx.h.deviceApi, old, 5000)).edgeId, 'lib-rot-3');
  await new Promise((res) => setTimeout(res, 150));
  if (r.ok) assert.is((await hub.devices.get('lib-rot-3'))!.cert_fingerprint, r.value.fingerprint);
  assert.is(await errorCode(fetchDeviceConfig(ctx.h.deviceApi, old, 5000)), 'unauthorized');
});

test('the new certificate names the calling edge, whatever edge the CSR names', async (ctx) => {
  const { tls } = await enrolled(ctx, 'lib-rot-4');
  await enrolled(ctx, 'lib-rot-5');
  const csr = await createDeviceCsr('lib-rot-5');
  const a = await rotateOverDeviceApi(ctx.h.deviceApi, tls, derToPem(csr.csrDer, 'CERTIFICATE REQUEST'), 5000);
  assert.is(a.edgeId, 'lib-rot-4');
  assert.is(certFacts(a.certPem).commonName, 'lib-rot-4');
  // Garbage instead of a CSR is refused with its code.
  assert.is(await errorCode(rotateOverDeviceApi(ctx.h.deviceApi, tls, 'not a csr', 5000)), 'csr_invalid');
});

test('a revoked certificate can neither rotate nor revoke again (unauthorized); rotate says to use a token', async (ctx) => {
  const { dir, tls } = await enrolled(ctx, 'lib-rot-6');
  assert.ok(await selfRevoke(ctx.h.deviceApi, tls, 'lost', 5000));
  const audit = (await ctx.h.th.hub.consoleRepo.auditLog({ serviceId: 'library' })).find((a) => a.action === 'device.revoke' && a.target === 'lib-rot-6');
  assert.ok(audit, 'the self-revocation is in the audit log');
  assert.is(audit?.outcome, 'ok');
  const csr = await createDeviceCsr('lib-rot-6');
  assert.is(await errorCode(rotateOverDeviceApi(ctx.h.deviceApi, tls, derToPem(csr.csrDer, 'CERTIFICATE REQUEST'), 5000)), 'unauthorized');
  assert.is(await errorCode(selfRevoke(ctx.h.deviceApi, tls, 'again', 5000)), 'unauthorized');
  const r = await run(['rotate', '--state-dir', dir, '--dry-run']);
  assert.is(r.code, 1);
  assert.match(r.out, /FAIL .*\(unauthorized\)/);
  assert.match(r.out, /fix:\s+.*run rotate with --token/);
});

test.run();
