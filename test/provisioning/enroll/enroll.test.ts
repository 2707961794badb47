// Enrollment against a real hub (HTTP API, device API over mutual TLS, MQTT over TLS), with the
// systemd step as a dry run: files and modes, the self-test, a second run, a bad token, rotation and
// decommission. Readers are listed by a stand-in here; enroll-cli.test.ts lists them through pcscd.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEdgeConfig } from '../../../edge/config.ts';
import { connectDevice } from '../../../provisioning/enroll/self-test.ts';
import { modeOf, stateLayout } from '../../../provisioning/enroll/state-dir.ts';
import type { EnrollDeps } from '../../../provisioning/enroll/enroll.ts';
import { runEnrollCli, startEnrollHub, type EnrollHub } from './helpers/enroll-hub.ts';

interface Ctx {
  h: EnrollHub;
  root: string;
}
const test = suite<Ctx>('enroll', {} as Ctx);

test.before(async (ctx) => {
  ctx.h = await startEnrollHub();
  ctx.root = mkdtempSync(join(tmpdir(), 'mykey-enroll-'));
});
test.after(async (ctx) => {
  await ctx.h.close();
  rmSync(ctx.root, { recursive: true, force: true });
});

const run = runEnrollCli;

test('enrolls in one command: key 0600, certificate, CA, a valid edge config, self-test passed, unit printed', async (ctx) => {
  const dir = join(ctx.root, 'counter-1');
  const token = await ctx.h.issueToken('lib-counter-1');
  const r = await run(['enroll', ...ctx.h.hubArgs, '--token', token, '--edge-id', 'lib-counter-1', '--state-dir', dir, '--dry-run', '--readers', 'Test Reader*']);
  assert.is(r.code, 0, r.out);
  const L = stateLayout(dir);
  assert.is(modeOf(L.dir), 0o700);
  assert.is(modeOf(L.tls), 0o700);
  assert.is(modeOf(L.key), 0o600);
  assert.ok(readFileSync(L.key, 'utf8').startsWith('-----BEGIN PRIVATE KEY-----'));
  assert.ok(readFileSync(L.cert, 'utf8').includes('BEGIN CERTIFICATE'));
  assert.not.ok(existsSync(L.pendingKey), 'the pending key became the device key');
  const cfg = loadEdgeConfig({ file: L.config, env: {} });
  assert.is(cfg.edgeId, 'lib-counter-1');
  assert.is(cfg.serviceId, 'library');
  assert.is(cfg.hub.url, ctx.h.th.hub.addresses.deviceApi);
  assert.is(cfg.broker.url, ctx.h.th.hub.addresses.mqtts);
  assert.equal(cfg.readers.include, ['Test Reader*']);
  assert.is(cfg.tls.key, L.key);
  // The self-test went all the way through.
  assert.match(r.out, /reader: Test Reader 00/);
  assert.match(r.out, /device API .* knows lib-counter-1 \(library\)/);
  assert.match(r.out, /accepted the certificate; subscribed to mykey\/v1\/edge\/lib-counter-1\/cmd/);
  assert.match(r.out, /first snapshot of library: 0 mappings/);
  // The unit, printed instead of installed.
  assert.match(r.out, /Restart=always/);
  assert.match(r.out, /After=pcscd\.service pcscd\.socket network-online\.target/);
  assert.match(r.out, /ExecStart=.*--import tsx .*edge\/main\.ts --config .*counter-1\/edge\.json/);
  assert.match(r.out, /\$ systemctl enable mykey-edge\.service/);
  // The reader udev rule, announced instead of written (nothing under /etc is touched in a dry run).
  assert.match(r.out, /would run:[\s\S]*write \/etc\/udev\/rules\.d\/61-mykey-edge-readers\.rules[\s\S]*\$ udevadm control --reload-rules\n.*\$ udevadm trigger --subsystem-match=usb --action=change/);
  assert.not.match(r.out, new RegExp(token.slice(5)), 'the token is never printed');
});

