// The edge's updater, firmware style. At start it finishes a trial: the version just switched to runs
// its self-test and is kept, or the edge switches back and restarts, reporting why. Then it asks the
// hub for a release now and then: checks the signed manifest against the release key from enrollment
// and against itself, downloads the bundle (resuming a cut download), checks the signed digest,
// unpacks it beside the running version, records the trial, switches `current` and exits for the
// supervisor to restart it. Every step leaves a state a power cut can restart from (layout.ts).
import type { KeyObject } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MyKeyError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { UpdateOffer, UpdateReport } from '../../shared/release.ts';
import { deviceJson, downloadBundle, type DeviceClientOptions } from './device-client.ts';
import { checkRelease, installBeside, readVerifiedBundle } from './install.ts';
import { RESTART_EXIT_CODE, rollBack, type Layout, type UpdateStateFile } from './layout.ts';
import type { SelfTestResult } from './self-test.ts';

/** The steps of an update, in order (tests cut the power at each). */
export type UpdateStep = 'download' | 'verify' | 'unpack' | 'switch' | 'restart' | 'self_test';

export interface UpdaterOptions {
  layout: Layout;
  keys: readonly KeyObject[];
  client: DeviceClientOptions;
  serviceId: string;
  /** The version of the factory install (what runs when `current` is absent). */
  factoryVersion: string;
  checkMs: number;
  selfTestMs: number;
  selfTest: (timeoutMs: number) => Promise<SelfTestResult>;
  /** Stops the agent and exits with the code (the supervisor restarts it). */
  restart: (code: number) => void;
  log: Logger;
  /** Called as each step begins. */
  onStep?: (step: UpdateStep, version: string) => void;
  download?: { attempts?: number; delayMs?: number };
  /** The factory install's node_modules, linked into each release (native modules stay outside the bundles). */
  nodeModules?: string;
}

export class Updater {
  readonly #o: UpdaterOptions;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;
  #stopped = true;

  constructor(o: UpdaterOptions) {
    this.#o = o;
  }

  /** The version that runs now. */
  get running(): string {
    return this.#o.layout.currentVersion() ?? this.#o.factoryVersion;
  }

