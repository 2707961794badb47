// The enrollment tool across a device CA rotation, with a real hub restarted on the same addresses:
// a reader enrolled before the rotation (its state directory trusts only the old CA) still verifies
// the hub and rotates onto the new CA without a token; a new enrollment pins the new fingerprint, and
// the old fingerprint is no longer offered.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHubConfig } from '../../../hub/config.ts';
import { createHub, type Hub } from '../../../hub/main.ts';
import { rotateDeviceCa } from '../../../hub/pki/device-ca.ts';
import { stateLayout } from '../../../provisioning/enroll/state-dir.ts';
import { issuedBy } from '../../../shared/device-csr.ts';
import { silentLogger } from '../../../shared/log.ts';
import { runEnrollCli, startEnrollHub, type EnrollHub } from './helpers/enroll-hub.ts';

interface Ctx {
  h: EnrollHub;
  hub2: Hub;
  root: string;
  oldCaPem: string;
  oldFingerprint: string;
}
const test = suite<Ctx>('enrollment tool across a device CA rotation', {} as Ctx);

const run = runEnrollCli;

test.before(async (ctx) => {
  ctx.h = await startEnrollHub();
  ctx.root = mkdtempSync(join(tmpdir(), 'mykey-ca-rotation-'));
  ctx.oldCaPem = ctx.h.th.hub.deviceCa!.certPem;
  ctx.oldFingerprint = ctx.h.fingerprint;
  const r = await run(['enroll', ...ctx.h.hubArgs, '--token', await ctx.h.issueToken('lib-car-1'), '--edge-id', 'lib-car-1', '--state-dir', join(ctx.root, 'lib-car-1'), '--dry-run']);
  assert.is(r.code, 0, r.out);
  const hub = ctx.h.th.hub;
  const mqtts = new URL(hub.addresses.mqtts!);
  const api = new URL(hub.addresses.deviceApi!);
  await hub.stop();
  await rotateDeviceCa(join(ctx.h.th.dir, 'device-ca'));
  const c = hub.config;
  ctx.hub2 = await createHub(
    loadHubConfig({ env: {}, overrides: { ...c, http: { ...c.http, port: 0 }, broker: { ...c.broker, port: Number(mqtts.port) }, devices: { ...c.devices, httpsPort: Number(api.port) } } }),
    { log: silentLogger },
  );
  await ctx.hub2.start();
});
test.after(async (ctx) => {
  await ctx.hub2?.stop();
  rmSync(ctx.h.th.dir, { recursive: true, force: true });
  rmSync(ctx.root, { recursive: true, force: true });
});

test('a reader enrolled under the old CA rotates onto the new one without a token, trusting only the old CA to reach the hub', async (ctx) => {
  const dir = join(ctx.root, 'lib-car-1');
  const L = stateLayout(dir);
  assert.is(readFileSync(L.ca, 'utf8'), ctx.oldCaPem);
  const r = await run(['rotate', '--state-dir', dir, '--dry-run']);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /accepted the certificate; subscribed/);
  assert.is(readFileSync(L.ca, 'utf8'), ctx.hub2.deviceCa!.certPem);
  assert.ok(issuedBy(readFileSync(L.cert, 'utf8'), ctx.hub2.deviceCa!.certPem));
});

test('a new token pins the new fingerprint; the old fingerprint is refused before the token is sent', async (ctx) => {
  const hub = ctx.hub2;
  const fp = hub.deviceCaFingerprint!;
  assert.is.not(fp, ctx.oldFingerprint);
  const token = async () => (await hub.enrollmentTokens.issue({ serviceId: 'library', edgeId: 'lib-car-2', by: 'test' })).token;
  const refused = await run([
    'enroll',
    '--hub',
    hub.addresses.deviceApi!,
    '--ca-fingerprint',
    ctx.oldFingerprint,
    '--token',
    await token(),
    '--edge-id',
    'lib-car-2',
    '--state-dir',
    join(ctx.root, 'lib-car-2-old'),
    '--dry-run',
  ]);
  assert.is.not(refused.code, 0);
  assert.match(refused.out, /hub_ca_mismatch|pinned fingerprint/);
  const ok = await run([
    'enroll',
    '--hub',
    hub.addresses.deviceApi!,
    '--ca-fingerprint',
    fp,
    '--token',
    await token(),
    '--edge-id',
    'lib-car-2',
    '--state-dir',
    join(ctx.root, 'lib-car-2'),
    '--dry-run',
  ]);
  assert.is(ok.code, 0, ok.out);
  const L = stateLayout(join(ctx.root, 'lib-car-2'));
  assert.ok(issuedBy(readFileSync(L.cert, 'utf8'), hub.deviceCa!.certPem));
  assert.is(readFileSync(L.ca, 'utf8'), hub.deviceCa!.certPem);
});

test.run();
