// Rotation and decommission of an enrolled edge reader (enroll.ts does the enrollment itself).
//
// Rotation needs no token while the current certificate is valid: a new key and CSR go to the device
// API with the current certificate (POST /v1/device/rotate, mutual TLS). The hub keeps the current
// certificate valid until the new one is first used, which the self-test does at once, or until a
// short overlap passes; then the old one is superseded and the broker refuses it. With an expired or
// revoked certificate, a fresh one-time token from the console is redeemed instead (--token).
// Decommission asks the hub to revoke the device's own certificate (POST /v1/device/revoke).
import { readdirSync, rmdirSync, rmSync } from 'node:fs';
import { MyKeyError } from '../../shared/errors.ts';
import { createCsr } from './device-key.ts';
import { checkAnswer, commitEnrollment, buildEdgeConfig, existingEnrollment, pendingKey, redeemHint, selfTest, tlsOf, type EnrollDeps } from './enroll.ts';
import { redeemToken, rotateOverDeviceApi, selfRevoke, type DeviceTls } from './hub-client.ts';
import type { EnrollmentResponse } from '../../shared/device-api.ts';
import { createSteps, needsFix } from './progress.ts';
import { connectDevice } from './self-test.ts';
import { ensureDir, exists, FILE_MODE, KEY_MODE, readEnrollmentRecord, removeIfExists, stateLayout, writeFileAtomic, type EnrollmentRecord } from './state-dir.ts';
import { execCommand, removeCommands, runAll, UNIT_DIR, UNIT_NAME } from './systemd.ts';

export interface RotateOptions {
  stateDir: string;
  /** A fresh one-time token: needed only when the current certificate has expired or was revoked. */
  token?: string;
  /** Defaults to the device API of the enrollment record; the stored device CA is the one trusted. */
  hubUrl?: string;
  dryRun?: boolean;
  readers?: string[];
}

/**
 * Rotates the device certificate: a new key and CSR, sent with the current certificate over mutual
 * TLS, or with `token` redeemed like an enrollment (the hub then supersedes the previous certificate
 * at once). The old files are kept in tls/previous until the new certificate has passed the self-test.
 */
export async function rotate(o: RotateOptions, deps: EnrollDeps): Promise<EnrollmentRecord> {
  const now = deps.now ?? (() => new Date());
  const layout = stateLayout(o.stateDir);
  const steps = createSteps(deps.write, 5, o.token ? redeemHint : rotateHint);
  const current = await steps.step('Reading the current enrollment', (c) => {
    const e = existingEnrollment(layout, undefined, new Date(0));
    if (!e.ok) throw needsFix('not_found', `no usable enrollment in ${layout.dir}: ${e.reason}`, 'enroll this machine first (enroll --hub ... --token ... --edge-id ...)');
    const days = Math.floor((Date.parse(e.record.notAfter) - now().getTime()) / 86_400_000);
    c.ok(`edge ${e.record.edgeId} of ${e.record.serviceId}; certificate valid until ${e.record.notAfter} (${days < 0 ? 'expired' : `${days} days left`})`);
    return e;
  });
  // Redemption lives on the device API, trusted through the CA certificate kept at enrollment.
  const hubUrl = o.hubUrl ?? current.record.deviceApiUrl;
  const key = await steps.step('New device key and certificate request', async (c) => {
    const k = await pendingKey(layout, c);
    return { keyPem: k.keyPem, csrPem: await createCsr(current.record.edgeId, k.keyPair) };
  });
  const answer = await steps.step(o.token ? 'Redeeming the rotation token' : 'Asking the hub for a new certificate', async (c): Promise<EnrollmentResponse> => {
    const edgeId = current.record.edgeId;
    let a: EnrollmentResponse;
    if (o.token) {
      a = await redeemToken(hubUrl, { token: o.token, edgeId, csrPem: key.csrPem }, { caPem: current.tls.ca, timeoutMs: deps.timeoutMs });
    } else {
      if (Date.parse(current.record.notAfter) <= now().getTime()) {
        throw needsFix('unauthorized', `the certificate of ${edgeId} expired on ${current.record.notAfter}`, `issue a token for edge ${edgeId} in the console and run rotate with --token`);
      }
      const r = await rotateOverDeviceApi(hubUrl, current.tls, key.csrPem, deps.timeoutMs);
      c.note(`the current certificate stays valid until the new one is used, at the latest until ${r.overlapUntil}`);
      a = r;
    }
    checkAnswer(a, key.keyPem, edgeId);
    c.ok(`new certificate valid until ${a.notAfter}${o.token ? '; the hub has superseded the previous one' : ''}`);
    return a;
  });
  const record = await steps.step('Replacing the files', (c) => {
    ensureDir(layout.previous);
    writeFileAtomic(`${layout.previous}/device-key.pem`, current.tls.key, KEY_MODE);
    writeFileAtomic(`${layout.previous}/device-cert.pem`, current.tls.cert, FILE_MODE);
    const r = commitEnrollment(layout, key.keyPem, answer, { hubUrl, deviceApiUrl: current.record.deviceApiUrl, brokerUrl: current.record.brokerUrl }, now());
    const { json } = buildEdgeConfig(layout, r, o.readers);
    writeFileAtomic(layout.config, JSON.stringify(json, null, 2) + '\n', 0o640);
    writeFileAtomic(layout.enrollment, JSON.stringify(r, null, 2) + '\n', FILE_MODE);
    c.ok(`new key and certificate in ${layout.tls}; previous ones in ${layout.previous} until the self-test passes`);
    return r;
  });
  await steps.step('Self-test and restart', async (c) => {
    await selfTest(c, record, { cert: answer.certPem, key: key.keyPem, ca: answer.caPem }, o.readers ?? [], deps);
    rmSync(layout.previous, { recursive: true, force: true });
    c.ok('previous key and certificate removed');
    const restart = [['systemctl', 'restart', UNIT_NAME]];
    if (o.dryRun) c.note(`dry run: would run: ${restart[0].join(' ')}`);
    else {
      await runAll(restart, deps.exec ?? execCommand);
      c.ok(`${UNIT_NAME} restarted with the new certificate`);
    }
  });
  deps.write(`rotated: edge ${record.edgeId}, certificate valid until ${record.notAfter}`);
  return record;
}