  /** Finishes a trial if there is one, then checks now and every checkMs. */
  async start(): Promise<void> {
    this.#stopped = false;
    const s = this.#o.layout.readState();
    if (s.trial && s.trial.version === this.running) {
      const passed = await this.#selfTest(s);
      if (!passed) return;
    }
    const tick = async () => {
      if (this.#stopped) return;
      await this.check().catch((e) => this.#o.log.warn('update check failed', { code: e instanceof MyKeyError ? e.code : undefined, error: (e as Error).message }));
      // ±25 %: a fleet restarted together (a hub outage, a power cut in a town) does not ask at once.
      if (!this.#stopped) this.#timer = setTimeout(() => void tick(), this.#o.checkMs * (0.75 + Math.random() / 2));
    };
    this.#timer = setTimeout(() => void tick(), Math.random() * Math.min(this.#o.checkMs / 4, 30_000));
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  async #selfTest(s: UpdateStateFile): Promise<boolean> {
    const t = s.trial!;
    this.#o.onStep?.('self_test', t.version);
    await this.#report({ state: 'self_test', version: t.version }).catch(() => undefined);
    // Three quarters of the bound: the launcher's watchdog (boot.ts) holds the whole bound, so the
    // agent's own verdict, with its reason, comes first whenever the agent is alive to give it.
    const r = await this.#o.selfTest(Math.floor((t.selfTestMs * 3) / 4));
    if (r.ok) {
      const next: UpdateStateFile = { format: 1, last: { state: 'installed', version: t.version }, blocked: s.blocked };
      this.#o.layout.writeState(next);
      this.#o.log.info('update installed: the new version passed its self-test', { version: t.version });
      this.#prune(t.version, t.previous);
      await this.#report(next.last!).catch(() => undefined);
      return true;
    }
    rollBack(this.#o.layout, this.#o.layout.readState(), 'update_self_test_failed', r.reason);
    this.#o.log.error('update rolled back: the new version failed its self-test', { version: t.version, failing: r.failing });
    this.#o.restart(RESTART_EXIT_CODE);
    return false;
  }

  /** Keeps the running release and the one before it; removes other release folders and downloads. */
  #prune(keep: string, previous: string | null): void {
    const l = this.#o.layout;
    try {
      for (const name of readdirSync(l.paths.releases)) if (name !== keep && name !== previous) rmSync(join(l.paths.releases, name), { recursive: true, force: true });
      rmSync(l.paths.downloads, { recursive: true, force: true });
    } catch {
      // nothing to prune
    }
  }

  #report(r: Omit<UpdateReport, 'running'>): Promise<unknown> {
    return deviceJson(this.#o.client, 'POST', '/v1/device/update', { running: this.running, ...r });
  }

  #refuse(s: UpdateStateFile, version: string, code: string, reason: string): Promise<unknown> {
    const last = { state: 'refused' as const, version, code, reason: reason.slice(0, 300) };
    this.#o.layout.writeState({ ...s, last });
    this.#o.log.warn('update refused', { version, code });
    return this.#report(last);
  }

  /** One check: report the last outcome, ask for a release, install it if it may be. */
  async check(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      await this.#check();
    } finally {
      this.#busy = false;
    }
  }

  async #check(): Promise<void> {
    const { layout, onStep } = this.#o;
    let s = layout.readState();
    await this.#report(s.last ?? { state: 'idle' });
    const offer = await deviceJson<UpdateOffer>(this.#o.client, 'GET', '/v1/device/update');
    const rel = offer?.release;
    if (!rel || rel.version === this.running || s.blocked.includes(rel.version)) return;
    if (s.last?.state === 'refused' && s.last.version === rel.version) return; // said so already

    const running = this.running;
    const checked = checkRelease(rel.signed, this.#o.keys, { running, serviceId: this.#o.serviceId });
    if (!checked.ok) return void (await this.#refuse(s, rel.version, checked.code, checked.message));
    const m = checked.value;
    if (m.version !== rel.version) return void (await this.#refuse(s, rel.version, 'release_manifest_invalid', `the offer names ${rel.version}, the signed manifest ${m.version}`));

    onStep?.('download', m.version);
    await this.#report({ state: 'downloading', version: m.version });
    mkdirSync(layout.paths.downloads, { recursive: true });
    const part = join(layout.paths.downloads, `${m.version}.part`);
    try {
      await downloadBundle(this.#o.client, rel.bundle, part, m.size, this.#o.download);
    } catch (e) {
      if (e instanceof MyKeyError && e.code === 'release_size_mismatch') {
        rmSync(part, { force: true });
        return void (await this.#refuse(s, m.version, e.code, e.message));
      }
      // Transient: said to the hub (not counted as a failure) and resumed at the next check from the
      // bytes already on disk; nothing is unpacked from a partial bundle.
      const code = e instanceof MyKeyError ? e.code : 'release_download_incomplete';
      await this.#report({ state: 'downloading', version: m.version, code, reason: (e as Error).message.slice(0, 300) }).catch(() => undefined);
      throw e;
    }

    onStep?.('verify', m.version);
    const bundle = readVerifiedBundle(part, m);
    if (!bundle.ok) {
      rmSync(part, { force: true }); // a wrong bundle is never resumed
      return void (await this.#refuse(s, m.version, bundle.code, bundle.message));
    }

    onStep?.('unpack', m.version);
    await this.#report({ state: 'installing', version: m.version });
    const installed = installBeside(layout, m.version, bundle.value, 'main.js', this.#o.nodeModules);
    if (!installed.ok) return void (await this.#refuse(s, m.version, installed.code, installed.message));

    onStep?.('switch', m.version);
    s = layout.readState();
    const previous = layout.currentVersion();
    // The trial is recorded before the switch: a cut between the two leaves a trial that never switched
    // (dropped at the next start), never a switched version nobody watches.
    layout.writeState({ ...s, trial: { version: m.version, previous, boots: 0, selfTestMs: this.#o.selfTestMs }, last: { state: 'restarting', version: m.version } });
    layout.switchTo(m.version);
    rmSync(part, { force: true });

    onStep?.('restart', m.version);
    await this.#report({ state: 'restarting', version: m.version }).catch(() => undefined);
    this.#o.log.info('update switched; restarting into it', { version: m.version, from: previous ?? this.#o.factoryVersion });
    this.#o.restart(RESTART_EXIT_CODE);
  }
}
