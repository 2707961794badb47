// The edge agent: wires config, state, cache, reader, sync, lookup, hand-off, registration and the
// kiosk page; nothing else. `start()` brings the parts up in order (state first, so the cache answers
// from disk before the network is back), `stop()` takes them down in reverse; SIGTERM and SIGINT stop
// it cleanly.
//
//   tsx edge/main.ts --config edge.json        (env overrides: MYKEY_EDGE_<SECTION>_<KEY>)
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { touchAssuranceOf } from '../shared/device-api.ts';
import { MyKeyError } from '../shared/errors.ts';
import { createLogger, type Logger, type LogLevel } from '../shared/log.ts';
import { EdgeCache } from './cache/index.ts';
import { brokerUrls, loadEdgeConfig, readerFilter, type EdgeConfig } from './config.ts';
import { Handoff, targetsFromConfig } from './handoff/index.ts';
import { KioskServer, type KioskHealth } from './kiosk/index.ts';
import { TouchDesk, TouchLookup, type HealthView } from './lookup/index.ts';
import { parseAnchors, PinTouchFlow, readPinTouchIdentity } from './pintouch/index.ts';
import { readIdentityNow, ReaderHealer, ReaderManager, TouchPipeline, type PcscFactory, type UsbResetter } from './reader/index.ts';
import { CommandSocket, HttpDeviceApi, readerSigner, RegistrationFlow } from './register/index.ts';
import { EdgeState } from './state/index.ts';
import { SyncAgent } from './sync/index.ts';
import { CertRenewer, recoverRenewal } from './renew/renewer.ts';
import { createEdgeMetrics } from './metrics.ts';
import { createAgentUpdater, runningRelease } from './update/agent-updater.ts';

export const EDGE_VERSION = '0.1.0';

export interface EdgeAgentOptions {
  log?: Logger;
  /** PC/SC factory (tests); the real pcsclite by default. */
  pcsc?: PcscFactory;
  /** Also export the process metrics (memory, CPU, event loop) when metrics.port is set; runEdgeAgent sets it. */
  processMetrics?: boolean;
  /** How a hung USB reader is reset (tests: a recorder); sysfs and USBDEVFS_RESET by default. */
  usbReset?: UsbResetter;
  /** How often the agent asks the hub whether its certificate must be renewed (edge/renew). Default 6 hours. */
  renewIntervalMs?: number;
}