export interface DecommissionOptions {
  stateDir: string;
  dryRun?: boolean;
  /** The device was revoked another way (the console): skip the hub call, still check the broker. */
  alreadyRevoked?: boolean;
  reason?: string;
}

/** What to do about a refused rotation or revocation over the device API. */
function rotateHint(e: unknown): string | undefined {
  if (e instanceof MyKeyError && (e.code === 'unauthorized' || e.code === 'device_revoked' || e.code === 'device_cert_required')) {
    return 'the hub no longer accepts the current certificate: issue a token for this edge in the console and run rotate with --token';
  }
  if (e instanceof MyKeyError && e.code === 'validation_failed') return "the hub's answer does not match this tool's contract: check that the tool and the hub are the same version";
  return redeemHint(e);
}

/** The default revocation: the device API's self-revocation route over mutual TLS. */
async function revokeOverDeviceApi({ record, tls }: { record: EnrollmentRecord; tls: DeviceTls }, reason: string, timeoutMs?: number): Promise<'revoked' | 'already-refused' | 'no-route'> {
  try {
    return (await selfRevoke(record.deviceApiUrl, tls, reason, timeoutMs)) ? 'revoked' : 'no-route';
  } catch (e) {
    // A revoked certificate is refused by the device API itself: that is the goal.
    if (e instanceof MyKeyError && (e.code === 'unauthorized' || e.code === 'device_revoked')) return 'already-refused';
    throw e;
  }
}

/** Revokes the device at the hub, checks the broker refuses it, removes the service and wipes the state. */
export async function decommission(o: DecommissionOptions, deps: EnrollDeps): Promise<void> {
  const layout = stateLayout(o.stateDir);
  const steps = createSteps(deps.write, 4, rotateHint);
  const current = await steps.step('Reading the enrollment', (c) => {
    const record = readEnrollmentRecord(layout);
    const tls = tlsOf(layout);
    if (!record || !tls) {
      c.note(`no complete enrollment in ${layout.dir}: nothing to revoke from this machine`);
      return undefined;
    }
    c.ok(`edge ${record.edgeId} of ${record.serviceId}`);
    return { record, tls };
  });

  await steps.step('Revoking at the hub and checking the broker refuses the device', async (c) => {
    if (!current) return c.note('skipped');
    if (o.alreadyRevoked) c.note('--already-revoked: not asking the hub');
    else {
      const r = await (deps.revoke ?? ((x) => revokeOverDeviceApi(x, o.reason ?? 'decommissioned', deps.timeoutMs)))(current);
      if (r === 'no-route') {
        throw needsFix(
          'not_found',
          'this hub has no device self-revocation route (POST /v1/device/revoke)',
          `revoke edge ${current.record.edgeId} in the console (Edges, Revoke), then run decommission again with --already-revoked`,
        );
      }
      c.ok(r === 'revoked' ? `the hub revoked ${current.record.edgeId}` : 'the hub already refuses this certificate');
    }
    const v = await connectDevice(current.record.brokerUrl, current.record.edgeId, current.tls, deps.timeoutMs);
    if (v.accepted) {
      await v.client.endAsync(true).catch(() => undefined);
      throw needsFix('conflict', `the broker still accepts ${current.record.edgeId}`, `revoke the edge in the console (Edges, Revoke) and run decommission again with --already-revoked`);
    }
    c.ok(`the broker refuses the certificate (${v.reason})`);
  });

  await steps.step(o.dryRun ? 'Removing the system service (dry run)' : 'Removing the system service', async (c) => {
    const unitPath = `${deps.unitDir ?? UNIT_DIR}/${UNIT_NAME}`;
    if (o.dryRun) {
      for (const cmd of removeCommands()) c.note(`dry run: would run: ${cmd.join(' ')}`);
      c.note(`dry run: would remove ${unitPath}`);
      return;
    }
    if (!exists(unitPath)) return c.ok(`${UNIT_NAME} is not installed`);
    const exec = deps.exec ?? execCommand;
    await runAll(removeCommands().slice(0, 1), exec);
    removeIfExists(unitPath);
    await runAll(removeCommands().slice(1), exec);
    c.ok(`${UNIT_NAME} stopped, disabled and removed`);
  });

  await steps.step('Wiping the local state', (c) => {
    // Keys first: if this is interrupted, what is left holds no secret.
    for (const p of [layout.key, layout.pendingKey]) removeIfExists(p);
    rmSync(layout.previous, { recursive: true, force: true });
    for (const p of [layout.cert, layout.ca, layout.config]) removeIfExists(p);
    rmSync(layout.data, { recursive: true, force: true });
    removeIfExists(layout.enrollment);
    for (const d of [layout.tls, layout.dir]) {
      try {
        if (readdirSync(d).length === 0) rmdirSync(d);
      } catch {
        // Already gone, or holds files that are not ours: left as they are.
      }
    }
    c.ok(exists(layout.dir) ? `${layout.dir}: enrollment files removed (other files left)` : `${layout.dir} removed`);
  });
  deps.write(current ? `decommissioned: edge ${current.record.edgeId}` : 'decommissioned: nothing was enrolled here');
}
