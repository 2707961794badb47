// Enrollment of an edge reader, as functions over options and adapters (the command line in cli.ts
// only parses; rotation and decommission are in lifecycle.ts). Every step prints its progress; a failed step says what to
// fix; running a command again is safe: a good enrollment is kept (unless `force`), a key whose CSR
// was sent but not answered is reused, and decommission of an already wiped machine does nothing.
import { loadEdgeConfig, type EdgeConfig } from '../../edge/config.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { isEdgeId } from '../../shared/ids.ts';
import { certFacts, certMatchesKey, createCsr, generateDeviceKey, importDeviceKey, issuedBy } from './device-key.ts';
import { checkEnrollmentUrl, normalizeFingerprint, redeemToken, type DeviceTls } from './hub-client.ts';
import type { EnrollmentResponse } from '../../shared/device-api.ts';
import { checkNfcModules, checkNode, checkPcscd, checkReaders, listReaders, type NfcModuleEnv } from './prerequisites.ts';
import { createSteps, needsFix, type StepContext } from './progress.ts';
import { isReleasePublicKey } from '../../shared/release.ts';
import { checkBroker, checkDeviceApi, checkHub, checkSnapshot } from './self-test.ts';
import { ensureDir, FILE_MODE, KEY_MODE, readEnrollmentRecord, readIfExists, removeIfExists, stateLayout, writeFileAtomic, type EnrollmentRecord, type StateLayout } from './state-dir.ts';
import { EDGE_USER, installCommands, installUnit, renderUnit, UNIT_DIR, UNIT_NAME, type Exec } from './systemd.ts';
import { UDEV_RULES_DIR, UDEV_RULES_NAME, udevReloadCommands } from './udev-rules.ts';

/** Adapters, replaceable in tests. */
export interface EnrollDeps {
  /** Progress lines (stderr in the CLI). */
  write: (line: string) => void;
  /** Readers the reader layer sees, filtered by patterns. */
  listReaders?: (patterns: readonly string[]) => Promise<string[]>;
  exec?: Exec;
  unitDir?: string;
  /** Where the reader udev rule goes (default /etc/udev/rules.d). */
  udevRulesDir?: string;
  now?: () => Date;
  /** Revokes the device at the hub; default: the device API's self-revocation over mutual TLS. */
  revoke?: (ctx: { record: EnrollmentRecord; tls: DeviceTls }) => Promise<'revoked' | 'already-refused' | 'no-route'>;
  timeoutMs?: number;
  /** Root and modprobe runner of the kernel NFC module check (tests). */
  nfc?: NfcModuleEnv;
}

export interface EnrollOptions {
  /** The hub's device API (https://), where the token is redeemed; http:// only to a loopback address. */
  hubUrl: string;
  /**
   * SHA-256 fingerprint of the hub's device CA, as the console shows it beside the token: the only CA
   * the token is sent to. Required for https://.
   */
  caFingerprint?: string;
  token?: string;
  edgeId: string;
  stateDir: string;
  /** Do not touch systemd: print the unit and the commands. */
  dryRun?: boolean;
  /** Enroll again even when a good enrollment is present. */
  force?: boolean;
  /** Reader name patterns (edge config readers.include). */
  readers?: string[];
  /** The technician consents to blacklisting and unloading the kernel NFC modules (--fix-nfc-modules). */
  fixNfcModules?: boolean;
  /** Where the device API and broker are, when the hub does not say (or to override it). */
  deviceApiUrl?: string;
  brokerUrl?: string;
  /** The release public key updates must be signed with (edge config updates.releaseKey); default: the one the hub gives. */
  releaseKey?: string;
}

export interface EnrollResult {
  record: EnrollmentRecord;
  /** True when an existing enrollment was kept. */
  kept: boolean;
  unit: string;
}