test('running it again keeps the enrollment, does not need the token, and keeps settings added to the config', async (ctx) => {
  const dir = join(ctx.root, 'counter-1');
  const L = stateLayout(dir);
  const keyBefore = readFileSync(L.key, 'utf8');
  const certBefore = readFileSync(L.cert, 'utf8');
  const edited = JSON.parse(readFileSync(L.config, 'utf8'));
  edited.storeId = 'main-branch';
  writeFileSync(L.config, JSON.stringify(edited));
  const r = await run(['enroll', ...ctx.h.hubArgs, '--edge-id', 'lib-counter-1', '--state-dir', dir, '--dry-run']);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /kept/);
  assert.is(readFileSync(L.key, 'utf8'), keyBefore);
  assert.is(readFileSync(L.cert, 'utf8'), certBefore);
  assert.is(loadEdgeConfig({ file: L.config, env: {} }).storeId, 'main-branch');
  assert.is(modeOf(L.key), 0o600);
});

test('a bad token stops at the redemption with its code and what to do, and a retry reuses the pending key', async (ctx) => {
  const dir = join(ctx.root, 'counter-2');
  const bad = `mket_000000000000.${'A'.repeat(43)}`;
  const r = await run(['enroll', ...ctx.h.hubArgs, '--token', bad, '--edge-id', 'lib-counter-2', '--state-dir', dir, '--dry-run']);
  assert.is(r.code, 1);
  assert.match(r.out, /FAIL .*enrollment_token_invalid/);
  assert.match(r.out, /fix:\s+.*--edge-id/);
  const L = stateLayout(dir);
  assert.not.ok(existsSync(L.cert));
  assert.not.ok(existsSync(L.enrollment));
  assert.is(modeOf(L.pendingKey), 0o600);
  // A token issued for another edge id is refused the same way.
  const other = await run(['enroll', ...ctx.h.hubArgs, '--token', await ctx.h.issueToken('lib-counter-9'), '--edge-id', 'lib-counter-2', '--state-dir', dir, '--dry-run']);
  assert.is(other.code, 1);
  assert.match(other.out, /enrollment_token_invalid/);
  const pending = readFileSync(L.pendingKey, 'utf8');
  const good = await run(['enroll', ...ctx.h.hubArgs, '--token', await ctx.h.issueToken('lib-counter-2'), '--edge-id', 'lib-counter-2', '--state-dir', dir, '--dry-run']);
  assert.is(good.code, 0, good.out);
  assert.match(good.out, /reusing the key of an unfinished attempt/);
  assert.is(readFileSync(L.key, 'utf8'), pending);
  // A used token says so.
  const used = await ctx.h.issueToken('lib-counter-3');
  assert.is((await run(['enroll', ...ctx.h.hubArgs, '--token', used, '--edge-id', 'lib-counter-3', '--state-dir', join(ctx.root, 'c3'), '--dry-run'])).code, 0);
  const again = await run(['enroll', ...ctx.h.hubArgs, '--token', used, '--edge-id', 'lib-counter-3', '--state-dir', join(ctx.root, 'c3b'), '--dry-run']);
  assert.is(again.code, 1);
  assert.match(again.out, /enrollment_token_used/);
  assert.match(again.out, /fix:\s+a token works once/);
});

test('an unreachable hub and a missing token are told apart, each with its fix', async (ctx) => {
  const noHub = await run([
    'enroll',
    '--hub',
    'http://127.0.0.1:9',
    '--token',
    await ctx.h.issueToken('lib-counter-4'),
    '--edge-id',
    'lib-counter-4',
    '--state-dir',
    join(ctx.root, 'c4'),
    '--dry-run',
  ]);
  assert.is(noHub.code, 1);
  assert.match(noHub.out, /cannot reach http:\/\/127\.0\.0\.1:9.*\(unavailable\)/);
  assert.match(noHub.out, /fix:\s+check --hub/);
  const noToken = await run(['enroll', ...ctx.h.hubArgs, '--edge-id', 'lib-counter-4', '--state-dir', join(ctx.root, 'c4'), '--dry-run']);
  assert.is(noToken.code, 1);
  assert.match(noToken.out, /no enrollment token given/);
  const noReader = await run(['enroll', ...ctx.h.hubArgs, '--edge-id', 'lib-counter-4', '--state-dir', join(ctx.root, 'c4'), '--dry-run'], { listReaders: async () => [] });
  assert.is(noReader.code, 1);
  assert.match(noReader.out, /no card reader is visible/);
  assert.match(noReader.out, /fix:\s+plug the USB contactless reader in/);
  const usage = await run(['enroll', ...ctx.h.hubArgs]);
  assert.is(usage.code, 2);
});

