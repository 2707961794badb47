// The edge side of the sync contract (shared/sync.ts, shared/topics.ts), assembled from its parts:
// the MQTT session (session.ts), the apply queue with catch-up and snapshots (apply-queue.ts),
// health and status (health.ts, contact-clock.ts) and the hub's commands (commands.ts); the device
// HTTP API through hub-client.ts.
//
// - After every (re)connect, and every `pollMs`, the agent catches up anyway: the broker may have lost
//   the session (a restart, a broker without persistence), the hub's log never does.
// - Bad payloads (oversized, not JSON, not the schema, a batch with a hole) are dropped with a logged
//   code; nothing a broker delivers can stop the agent.
//
// Constructors assign; start() and stop() act.
import { performance } from 'node:perf_hooks';
import { silentLogger, type Logger } from '../../shared/log.ts';
import type { ErrorCode } from '../../shared/errors.ts';
import type { EdgeStatus } from '../../shared/sync.ts';
import { parseTopic } from '../../shared/topics.ts';
import { TypedEvents } from '../../shared/typed-events.ts';
import type { EdgeCache } from '../cache/edge-cache.ts';
import type { DeviceIdentity, EdgeState } from '../state/edge-state.ts';
import { ApplyQueue } from './apply-queue.ts';
import { Backoff } from './backoff.ts';
import { runCommand } from './commands.ts';
import { ContactClock, type ContactAssessment } from './contact-clock.ts';
import { codeOf, type SyncEvents, type SyncStats } from './events.ts';
import { HealthJudge, type Health } from './health.ts';
import { HubClient, type TlsMaterial } from './hub-client.ts';
import { checkLogPayload } from './log-message.ts';
import { checkCommandPayload } from './payloads.ts';
import { MqttSession } from './session.ts';

export type { Health } from './health.ts';
export type { SyncEvents, SyncStats } from './events.ts';

export interface SyncAgentOptions {
  /** Base URL of the hub's device API. */
  hubUrl: string;
  /** `mqtts://hub.example:8883` (or `mqtt://127.0.0.1:port` in tests); several: the nodes of a cluster, tried in turn. */
  brokerUrl: string | readonly string[];
  /** Hub CA and the device certificate and key, for both the broker and the hub API. */
  tls?: TlsMaterial;
  /** Replaces the built-in HTTP transport of the hub API. */
  fetch?: typeof globalThis.fetch;
  /** Opened state (EdgeState.open(cache) done). */
  state: EdgeState;
  /** The cache that state was opened into. */
  cache: EdgeCache;
  /** Agent version reported in the status. */
  version: string;
  log?: Logger;
  /** Out of touch longer than this: `stale`. Default 1 hour. */
  maxStalenessMs?: number;
  /** A wall time known to be past (the build date); an earlier clock is wrong. Default 2026-01-01. */
  notBeforeMs?: number;
  /** Largest tolerated distance from the hub's Date header. Default 5 minutes. */
  maxClockSkewMs?: number;
  /** Periodic status republication. Default 60 s. */
  statusIntervalMs?: number;
  /** How often health is re-judged. Default 5 s. */
  healthIntervalMs?: number;
  /** Catch-up through HTTP even without a hint, this often. Default 5 minutes. */
  pollMs?: number;
  /** MQTT keepalive in seconds. Default 30. */
  keepaliveS?: number;
  /** Reconnect and retry backoff. Default 1 s to 60 s. */
  backoff?: { minMs?: number; maxMs?: number };
  /** Entries per /changes page. Default 1000. */
  pageSize?: number;
  /** Health of other parts (the reader) folded into the status when the sync itself is ok. */
  extraHealth?: () => Health | undefined;
  /** The reader's health, carried in the status as `reader` (edge/reader/reader-health.ts). */
  readerHealth?: () => EdgeStatus['reader'];
  /** Clocks (tests). */
  now?: () => number;
  monoNow?: () => number;
}

const DEFAULT_NOT_BEFORE = Date.parse('2026-01-01T00:00:00Z');

export class SyncAgent {
  readonly events: TypedEvents<SyncEvents>;
  readonly #o: SyncAgentOptions;
  readonly #log: Logger;
  readonly #state: EdgeState;
  readonly #cache: EdgeCache;
  readonly #hub: HubClient;
  readonly #health: HealthJudge;
  readonly #queue: ApplyQueue;
  readonly #session: MqttSession;
  #identity: DeviceIdentity | undefined;
  #running = false;
  #timers = new Set<NodeJS.Timeout>();
  #statusDue: NodeJS.Timeout | undefined;
  #stats: SyncStats = { applied: 0, duplicates: 0, gaps: 0, snapshots: 0, catchUps: 0, dropped: 0, connects: 0, batches: 0 };