/** What to do about the codes the hub answers an enrollment with. */
export function redeemHint(e: unknown): string | undefined {
  if (!(e instanceof MyKeyError)) return undefined;
  switch (e.code) {
    case 'enrollment_token_invalid':
      return 'check that --edge-id is the edge id the token was issued for (console: Enrollment tokens), or issue a new token';
    case 'enrollment_token_expired':
      return 'issue a new enrollment token for this edge in the console (Enrollment tokens) and run again with --token';
    case 'enrollment_token_used':
      return 'a token works once: issue a new one in the console and run again with --token';
    case 'forbidden':
      return 'the service of this token is not active at the hub: ask the hub operator';
    case 'rate_limited':
      return 'wait a minute, then run again';
    case 'unavailable':
    case 'timeout':
      return 'check --hub (the hub device API, https://<hub>:8443), the network and the hub; try: curl -k <hub>/healthz';
    case 'insecure_transport':
      return 'pass the hub device API as --hub https://<hub>:8443 and the device CA fingerprint shown in the console as --ca-fingerprint';
    case 'hub_ca_mismatch':
      return 'compare --ca-fingerprint with the one the console shows beside the token; if they match, something between this machine and the hub presents another certificate: do not enroll over this network, tell the hub operator';
    case 'csr_invalid':
      return 'the hub refused the certificate request; delete <state-dir>/tls/pending-key.pem and run again';
    case 'validation_failed':
      return 'check the --edge-id (2-64 lower-case letters, digits, hyphens) and --token as issued in the console';
    case 'unauthorized':
    case 'device_revoked':
      return 'the hub no longer accepts this device certificate: enroll again with a new token (--force --token)';
    default:
      return undefined;
  }
}

export function tlsOf(layout: StateLayout): DeviceTls | undefined {
  const cert = readIfExists(layout.cert);
  const key = readIfExists(layout.key);
  const ca = readIfExists(layout.ca);
  return cert && key && ca ? { cert, key, ca } : undefined;
}

/** Checks that the state directory holds a usable enrollment of `edgeId`; a reason when it does not. */
export function existingEnrollment(
  layout: StateLayout,
  edgeId: string | undefined,
  now: Date,
): { ok: true; record: EnrollmentRecord; tls: DeviceTls } | { ok: false; reason: string; foreign?: string } {
  const record = readEnrollmentRecord(layout);
  if (!record) return { ok: false, reason: 'no enrollment here yet' };
  if (edgeId && record.edgeId !== edgeId) return { ok: false, reason: `this state directory belongs to edge ${record.edgeId}`, foreign: record.edgeId };
  const tls = tlsOf(layout);
  if (!tls) return { ok: false, reason: 'key, certificate or CA file missing' };
  if (!certMatchesKey(tls.cert, tls.key)) return { ok: false, reason: 'the certificate does not belong to the device key' };
  if (!issuedBy(tls.cert, tls.ca)) return { ok: false, reason: 'the certificate was not issued by the stored CA certificate' };
  const facts = certFacts(tls.cert);
  if (facts.commonName !== record.edgeId) return { ok: false, reason: `the certificate names ${String(facts.commonName)}, not ${record.edgeId}` };
  if (facts.notAfter.getTime() <= now.getTime()) return { ok: false, reason: `the certificate expired on ${facts.notAfter.toISOString()}` };
  return { ok: true, record, tls };
}

/** Below this many days left, enroll and status say it is time to rotate. */
export const ROTATE_WARN_DAYS = 30;

const DEFAULT_DEVICE_API_PORT = 8443;
const DEFAULT_BROKER_PORT = 8883;

/**
 * Where the edge talks to: flag > hub's answer > the defaults (--hub itself when it is the https://
 * device API, else the hub's default ports on the hub's host name).
 */
export function endpoints(o: { hubUrl: string; deviceApiUrl?: string; brokerUrl?: string }, answer?: Pick<EnrollmentResponse, 'hubUrl' | 'brokerUrl' | 'brokerUrls'>) {
  const hub = new URL(o.hubUrl);
  const host = hub.hostname;
  return {
    deviceApiUrl: o.deviceApiUrl ?? answer?.hubUrl ?? (hub.protocol === 'https:' ? hub.origin : `https://${host}:${DEFAULT_DEVICE_API_PORT}`),
    brokerUrl: o.brokerUrl ?? answer?.brokerUrl ?? `mqtts://${host}:${DEFAULT_BROKER_PORT}`,
    // A --broker given by the technician names the one broker to use; otherwise the cluster's other nodes as the hub told them.
    ...(o.brokerUrl === undefined && answer?.brokerUrls?.length ? { brokerUrls: answer.brokerUrls } : {}),
  };
}

/** The edge agent's config: identity and TLS from the enrollment; anything else kept from the existing file. */
export function buildEdgeConfig(layout: StateLayout, record: EnrollmentRecord, readers: string[] | undefined, releaseKey?: string): { json: Record<string, unknown>; config: EdgeConfig } {
  let existing: Record<string, unknown> = {};
  const text = readIfExists(layout.config);
  if (text) {
    try {
      const v = JSON.parse(text) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v)) existing = v as Record<string, unknown>;
    } catch {
      // A broken file is replaced; its settings are lost, which the step reports.
    }
  }
  const json: Record<string, unknown> = {
    ...existing,
    edgeId: record.edgeId,
    serviceId: record.serviceId,
    hub: { url: record.deviceApiUrl },
    broker: { url: record.brokerUrl, ...(record.brokerUrls?.length ? { urls: record.brokerUrls } : {}) },
    tls: { cert: layout.cert, key: layout.key, ca: layout.ca },
    stateDir: layout.data,
  };
  if (readers !== undefined) json.readers = { include: readers };
  if (releaseKey) json.updates = { ...(existing.updates as Record<string, unknown> | undefined), releaseKey };
  // Validated against the agent's own schema (all problems at once), with the agent's defaults.
  const config = loadEdgeConfig({ overrides: json, env: {} });
  return { json, config };
}