test('rotation gets a new key and certificate with a fresh token; the old certificate is refused by the broker', async (ctx) => {
  const dir = join(ctx.root, 'counter-1');
  const L = stateLayout(dir);
  const old = { cert: readFileSync(L.cert, 'utf8'), key: readFileSync(L.key, 'utf8'), ca: readFileSync(L.ca, 'utf8') };
  const r = await run(['rotate', '--state-dir', dir, '--token', await ctx.h.issueToken('lib-counter-1'), '--dry-run']);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /would run: systemctl restart mykey-edge\.service/);
  assert.is.not(readFileSync(L.key, 'utf8'), old.key);
  assert.is(modeOf(L.key), 0o600);
  assert.not.ok(existsSync(L.previous), 'the previous key is removed once the new one passed');
  const v = await connectDevice(ctx.h.th.hub.addresses.mqtts!, 'lib-counter-1', old, 5000);
  assert.not.ok(v.accepted, 'the superseded certificate is refused');
});

test('decommission revokes the device at the hub over mutual TLS, sees the broker refuse it, and wipes the state; again, it does nothing', async (ctx) => {
  const dir = join(ctx.root, 'counter-2');
  const L = stateLayout(dir);
  const creds = { cert: readFileSync(L.cert, 'utf8'), key: readFileSync(L.key, 'utf8'), ca: readFileSync(L.ca, 'utf8') };
  const before = await connectDevice(ctx.h.th.hub.addresses.mqtts!, 'lib-counter-2', creds, 5000);
  assert.ok(before.accepted);
  if (before.accepted) {
    const dropped = new Promise<void>((res) => before.client.once('close', () => res()));
    // The real route: POST /v1/device/revoke over mutual TLS with the device's own certificate.
    const r = await run(['decommission', '--state-dir', dir, '--dry-run', '--reason', 'moved to the new branch']);
    assert.is(r.code, 0, r.out);
    assert.match(r.out, /the hub revoked lib-counter-2/);
    const row = await ctx.h.th.hub.devices.get('lib-counter-2');
    assert.is(row?.status, 'revoked');
    assert.is(row?.revoked_reason, 'self: moved to the new branch');
    assert.match(r.out, /the broker refuses the certificate \(CONNACK 5/);
    assert.match(r.out, /would run: systemctl disable --now mykey-edge\.service/);
    await dropped; // the connected session was closed by the revocation
    await before.client.endAsync(true);
  }
  assert.not.ok(existsSync(L.dir), 'the state directory is gone');
  const again = await run(['decommission', '--state-dir', dir, '--dry-run']);
  assert.is(again.code, 0, again.out);
  assert.match(again.out, /nothing to revoke/);
});

test('decommission against a hub without the self-revocation route says to revoke in the console', async (ctx) => {
  // An older hub: its device API answers every path with 404 not_found.
  const dir = join(ctx.root, 'c3');
  const hub = ctx.h.th.hub;
  const creds = await hub.deviceCa!.serverCredentials();
  const server = createHttpsServer({ key: creds.keyPem, cert: creds.certPem, ca: hub.deviceCa!.certPem, requestCert: true, rejectUnauthorized: true }, (_req, res) =>
    res.writeHead(404, { 'content-type': 'application/problem+json' }).end('{"code":"not_found","status":404}'),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const L = stateLayout(dir);
    const record = JSON.parse(readFileSync(L.enrollment, 'utf8'));
    record.deviceApiUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    writeFileSync(L.enrollment, JSON.stringify(record));
    const r = await run(['decommission', '--state-dir', dir, '--dry-run']);
    assert.is(r.code, 1);
    assert.match(r.out, /no device self-revocation route/);
    assert.match(r.out, /fix:\s+revoke edge lib-counter-3 in the console.*--already-revoked/);
    assert.ok(existsSync(L.key), 'nothing is wiped before the hub refuses the device');
    await hub.enrollment!.revoke('lib-counter-3', 'console');
    const r2 = await run(['decommission', '--state-dir', dir, '--dry-run', '--already-revoked']);
    assert.is(r2.code, 0, r2.out);
    assert.not.ok(existsSync(L.dir));
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('without --dry-run the unit and the reader udev rule are written and systemctl runs in order; decommission disables and removes the unit', async (ctx) => {
  const dir = join(ctx.root, 'counter-6');
  const unitDir = mkdtempSync(join(ctx.root, 'units-'));
  const udevRulesDir = mkdtempSync(join(ctx.root, 'udev-'));
  const ran: string[] = [];
  const exec: EnrollDeps['exec'] = async (cmd, args) => {
    ran.push([cmd, ...args].join(' '));
    return { code: 0, stdout: args[0] === 'is-active' ? 'active\n' : '', stderr: '' };
  };
  const r = await run(['enroll', ...ctx.h.hubArgs, '--token', await ctx.h.issueToken('lib-counter-6'), '--edge-id', 'lib-counter-6', '--state-dir', dir], { exec, unitDir, udevRulesDir });
  assert.is(r.code, 0, r.out);
  // The stand-in `id` knows the user (exit 0), so no useradd; the state directory goes to the agent's
  // user; udev reloads the reader rule and applies it to the readers already plugged in, before the
  // service starts (so its first reset can open the device node).
  assert.equal(ran, [
    'id -u mykey-edge',
    `chown -R mykey-edge:mykey-edge ${dir}`,
    'udevadm control --reload-rules',
    'udevadm trigger --subsystem-match=usb --action=change',
    'systemctl daemon-reload',
    'systemctl enable mykey-edge.service',
    'systemctl restart mykey-edge.service',
    'systemctl is-active mykey-edge.service',
  ]);
  const unitPath = join(unitDir, 'mykey-edge.service');
  assert.match(readFileSync(unitPath, 'utf8'), /\nUser=mykey-edge\nGroup=mykey-edge\n/);
  assert.is(modeOf(unitPath), 0o644);
  assert.match(readFileSync(unitPath, 'utf8'), /\[Service\][\s\S]*Restart=always[\s\S]*ReadWritePaths=.*counter-6/);
  // The rule written is the one shipped in provisioning/edge-service, world-readable as udev wants.
  const rulesPath = join(udevRulesDir, '61-mykey-edge-readers.rules');
  assert.is(readFileSync(rulesPath, 'utf8'), readFileSync(join(import.meta.dirname, '../../../provisioning/edge-service/61-mykey-edge-readers.rules'), 'utf8'));
  assert.is(modeOf(rulesPath), 0o644);
  assert.match(readFileSync(rulesPath, 'utf8'), /^SUBSYSTEM=="usb", ENV\{DEVTYPE\}=="usb_device", ATTR\{idVendor\}=="072f", ATTR\{idProduct\}=="223b", GROUP="mykey-edge", MODE="0660"$/m);

  // A failing systemctl is a failed step that says where to look.
  const failing: EnrollDeps['exec'] = async (_cmd, args) => ({ code: args[0] === 'restart' ? 1 : 0, stdout: '', stderr: 'Job for mykey-edge.service failed.' });
  const again = await run(['enroll', ...ctx.h.hubArgs, '--edge-id', 'lib-counter-6', '--state-dir', dir], { exec: failing, unitDir, udevRulesDir });
  assert.is(again.code, 1);
  assert.match(again.out, /systemctl restart mykey-edge\.service failed \(exit 1\): Job for mykey-edge\.service failed\./);
  assert.match(again.out, /fix:\s+see: journalctl -u mykey-edge\.service/);

  ran.length = 0;
  const revoke: EnrollDeps['revoke'] = async ({ record }) => ((await ctx.h.th.hub.enrollment!.revoke(record.edgeId, 'test')).ok ? 'revoked' : 'already-refused');
  const d = await run(['decommission', '--state-dir', dir], { exec, unitDir, udevRulesDir, revoke });
  assert.is(d.code, 0, d.out);
  assert.equal(ran, ['systemctl disable --now mykey-edge.service', 'systemctl daemon-reload']);
  assert.not.ok(existsSync(unitPath));
});

test('a state directory path with spaces is refused before the token is spent', async (ctx) => {
  const token = await ctx.h.issueToken('lib-counter-7');
  const r = await run(['enroll', ...ctx.h.hubArgs, '--token', token, '--edge-id', 'lib-counter-7', '--state-dir', join(ctx.root, 'has space'), '--dry-run']);
  assert.is(r.code, 1);
  assert.match(r.out, /\[1\/7\][\s\S]*has spaces or quotes/);
  const ok = await run(['enroll', ...ctx.h.hubArgs, '--token', token, '--edge-id', 'lib-counter-7', '--state-dir', join(ctx.root, 'c7'), '--dry-run']);
  assert.is(ok.code, 0, ok.out);
});

test.run();