  constructor(opts: SyncAgentOptions) {
    this.#o = opts;
    this.#log = opts.log ?? silentLogger;
    this.#state = opts.state;
    this.#cache = opts.cache;
    this.events = new TypedEvents<SyncEvents>(this.#log, 'sync');
    this.#hub = new HubClient({ hubUrl: opts.hubUrl, tls: opts.tls, fetch: opts.fetch });
    const now = opts.now ?? Date.now;
    const mono = opts.monoNow ?? (() => performance.now());
    const clock = new ContactClock({
      maxStalenessMs: opts.maxStalenessMs ?? 60 * 60_000,
      notBeforeMs: opts.notBeforeMs ?? DEFAULT_NOT_BEFORE,
      maxSkewMs: opts.maxClockSkewMs,
      lastContactWall: opts.state.lastContactWall(),
      now: () => ({ mono: mono(), wall: now() }),
    });
    this.#health = new HealthJudge({
      clock,
      state: opts.state,
      cache: opts.cache,
      log: this.#log,
      version: opts.version,
      now,
      identity: () => this.#identity,
      connected: () => this.connected,
      catchUpFailed: () => this.#queue.catchUpFailed,
      extraHealth: opts.extraHealth,
      changed: (health, previous, ageMs) => {
        this.events.emit('health', { health, previous, ageMs });
        if (health === 'stale') this.events.emit('stale', { ageMs });
        this.#statusSoon();
      },
    });
    this.#queue = new ApplyQueue({
      cache: opts.cache,
      state: opts.state,
      hub: this.#hub,
      log: this.#log,
      events: this.events,
      stats: this.#stats,
      health: this.#health,
      identity: () => this.#identity,
      running: () => this.#running,
      statusSoon: () => this.#statusSoon(),
      pageSize: opts.pageSize,
      backoff: opts.backoff,
    });
    this.#session = new MqttSession({
      brokerUrl: opts.brokerUrl,
      tls: opts.tls,
      keepaliveS: opts.keepaliveS,
      backoff: opts.backoff,
      log: this.#log,
      status: (online) => this.status(online),
      onMessage: (topic, payload) => this.#onMessage(topic, payload),
      onConnect: (sessionPresent) => {
        this.#stats.connects++;
        this.#health.contact();
        this.#health.judge();
        this.#session.publishStatus();
        this.events.emit('connected', { sessionPresent });
        this.#queue.requestCatchUp('connect');
        // Back in touch: the service's settings (touch assurance, #14) may have changed meanwhile.
        if (this.#identity) void this.#refreshConfig().catch(() => undefined);
      },
      onClose: (wasUp) => {
        if (wasUp) {
          this.#health.contact(); // the session was up until now
          this.events.emit('disconnected', {});
        }
        this.#health.judge();
      },
    });
  }

  /** Starts the session. Resolves at once: the network may be down, and lookups go on from the cache. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#identity = this.#state.identity();
    this.#every(this.#o.healthIntervalMs ?? 5000, () => {
      // A quiet session is still contact; keep the recorded time current for after a power cut.
      if (this.connected) this.#health.contact();
      this.#health.judge();
    });
    this.#every(this.#o.statusIntervalMs ?? 60_000, () => this.#session.publishStatus());
    this.#every(this.#o.pollMs ?? 5 * 60_000, () => {
      this.#queue.requestCatchUp('poll');
      // The service's settings (touch assurance, #14) change at the hub without a change-log entry.
      if (this.#identity) void this.#refreshConfig().catch(() => undefined);
    });
    this.#health.judge();
    if (this.#identity) {
      this.#session.open(this.#identity);
      this.#queue.requestCatchUp('start');
      void this.#refreshConfig().catch(() => undefined); // the secret may have been rotated
    } else {
      void this.#firstConfig();
    }
  }

  /** Stops: retained status `online: false`, clean DISCONNECT (so the will does not fire), queue drained. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    for (const t of this.#timers) clearInterval(t);
    this.#timers.clear();
    clearTimeout(this.#statusDue);
    if (this.connected) this.#health.contact();
    await this.#session.close();
    await this.#queue.drain();
    await this.#state.flush().catch(() => undefined);
    this.events.emit('disconnected', { reason: 'stopped' });
  }

  /** Current health (re-judged now). */
  health(): Health {
    return this.#health.judge();
  }

  /** Staleness as the lookup policy needs it. */
  contact(): ContactAssessment {
    return this.#health.assess();
  }

  /** True while the MQTT session is up. */
  get connected(): boolean {
    return this.#session?.connected === true;
  }

  /** The status document as it would be published now. */
  status(online = this.connected): EdgeStatus {
    const reader = this.#o.readerHealth?.();
    return { ...this.#health.status(online), ...(reader ? { reader } : {}) };
  }

  /** Something the status carries changed outside the sync (the reader): publish it soon. */
  statusChanged(): void {
    this.#statusSoon();
  }

  /** Counts since start (tests, diagnostics). */
  stats(): SyncStats {
    return { ...this.#stats };
  }

  /** Catches up with the hub now (queued behind other sync work); resolves when done. */
  catchUp(): Promise<void> {
    return this.#queue.enqueue(() => this.#queue.catchUpNow('request'));
  }

  /** Replaces the cache with a fresh snapshot, then catches up. */
  resync(): Promise<void> {
    return this.#queue.resync();
  }

  // ---- identity ---------------------------------------------------------------------------------

  async #firstConfig(): Promise<void> {
    const backoff = new Backoff(this.#o.backoff);
    while (this.#running && !this.#identity) {
      try {
        await this.#refreshConfig();
      } catch (e) {
        this.#log.warn('device config not available yet; retrying', { code: codeOf(e) });
        await sleep(backoff.next(), this.#timers);
      }
    }
    if (this.#running && this.#identity) {
      this.#session.open(this.#identity);
      this.#queue.requestCatchUp('start');
    }
  }

  async #refreshConfig(): Promise<void> {
    const { value, hubDate } = await this.#hub.config();
    this.#health.contact(hubDate);
    const old = this.#identity;
    const r = await this.#state.setIdentity(value);
    this.#identity = value;
    if (old && (old.edgeId !== value.edgeId || old.serviceId !== value.serviceId)) {
      // Topics and client id follow the identity: a new session.
      this.#log.warn('device identity changed at the hub: reconnecting');
      if (this.#running) this.#session.open(value);
    }
    if (r.resync) this.#queue.requestCatchUp('identity');
  }

  // ---- messages -----------------------------------------------------------------------------------

  #onMessage(topic: string, payload: Buffer): void {
    const id = this.#identity;
    const t = parseTopic(topic);
    if (!id || !t) return this.#drop('topic_forbidden', topic);
    if (t.kind === 'service-log' && t.serviceId === id.serviceId) {
      const v = checkLogPayload(payload);
      if (!v.ok) return this.#drop(v.code, topic, v.message);
      this.#queue.offer(v.value);
      return;
    }
    if (t.kind === 'edge-command' && t.edgeId === id.edgeId) {
      const v = checkCommandPayload(payload);
      if (!v.ok) return this.#drop(v.code, topic, v.message);
      // Not on the queue itself: a resync waits for it, the command must not wait for the PUBACK.
      void runCommand(v.value, {
        log: this.#log,
        edgeId: id.edgeId,
        version: this.#o.version,
        appliedSeq: () => this.#cache.appliedSeq,
        mappings: () => this.#cache.size,
        health: () => this.health(),
        resync: () => this.resync(),
        reply: (replyTopic, body) => this.#session.publish(replyTopic, body),
        decommission: async () => {
          await this.#queue.enqueue(() => this.#state.wipe());
          this.#cache.clear();
          await this.stop();
          this.events.emit('decommissioned', {});
        },
      });
      return;
    }
    return this.#drop('topic_forbidden', topic);
  }

  #drop(code: ErrorCode, topic: string, why?: string): void {
    this.#stats.dropped++;
    this.#log.warn('dropped a payload', { code, topic, ...(why ? { why: why.slice(0, 120) } : {}) });
    this.events.emit('dropped', { code, topic });
  }

  // ---- plumbing -----------------------------------------------------------------------------------

  #statusSoon(): void {
    if (this.#statusDue || !this.#running) return;
    this.#statusDue = setTimeout(() => {
      this.#statusDue = undefined;
      this.#session.publishStatus();
    }, 250);
  }

  #every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.#timers.add(t);
  }
}

function sleep(ms: number, timers: Set<NodeJS.Timeout>): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      timers.delete(t);
      resolve();
    }, ms);
    timers.add(t);
  });
}