function unitFor(layout: StateLayout, edgeId: string): string {
  return renderUnit({ edgeId, configPath: layout.config, stateDir: layout.dir });
}

async function systemdStep(c: StepContext, unit: string, dryRun: boolean | undefined, deps: EnrollDeps, stateDir: string): Promise<void> {
  if (dryRun) {
    c.note(`dry run: would write ${deps.unitDir ?? UNIT_DIR}/${UNIT_NAME}:`);
    for (const line of unit.trimEnd().split('\n')) c.note(`  | ${line}`);
    c.note('dry run: would run:');
    c.note(`  $ useradd --system ${EDGE_USER} (unless it exists); chown -R ${EDGE_USER}:${EDGE_USER} ${stateDir}`);
    c.note(`  write ${deps.udevRulesDir ?? UDEV_RULES_DIR}/${UDEV_RULES_NAME} (the known readers' USB device nodes to group ${EDGE_USER}, for the reader healer's USB reset)`);
    for (const cmd of udevReloadCommands()) c.note(`  $ ${cmd.join(' ')}`);
    for (const cmd of installCommands()) c.note(`  $ ${cmd.join(' ')}`);
    c.ok('systemd unit printed (dry run)');
    return;
  }
  const path = await installUnit(unit, { unitDir: deps.unitDir, udevRulesDir: deps.udevRulesDir, exec: deps.exec, stateDir });
  c.ok(`${path} installed; ${UNIT_NAME} enabled and running`);
}

export async function selfTest(c: StepContext, record: EnrollmentRecord, tls: DeviceTls, readers: string[], deps: EnrollDeps): Promise<void> {
  const list = deps.listReaders ?? listReaders;
  const r = await checkReaders(readers, list);
  if (!r.ok) throw needsFix('reader_unavailable', r.detail, r.fix);
  c.ok(r.detail);
  c.ok(await checkHub(record.hubUrl, deps.timeoutMs, tls.ca));
  c.ok(await checkDeviceApi(record.deviceApiUrl, tls, record, deps.timeoutMs));
  c.ok(await checkBroker(record.brokerUrl, record.edgeId, tls, deps.timeoutMs));
  c.ok(await checkSnapshot(record.deviceApiUrl, tls, deps.timeoutMs));
}

/** Writes the certificate, key, CA, config and (last) the enrollment record. */
export function commitEnrollment(
  layout: StateLayout,
  keyPem: string,
  answer: EnrollmentResponse,
  o: { hubUrl: string; deviceApiUrl: string; brokerUrl: string; brokerUrls?: string[] },
  now: Date,
): EnrollmentRecord {
  ensureDir(layout.dir);
  ensureDir(layout.tls);
  ensureDir(layout.data);
  writeFileAtomic(layout.ca, answer.caPem, FILE_MODE);
  writeFileAtomic(layout.key, keyPem, KEY_MODE);
  writeFileAtomic(layout.cert, answer.certPem, FILE_MODE);
  removeIfExists(layout.pendingKey);
  const facts = certFacts(answer.certPem);
  return {
    version: 1,
    edgeId: answer.edgeId,
    serviceId: answer.serviceId,
    hubUrl: o.hubUrl,
    deviceApiUrl: o.deviceApiUrl,
    brokerUrl: o.brokerUrl,
    ...(o.brokerUrls?.length ? { brokerUrls: o.brokerUrls } : {}),
    enrolledAt: now.toISOString(),
    notAfter: facts.notAfter.toISOString(),
    certFingerprint: facts.fingerprint256,
  };
}

/** Checks the hub's answer against what was asked before anything is written. */
export function checkAnswer(answer: EnrollmentResponse, keyPem: string, edgeId: string): void {
  if (answer.edgeId !== edgeId) throw new MyKeyError('device_id_mismatch', `the hub issued a certificate for ${answer.edgeId}, not ${edgeId}`);
  if (!certMatchesKey(answer.certPem, keyPem)) throw new MyKeyError('validation_failed', 'the certificate from the hub does not carry this device key');
  if (!issuedBy(answer.certPem, answer.caPem)) throw new MyKeyError('validation_failed', 'the certificate from the hub is not signed by the CA certificate it sent');
  if (certFacts(answer.certPem).commonName !== edgeId) throw new MyKeyError('validation_failed', 'the certificate from the hub does not name this edge');
}