/** Reads the TLS files named in the config; every missing or unreadable file is reported at once. */
function readTls(config: EdgeConfig): { ca: Buffer; cert: Buffer; key: Buffer } {
  const errors: string[] = [];
  const read = (key: 'ca' | 'cert' | 'key') => {
    try {
      return readFileSync(config.tls[key]);
    } catch (e) {
      errors.push(`/tls/${key}: cannot read ${config.tls[key]} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      return Buffer.alloc(0);
    }
  };
  const tls = { ca: read('ca'), cert: read('cert'), key: read('key') };
  if (errors.length) throw new MyKeyError('config_invalid', `invalid configuration:\n  - ${errors.join('\n  - ')}`, { details: { errors } });
  return tls;
}

/** Assembles an edge agent from a config. The constructor-like part only builds; start() acts. */
export function createEdgeAgent(config: EdgeConfig, opts: EdgeAgentOptions = {}) {
  const log = opts.log ?? createLogger('edge', { level: config.logLevel as LogLevel });
  // A certificate renewal cut short by a power cut is finished (or dropped) before the files are read.
  const recovered = recoverRenewal(config.tls);
  if (recovered !== 'none') log.warn('an interrupted certificate renewal was found', { outcome: recovered });
  const tls = readTls(config);
  const maxStalenessMs = config.staleness.maxSeconds * 1000;

  const cache = new EdgeCache();
  const state = new EdgeState({ dir: config.stateDir, log: log.child('state') });
  const sync = new SyncAgent({
    hubUrl: config.hub.url,
    brokerUrl: brokerUrls(config),
    tls,
    state,
    cache,
    // The signed release it runs (edge/update), or the factory version.
    version: runningRelease(config) ?? EDGE_VERSION,
    maxStalenessMs,
    log: log.child('sync'),
    extraHealth: () => (manager.running && manager.readers().length === 0 ? 'reader_missing' : undefined),
    readerHealth: () => (config.readers.heal.report ? healer?.report() : undefined),
  });

  const manager = new ReaderManager({ log: log.child('reader'), readerFilter: readerFilter(config.readers.include), pcsc: opts.pcsc });
  // PIN-checked touch (#14): what the hub said about the service (kept in the state directory, so a
  // reboot offline keeps it). A touch then also reads the certificate and the PIN's tries left.
  const pinRequired = () => touchAssuranceOf(state.identity()?.touchAssurance) === 'pin';
  let anchorsText: string | undefined;
  let anchors: ReturnType<typeof parseAnchors> = [];
  const jpkiAnchors = () => {
    const list = state.identity()?.jpkiAnchors;
    const text = JSON.stringify(list ?? []);
    if (text !== anchorsText) {
      anchorsText = text;
      anchors = parseAnchors(list);
    }
    return anchors;
  };
  const pipeline = new TouchPipeline(manager, {
    log: log.child('touch'),
    // The plain read hands its identity on inside PC/SC's callback of the card's last answer.
    readIdentityNow: (s, done) => {
      if (!pinRequired()) return readIdentityNow(s, done);
      readPinTouchIdentity(s).then(
        (identity) => done(undefined, identity),
        (err: unknown) => done(err),
      );
    },
  });
  const heal = config.readers.heal;
  const healer = heal.enabled
    ? new ReaderHealer(
        { manager, touches: pipeline },
        {
          roots: { sys: heal.sysRoot, dev: heal.devRoot },
          ...(opts.usbReset ? { reset: opts.usbReset } : {}),
          pollMs: heal.pollSeconds * 1000,
          missingMs: heal.missingSeconds * 1000,
          failuresBeforeReset: heal.failuresBeforeReset,
          maxResets: heal.maxResets,
          backoffMs: heal.backoffSeconds * 1000,
          technicianAfter: heal.technicianAfter,
          log: log.child('reader-health'),
        },
      )
    : undefined;

  // The sync secret is decoded once per value the hub gives.
  let secretText: string | undefined;
  let secret: Uint8Array | undefined;
  const currentSecret = () => {
    const text = state.identity()?.syncSecret;
    if (text !== secretText) {
      secretText = text;
      secret = text ? new Uint8Array(Buffer.from(text, 'base64url')) : undefined;
    }
    return secret;
  };
  const health = (): HealthView => {
    const c = sync.contact();
    const now = Date.now();
    if (c.verdict === 'clock_unsure') return { state: 'clock_unsure', lastContactMs: undefined };
    const lastContactMs = c.ageMs !== undefined ? now - c.ageMs : c.verdict === 'fresh' ? now : undefined;
    return { state: c.verdict === 'stale' ? 'stale' : 'ok', lastContactMs };
  };
  const kioskHealth = (): KioskHealth => {
    if (!cache.synced) return 'not_synced';
    const h = sync.health();
    return h === 'reader_missing' ? 'ok' : h;
  };

  const handoff = new Handoff(targetsFromConfig(config.handoff.targets, { log: log.child('handoff') }), { log: log.child('handoff') });
  const registration = config.registration.enabled
    ? new RegistrationFlow({
        api: new HttpDeviceApi({ hubUrl: config.hub.url, tls }),
        signer: readerSigner(manager, { pause: pipeline }),
        requireHolderProof: config.registration.requireHolderProof,
        stepMs: config.registration.stepSeconds * 1000,
        resultMs: config.kiosk.resultSeconds * 1000,
        log: log.child('register'),
      })
    : undefined;
  const commands = registration && config.registration.socketPath ? new CommandSocket({ path: config.registration.socketPath, flow: registration, log: log.child('register') }) : undefined;
  const kiosk = config.kiosk.enabled
    ? new KioskServer({
        host: config.kiosk.host,
        token: config.kiosk.token,
        allowedHosts: config.kiosk.allowedHosts,
        port: config.kiosk.port,
        language: config.kiosk.language,
        resultMs: config.kiosk.resultSeconds * 1000,
        health: kioskHealth,
        registration,
        pinTouch: { pin: (p) => pinTouch.pin(p), cancel: () => pinTouch.cancel() },
        log: log.child('kiosk'),
      })
    : undefined;
  healer?.on('state', ({ report, advice }) => {
    kiosk?.showReader(report.state !== 'ok' && advice ? { state: report.state, advice } : undefined);
    sync.statusChanged();
  });
  if (kiosk) {
    handoff.add(kiosk);
    registration?.on((v) => kiosk.showRegistration(v));
  }

  const lookup = new TouchLookup({
    cache,
    secret: currentSecret,
    health,
    policy: { maxStalenessMs, whenStale: config.staleness.policy },
    handoff,
    context: { serviceId: config.serviceId, edgeId: config.edgeId, storeId: config.storeId || undefined },
    onCount: (name) => state.count(name),
  });
  const pinTouch = new PinTouchFlow({ lookup, cards: manager, pause: pipeline, anchors: jpkiAnchors, timeoutMs: config.kiosk.pinSeconds * 1000, log: log.child('pin-touch') });
  if (kiosk) pinTouch.on((v) => kiosk.showPinTouch(v));
  const metrics = createEdgeMetrics({ touches: () => lookup.counters(), pinTouches: () => pinTouch.stats(), sync, cache, processMetrics: opts.processMetrics });
  const desk = new TouchDesk({ source: pipeline, lookup, registration, pinTouch: { required: pinRequired, begin: (r, i) => pinTouch.begin(r, i) }, log: log.child('touch') });
  const updater = createAgentUpdater(config, {
    tls,
    version: EDGE_VERSION,
    online: () => sync.connected && cache.synced,
    readerUp: () => manager.running,
    lookup: () => void cache.lookupMyKey('AAAAAAAA'),
    stop: () => agent.stop(),
    log: log.child('update'),
  });

  // After a device CA rotation the hub asks for a new certificate (renewCertificate in the device
  // config); the renewer gets one and the sync agent is restarted so the MQTT session and the HTTP
  // calls use it (the same `tls` object, switched in place). Only over https: mutual TLS is what
  // a renewal is authorized by.
  const renewer = config.hub.url.startsWith('https:')
    ? new CertRenewer({
        hubUrl: config.hub.url,
        edgeId: config.edgeId,
        paths: config.tls,
        tls,
        intervalMs: opts.renewIntervalMs,
        log: log.child('renew'),
        onRenewed: async () => {
          if (!started) return;
          await sync.stop();
          await sync.start();
        },
      })
    : undefined;

  let started = false;
  const agent = {
    config,
    cache,
    state,
    sync,
    manager,
    pipeline,
    healer,
    handoff,
    kiosk,
    registration,
    lookup,
    pinTouch,
    metrics,
    renewer,
    async start(): Promise<void> {
      if (started) return;
      started = true;
      const report = await state.open(cache);
      const id = state.identity();
      if (id && (id.edgeId !== config.edgeId || id.serviceId !== config.serviceId)) {
        log.warn('the state directory belongs to another edge or service; the hub config will replace it', { stateService: id.serviceId });
      }
      await handoff.start();
      await commands?.start();
      await kiosk?.start();
      desk.start();
      pipeline.start();
      manager.start();
      healer?.start();
      await sync.start();
      renewer?.start();
      const metricsUrl = config.metrics.port ? await metrics.listen(config.metrics.port) : null;
      void updater?.start();
      log.info('edge agent started', {
        edgeId: config.edgeId,
        serviceId: config.serviceId,
        mappings: report.mappings,
        appliedSeq: report.appliedSeq,
        kiosk: kiosk ? kiosk.url : null,
        metrics: metricsUrl,
        targets: handoff.targets.map((t) => t.name),
      });
    },
    async stop(): Promise<void> {
      if (!started) return;
      started = false;
      updater?.stop();
      desk.stop();
      await metrics.close();
      await pinTouch.stop();
      await pipeline.stop();
      await healer?.stop();
      await manager.stop();
      await registration?.stop();
      await commands?.stop();
      await renewer?.stop();
      await sync.stop();
      await handoff.stop(); // includes the kiosk page
      await state.close();
      log.info('edge agent stopped', { ...lookup.counters() });
    },
  };
  return agent;
}

export type EdgeAgent = ReturnType<typeof createEdgeAgent>;

function parseArgs(argv: string[]): { config?: string } {
  const out: { config?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--config') out.config = argv[++i];
    else if (argv[i] === '--help' || argv[i] === '-h') {
      console.log('usage: tsx edge/main.ts --config edge.json\nEnvironment overrides: MYKEY_EDGE_<SECTION>_<KEY>, e.g. MYKEY_EDGE_KIOSK_PORT=8088');
      process.exit(0);
    } else throw new MyKeyError('config_invalid', `unknown argument ${argv[i]}`);
  }
  return out;
}

/** Runs an edge agent until SIGTERM or SIGINT. */
export async function runEdgeAgent(config: EdgeConfig, opts: EdgeAgentOptions = {}): Promise<EdgeAgent> {
  const log = opts.log ?? createLogger('edge', { level: config.logLevel as LogLevel });
  const agent = createEdgeAgent(config, { processMetrics: true, ...opts, log });
  let stopping = false;
  const shutdown = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal: sig });
    const force = setTimeout(() => {
      log.error('stop took too long; exiting');
      process.exit(1);
    }, 10_000);
    force.unref();
    try {
      await agent.stop();
      process.exit(0);
    } catch (e) {
      log.error('stop failed', { error: e });
      process.exit(1);
    }
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  await agent.start();
  return agent;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const args = parseArgs(process.argv.slice(2));
    await runEdgeAgent(loadEdgeConfig({ file: args.config }));
  } catch (e) {
    console.error(e instanceof MyKeyError ? e.message : e);
    process.exit(1);
  }
}