/** A key for the CSR: the pending one from an unanswered attempt, or a new one (written 0600 first). */
export async function pendingKey(layout: StateLayout, c: StepContext): Promise<{ keyPem: string; keyPair: Awaited<ReturnType<typeof importDeviceKey>> }> {
  ensureDir(layout.dir);
  ensureDir(layout.tls);
  const old = readIfExists(layout.pendingKey);
  if (old) {
    try {
      const keyPair = await importDeviceKey(old);
      c.ok(`reusing the key of an unfinished attempt (${layout.pendingKey})`);
      return { keyPem: old, keyPair };
    } catch {
      c.warn('the pending key is unreadable; making a new one');
    }
  }
  const k = await generateDeviceKey();
  writeFileAtomic(layout.pendingKey, k.keyPem, KEY_MODE);
  c.ok(`new ECDSA P-256 device key (${layout.pendingKey}, mode 0600)`);
  return k;
}

/** Enrolls this machine as edge `edgeId`. Throws StepFailed (already printed) on the first failed step. */
export async function enroll(o: EnrollOptions, deps: EnrollDeps): Promise<EnrollResult> {
  const now = deps.now ?? (() => new Date());
  const layout = stateLayout(o.stateDir);
  const readers = o.readers ?? [];
  const steps = createSteps(deps.write, 7, redeemHint);

  await steps.step('Checking prerequisites', async (c) => {
    if (!isEdgeId(o.edgeId)) throw needsFix('validation_failed', `"${o.edgeId}" is not an edge id`, 'an edge id is 2-64 lower-case letters, digits and hyphens, as issued with the token');
    // Checked before the token is spent.
    if (o.releaseKey && !isReleasePublicKey(o.releaseKey)) {
      throw needsFix('validation_failed', 'the release key is not an Ed25519 public key', 'pass the one line `provisioning/release/cli.ts keygen` printed (base64 SubjectPublicKeyInfo)');
    }
    // Where the token may go is settled before anything else: TLS to a pinned CA, or loopback.
    const hub = checkEnrollmentUrl(o.hubUrl);
    if (o.caFingerprint) normalizeFingerprint(o.caFingerprint);
    else if (hub.protocol === 'https:') {
      throw needsFix('validation_failed', 'no --ca-fingerprint given', 'pass the device CA fingerprint the console shows beside the token: --ca-fingerprint AB:CD:…');
    } else c.warn(`${hub.origin} is plain http on this machine: the hub's CA is taken from its answer, unpinned`);
    for (const r of [checkNode(), checkPcscd()]) {
      if (!r.ok) throw needsFix('unavailable', r.detail, r.fix);
      c.ok(r.detail);
    }
    const nfc = await checkNfcModules({ ...deps.nfc, fix: o.fixNfcModules });
    if (!nfc.ok) throw needsFix('reader_unavailable', nfc.detail, nfc.fix);
    c.ok(nfc.detail);
    if (nfc.warn) c.warn(nfc.warn);
    const r = await checkReaders(readers, deps.listReaders ?? listReaders);
    if (!r.ok) throw needsFix('reader_unavailable', r.detail, r.fix);
    c.ok(r.detail);
    unitFor(layout, o.edgeId); // paths a unit cannot carry fail here, before the token is spent
  });

  const found = await steps.step('Looking for an existing enrollment', (c) => {
    const e = existingEnrollment(layout, o.edgeId, now());
    if (!e.ok && e.foreign && !o.force) {
      throw needsFix('conflict', `${layout.dir} holds the enrollment of edge ${e.foreign}`, `decommission ${e.foreign} first, use another --state-dir, or pass --force to replace it`);
    }
    if (e.ok && !o.force) {
      c.ok(`edge ${e.record.edgeId} of ${e.record.serviceId} is enrolled (certificate valid until ${e.record.notAfter}); kept — pass --force to enroll again`);
      const days = Math.floor((Date.parse(e.record.notAfter) - now().getTime()) / 86_400_000);
      if (days < ROTATE_WARN_DAYS) c.warn(`the certificate expires in ${days} days: run rotate (no token is needed while it is valid)`);
      return e;
    }
    c.note(e.ok ? 'a good enrollment is present; --force: enrolling again' : `${e.reason}: enrolling`);
    return undefined;
  });

  let record: EnrollmentRecord;
  let tls: DeviceTls;
  let releaseKey = o.releaseKey;
  if (found) {
    await steps.step('Device key and certificate request', (c) => c.ok('skipped: the existing device key is kept'));
    await steps.step('Redeeming the enrollment token', (c) => c.ok('skipped: already enrolled (the token, if given, stays unused)'));
    // A --broker given now names the one broker to use: the cluster nodes told at enrollment are dropped.
    const { brokerUrls, ...rest } = found.record;
    const kept = o.brokerUrl === undefined && brokerUrls ? { ...rest, brokerUrls } : rest;
    record = { ...kept, hubUrl: o.hubUrl, ...endpoints({ hubUrl: o.hubUrl, deviceApiUrl: o.deviceApiUrl ?? found.record.deviceApiUrl, brokerUrl: o.brokerUrl ?? found.record.brokerUrl }) };
    tls = found.tls;
  } else {
    const key = await steps.step('Device key and certificate request', async (c) => {
      const k = await pendingKey(layout, c);
      const csrPem = await createCsr(o.edgeId, k.keyPair);
      c.ok(`PKCS#10 request for CN=${o.edgeId}`);
      return { keyPem: k.keyPem, csrPem };
    });
    const answer = await steps.step('Redeeming the enrollment token', async (c) => {
      if (!o.token) throw needsFix('bad_request', 'no enrollment token given', 'issue a token for this edge id in the console (Enrollment tokens) and pass it with --token');
      const a = await redeemToken(o.hubUrl, { token: o.token, edgeId: o.edgeId, csrPem: key.csrPem }, { caFingerprint: o.caFingerprint, timeoutMs: deps.timeoutMs });
      checkAnswer(a, key.keyPem, o.edgeId);
      c.ok(`device certificate for ${a.edgeId} of service ${a.serviceId}${a.notAfter ? `, valid until ${a.notAfter}` : ''}`);
      return a;
    });
    const where = endpoints(o, answer);
    // The hub's release key (signed edge updates) unless the technician gave one (edge/update).
    const told = (answer as { releaseKey?: unknown }).releaseKey;
    releaseKey ??= typeof told === 'string' && isReleasePublicKey(told) ? told : undefined; // a bad key told is left out rather than stop the agent
    record = commitEnrollment(layout, key.keyPem, answer, { hubUrl: o.hubUrl, ...where }, now());
    tls = { cert: answer.certPem, key: key.keyPem, ca: answer.caPem };
  }

  await steps.step('Writing the edge configuration', (c) => {
    const { json } = buildEdgeConfig(layout, record, o.readers, releaseKey);
    writeFileAtomic(layout.config, JSON.stringify(json, null, 2) + '\n', 0o640);
    writeFileAtomic(layout.enrollment, JSON.stringify(record, null, 2) + '\n', FILE_MODE);
    c.ok(`${layout.config} (device API ${record.deviceApiUrl}, broker ${record.brokerUrl})`);
    c.ok(`keys in ${layout.tls} (device key mode 0600)`);
  });

  // The self-test runs before the service starts: it connects with the edge's own client id, so a
  // running agent would lose its session to it (MQTT-3.1.4-2), and a service is started only with a
  // configuration that has passed.
  await steps.step('Self-test', (c) => selfTest(c, record, tls, readers, deps));

  const unit = await steps.step(o.dryRun ? 'System service (dry run)' : 'System service', async (c) => {
    const text = unitFor(layout, record.edgeId);
    await systemdStep(c, text, o.dryRun, deps, layout.dir);
    return text;
  });
  deps.write(`enrolled: edge ${record.edgeId}, service ${record.serviceId}, certificate valid until ${record.notAfter}`);
  return { record, kept: !!found, unit };
}

/** A short account of the enrollment in a state directory (for a technician or a timer). */
export function status(stateDir: string, now = new Date()): { lines: string[]; ok: boolean; daysLeft?: number } {
  const layout = stateLayout(stateDir);
  const e = existingEnrollment(layout, undefined, now);
  if (!e.ok) return { lines: [`${layout.dir}: ${e.reason}`], ok: false };
  const daysLeft = Math.floor((Date.parse(e.record.notAfter) - now.getTime()) / 86_400_000);
  return {
    ok: true,
    daysLeft,
    lines: [
      `edge        ${e.record.edgeId}`,
      `service     ${e.record.serviceId}`,
      `hub         ${e.record.hubUrl}`,
      `device API  ${e.record.deviceApiUrl}`,
      `broker      ${e.record.brokerUrl}`,
      `enrolled    ${e.record.enrolledAt}`,
      `valid until ${e.record.notAfter} (${daysLeft} days left)`,
    ],
  };
}
