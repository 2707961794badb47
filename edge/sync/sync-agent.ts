// The edge side of the sync contract (shared/sync.ts, shared/topics.ts): one persistent MQTT 3.1.1
// session with the hub's broker (aedes, or any standard broker such as Mosquitto), the device HTTP
// API for config, snapshots and catch-up, and the edge's retained status.
//
// - Session: clientId = edgeId, clean session off, QoS 1, keepalive; reconnects forever with
//   exponential backoff and jitter (edge/sync/backoff.ts). The will is the retained status with
//   `online: false`, so the hub learns of a dead edge from the broker.
// - Ordering: every change to the cache runs on one queue. A live entry is validated and queued
//   before its PUBACK; at appliedSeq + 1 it is applied and journalled by group commit (one fdatasync
//   per burst); duplicates and replays are ignored; a gap starts a catch-up through /changes, and
//   a snapshot when the hub no longer has the missing entries or when the cache has nothing to
//   build on (first start, corrupt state, new secret).
//   After every (re)connect, and every `pollMs`, the agent catches up anyway: the broker may have lost
//   the session (a restart, a broker without persistence), the hub's log never does.
// - Bad payloads (oversized, not JSON, not the schema) are dropped with a logged code; nothing a
//   broker delivers can stop the agent.
// - Health: `stale` when out of touch with the hub longer than maxStalenessMs (judged on the
//   monotonic clock, edge/sync/contact-clock.ts), `clock_unsure` when that cannot be judged,
//   `degraded` when the cache is not synced or the last catch-up failed, else `ok`.
//
// Constructors assign; start() and stop() act.
import mqtt, { type IClientOptions, type MqttClient, type IPublishPacket } from 'mqtt';
import { brokerServers } from '../config.ts';
import { performance } from 'node:perf_hooks';
import { errorReply, MyKeyError, okReply, type ErrorCode } from '../../shared/errors.ts';
import { silentLogger, type Logger } from '../../shared/log.ts';
import type { ChangeEntry, EdgeCommand, EdgeStatus } from '../../shared/sync.ts';
import { edgeCommandTopic, edgeReplyTopic, edgeStatusTopic, parseTopic, serviceLogTopic } from '../../shared/topics.ts';
import type { EdgeCache } from '../cache/edge-cache.ts';
import { KeyIndex } from '../cache/key-index.ts';
import type { DeviceIdentity, EdgeState } from '../state/edge-state.ts';
import { Backoff } from './backoff.ts';
import { ContactClock, type ContactAssessment } from './contact-clock.ts';
import { HubClient, type TlsMaterial } from './hub-client.ts';
import { checkCommandPayload, checkEntryPayload } from './payloads.ts';
import { TypedEvents } from '../../shared/typed-events.ts';

export type Health = EdgeStatus['health'];

/** Events of the agent. */
export interface SyncEvents {
  /** An entry was applied; emitted once it is also in the journal. */
  applied: { seq: number; kind: ChangeEntry['kind']; purged: number; set: number; source: 'live' | 'catch-up' };
  /** An applied entry removed mappings: they are gone from the cache. */
  purged: { seq: number; kind: ChangeEntry['kind']; keys: number };
  /** A snapshot replaced the cache. */
  snapshot: { seq: number; mappings: number; ms: number };
  /** Health changed. */
  health: { health: Health; previous: Health; ageMs?: number };
  /** Health became `stale`. */
  stale: { ageMs?: number };
  connected: { sessionPresent: boolean };
  disconnected: { reason?: string };
  /** A payload was dropped. */
  dropped: { code: ErrorCode; topic: string };
  /** The hub decommissioned this edge: state wiped, session stopped. */
  decommissioned: Record<string, never>;
}

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
  /** Clocks (tests). */
  now?: () => number;
  monoNow?: () => number;
}

/** Counts since start. */
export interface SyncStats {
  applied: number;
  duplicates: number;
  gaps: number;
  snapshots: number;
  catchUps: number;
  dropped: number;
  connects: number;
}

/** Live entries waiting to be applied, at most; beyond, the catch-up brings them. */
const MAX_INBOX = 10_000;

const DEFAULT_NOT_BEFORE = Date.parse('2026-01-01T00:00:00Z');

export class SyncAgent {
  readonly events: TypedEvents<SyncEvents>;
  readonly #o: SyncAgentOptions;
  readonly #log: Logger;
  readonly #state: EdgeState;
  readonly #cache: EdgeCache;
  readonly #hub: HubClient;
  readonly #now: () => number;
  readonly #mono: () => number;
  readonly #reconnectBackoff: Backoff;
  readonly #retryBackoff: Backoff;
  readonly #clock: ContactClock;
  #identity: DeviceIdentity | undefined;
  #client: MqttClient | undefined;
  #work: Promise<unknown> = Promise.resolve();
  #catchUpQueued = false;
  #catchUpFailed = false;
  #health: Health = 'degraded';
  #running = false;
  #sessionUp = false;
  #pending: { e: ChangeEntry; purged: number; set: number }[] = [];
  #flushScheduled = false;
  #inbox = 0;
  #flushing: Promise<void> = Promise.resolve();
  #stopping = false;
  #timers = new Set<NodeJS.Timeout>();
  #retryTimer: NodeJS.Timeout | undefined;
  #statusDue: NodeJS.Timeout | undefined;
  #stats: SyncStats = { applied: 0, duplicates: 0, gaps: 0, snapshots: 0, catchUps: 0, dropped: 0, connects: 0 };

  constructor(opts: SyncAgentOptions) {
    this.#o = opts;
    this.#log = opts.log ?? silentLogger;
    this.#state = opts.state;
    this.#cache = opts.cache;
    this.events = new TypedEvents<SyncEvents>(this.#log, 'sync');
    this.#hub = new HubClient({ hubUrl: opts.hubUrl, tls: opts.tls, fetch: opts.fetch });
    this.#now = opts.now ?? Date.now;
    this.#mono = opts.monoNow ?? (() => performance.now());
    this.#reconnectBackoff = new Backoff(opts.backoff);
    this.#retryBackoff = new Backoff(opts.backoff);
    this.#clock = new ContactClock({
      maxStalenessMs: opts.maxStalenessMs ?? 60 * 60_000,
      notBeforeMs: opts.notBeforeMs ?? DEFAULT_NOT_BEFORE,
      maxSkewMs: opts.maxClockSkewMs,
      lastContactWall: opts.state.lastContactWall(),
      now: () => ({ mono: this.#mono(), wall: this.#now() }),
    });
  }

  /** Starts the session. Resolves at once: the network may be down, and lookups go on from the cache. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#stopping = false;
    this.#identity = this.#state.identity();
    this.#every(this.#o.healthIntervalMs ?? 5000, () => {
      // A quiet session is still contact; keep the recorded time current for after a power cut.
      if (this.connected) this.#contact();
      this.#judgeHealth();
    });
    this.#every(this.#o.statusIntervalMs ?? 60_000, () => this.#publishStatus());
    this.#every(this.#o.pollMs ?? 5 * 60_000, () => this.#requestCatchUp('poll'));
    this.#judgeHealth();
    if (this.#identity) {
      this.#connect();
      this.#requestCatchUp('start');
      void this.#refreshConfig().catch(() => undefined); // the secret may have been rotated
    } else {
      void this.#firstConfig();
    }
  }

  /** Stops: retained status `online: false`, clean DISCONNECT (so the will does not fire), queue drained. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#stopping = true;
    this.#running = false;
    for (const t of this.#timers) clearInterval(t);
    this.#timers.clear();
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#statusDue);
    const client = this.#client;
    if (client?.connected) this.#contact();
    this.#client = undefined;
    if (client) {
      if (client.connected && this.#identity) {
        await withTimeout(client.publishAsync(edgeStatusTopic(this.#identity.edgeId), JSON.stringify(this.status(false)), { qos: 1, retain: true }), 2000).catch(() => undefined);
      }
      await withTimeout(client.endAsync(false), 2000).catch(() => client.end(true));
      client.removeAllListeners();
      client.on('error', () => undefined);
    }
    await this.#work.catch(() => undefined);
    await this.#flushPending().catch(() => undefined);
    await this.#state.flush().catch(() => undefined);
    this.events.emit('disconnected', { reason: 'stopped' });
  }

  /** Current health (re-judged now). */
  health(): Health {
    this.#judgeHealth();
    return this.#health;
  }

  /** Staleness as the lookup policy needs it. */
  contact(): ContactAssessment {
    return this.#clock.assess(this.connected);
  }

  /** True while the MQTT session is up. */
  get connected(): boolean {
    return this.#client?.connected === true;
  }

  /** The status document as it would be published now. */
  status(online = this.connected): EdgeStatus {
    const id = this.#identity;
    return {
      edgeId: id?.edgeId ?? 'unknown',
      serviceId: id?.serviceId ?? 'unknown',
      online,
      appliedSeq: this.#cache.appliedSeq,
      version: this.#o.version.slice(0, 64),
      health: this.#health,
      at: new Date(this.#now()).toISOString(),
      counters: this.#state.counters(),
    };
  }

  /** Counts since start (tests, diagnostics). */
  stats(): SyncStats {
    return { ...this.#stats };
  }

  /** Catches up with the hub now (queued behind other sync work); resolves when done. */
  catchUp(): Promise<void> {
    return this.#enqueue(() => this.#catchUpNow('request'));
  }

  /** Replaces the cache with a fresh snapshot, then catches up. */
  resync(): Promise<void> {
    return this.#enqueue(async () => {
      await this.#snapshotNow();
      await this.#catchUpNow('resync');
    });
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
      this.#connect();
      this.#requestCatchUp('start');
    }
  }

  async #refreshConfig(): Promise<void> {
    const { value, hubDate } = await this.#hub.config();
    this.#contact(hubDate);
    const old = this.#identity;
    const r = await this.#state.setIdentity(value);
    this.#identity = value;
    if (old && (old.edgeId !== value.edgeId || old.serviceId !== value.serviceId)) {
      // Topics and client id follow the identity: a new session.
      this.#log.warn('device identity changed at the hub: reconnecting');
      this.#client?.end(true);
      this.#client = undefined;
      if (this.#running) this.#connect();
    }
    if (r.resync) this.#requestCatchUp('identity');
  }

  // ---- MQTT session -------------------------------------------------------------------------------

  #connect(): void {
    const id = this.#identity!;
    const tls = this.#o.tls ?? {};
    const opts: IClientOptions = {
      clientId: id.edgeId,
      clean: false,
      protocolVersion: 4, // MQTT 3.1.1 only: aedes and stock Mosquitto alike
      keepalive: this.#o.keepaliveS ?? 30,
      reconnectPeriod: 0, // reconnects are ours, with backoff and jitter
      connectTimeout: 15_000,
      resubscribe: false, // we subscribe after every CONNACK ourselves
      will: this.#will(),
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
      rejectUnauthorized: true,
    };
    const urls = typeof this.#o.brokerUrl === 'string' ? [this.#o.brokerUrl] : this.#o.brokerUrl;
    const client = mqtt.connect(urls[0]!, { ...opts, servers: brokerServers(urls) });
    this.#client = client;
    // mqtt.js reads incoming packets one at a time and waits for this callback (PINGRESP too), so it
    // must not wait for a catch-up: entries are validated and queued, and PUBACK goes out at once.
    // An entry queued but not yet applied when the process dies is fetched again by the catch-up.
    client.handleMessage = (packet: IPublishPacket, done: (err?: Error) => void) => {
      try {
        this.#onPublish(packet);
      } catch (e) {
        this.#log.error('message handling failed', { code: codeOf(e) });
      }
      done();
    };
    client.on('connect', (connack) => {
      if (client !== this.#client) return;
      this.#stats.connects++;
      this.#sessionUp = true;
      this.#reconnectBackoff.reset();
      this.#contact();
      this.#log.info('connected to the broker', { sessionPresent: connack.sessionPresent });
      client.subscribe(
        { [serviceLogTopic(id.serviceId)]: { qos: 1 }, [edgeCommandTopic(id.edgeId)]: { qos: 1 } },
        (err, granted) => {
          if (err) this.#log.warn('subscribe failed', { error: err });
          else if (granted?.some((g) => g.qos === 128)) this.#log.error('the broker refused a subscription', { code: 'topic_forbidden' });
        },
      );
      this.#judgeHealth();
      this.#publishStatus();
      this.events.emit('connected', { sessionPresent: connack.sessionPresent });
      this.#requestCatchUp('connect');
    });
    client.on('close', () => {
      if (client !== this.#client) return;
      if (this.#sessionUp) {
        this.#sessionUp = false;
        this.#contact(); // the session was up until now
        this.events.emit('disconnected', {});
      }
      this.#judgeHealth();
      if (this.#stopping) return;
      const delay = this.#reconnectBackoff.next();
      const t = setTimeout(() => {
        this.#timers.delete(t);
        if (client !== this.#client || this.#stopping) return;
        client.options.will = this.#will();
        // With several nodes, mqtt.js takes the next one; its name, not the first node's, is checked.
        if (client.options.servers) delete client.options.servername;
        client.connect();
      }, delay);
      this.#timers.add(t);
    });
    client.on('error', (e) => {
      this.#log.warn('broker connection error', { error: e.message, code: (e as { code?: unknown }).code });
    });
  }

  #will(): IClientOptions['will'] {
    const id = this.#identity!;
    return { topic: edgeStatusTopic(id.edgeId), payload: Buffer.from(JSON.stringify(this.status(false))), qos: 1, retain: true };
  }

  #onPublish(packet: IPublishPacket): void {
    const id = this.#identity;
    const topic = packet.topic;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const t = parseTopic(topic);
    if (!id || !t) return this.#drop('topic_forbidden', topic);
    if (t.kind === 'service-log' && t.serviceId === id.serviceId) {
      const v = checkEntryPayload(payload);
      if (!v.ok) return this.#drop(v.code, topic, v.message);
      if (this.#inbox >= MAX_INBOX) {
        // A flood faster than the cache takes it: let the hub's log carry the rest.
        this.#requestCatchUp('inbox full');
        return;
      }
      this.#inbox++;
      void this.#enqueue(() => {
        this.#inbox--;
        return this.#applyLive(v.value);
      });
      return;
    }
    if (t.kind === 'edge-command' && t.edgeId === id.edgeId) {
      const v = checkCommandPayload(payload);
      if (!v.ok) return this.#drop(v.code, topic, v.message);
      // Not on the queue itself: a resync waits for it, the command must not wait for the PUBACK.
      void this.#command(v.value);
      return;
    }
    return this.#drop('topic_forbidden', topic);
  }

  #drop(code: ErrorCode, topic: string, why?: string): void {
    this.#stats.dropped++;
    this.#log.warn('dropped a payload', { code, topic, ...(why ? { why: why.slice(0, 120) } : {}) });
    this.events.emit('dropped', { code, topic });
  }

  async #command(c: EdgeCommand): Promise<void> {
    const id = this.#identity!;
    let reply;
    try {
      if (c.command === 'ping') reply = okReply({ appliedSeq: this.#cache.appliedSeq, health: this.health(), version: this.#o.version }, c.transaction);
      else if (c.command === 'resync') {
        await this.resync();
        reply = okReply({ appliedSeq: this.#cache.appliedSeq, mappings: this.#cache.size }, c.transaction);
      } else {
        reply = okReply({ decommissioned: true }, c.transaction);
      }
    } catch (e) {
      reply = errorReply(e, c.transaction);
    }
    await this.#client?.publishAsync(edgeReplyTopic(id.edgeId), JSON.stringify(reply), { qos: 1 }).catch((e) => this.#log.warn('reply not sent', { error: e }));
    if (c.command === 'decommission') {
      this.#log.warn('decommissioned by the hub: wiping state');
      await this.#enqueue(() => this.#state.wipe());
      this.#cache.clear();
      await this.stop();
      this.events.emit('decommissioned', {});
    }
  }

  // ---- applying -----------------------------------------------------------------------------------

  async #applyLive(e: ChangeEntry): Promise<void> {
    this.#contact();
    if (!this.#cache.synced) {
      this.#requestCatchUp('unsynced');
      return;
    }
    const before = this.#cache.appliedSeq;
    const r = this.#cache.apply(e);
    if (r.result === 'duplicate') {
      this.#stats.duplicates++;
      return;
    }
    if (r.result === 'gap') {
      this.#stats.gaps++;
      this.#log.info('gap in the change log: catching up', { appliedSeq: before, got: e.seq });
      await this.#catchUpNow('gap');
      return;
    }
    // Group commit: live entries are journalled together once the current burst has been read, so a
    // burst costs one fdatasync, not one per entry. PUBACK does not wait for it: an entry lost from
    // the journal by a crash in that window is fetched again by the catch-up after restart.
    this.#pending.push({ e, purged: r.purged, set: r.set });
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flushPending();
      });
    }
  }

  // Issues the journal write of pending live entries now, so that it is ordered before any state
  // write that follows (catch-up pages, checkpoints); announces them once durable.
  #flushPending(): Promise<void> {
    if (this.#pending.length === 0) return this.#flushing;
    const batch = this.#pending.splice(0);
    const p = this.#persist(batch.map((b) => b.e)).then(() => {
      for (const b of batch) this.#announce(b.e, b.purged, b.set, 'live');
    });
    this.#flushing = p;
    return p;
  }

  async #persist(entries: ChangeEntry[]): Promise<void> {
    try {
      await this.#state.recordApplied(entries);
    } catch (e) {
      // The cache is right; only its durability suffered. A full checkpoint covers these entries.
      this.#log.error('journal write failed; trying a checkpoint', { code: codeOf(e), error: e });
      this.#catchUpFailed = true;
      await this.#state.checkpoint().then(
        () => void (this.#catchUpFailed = false),
        (e2) => this.#log.error('checkpoint failed too: state on disk is behind the cache', { code: codeOf(e2), error: e2 }),
      );
    }
  }

  #announce(e: ChangeEntry, purged: number, set: number, source: 'live' | 'catch-up'): void {
    this.#stats.applied++;
    this.events.emit('applied', { seq: e.seq, kind: e.kind, purged, set, source });
    if (purged > 0) this.events.emit('purged', { seq: e.seq, kind: e.kind, keys: purged });
    // The service moved to another key derivation (shared/sync.ts): its keys come again in a snapshot.
    if (e.kind === 'rekey') void this.resync().catch((err) => this.#log.warn('re-key snapshot failed; the catch-up retries', { code: codeOf(err) }));
    this.#statusSoon();
  }

  #requestCatchUp(reason: string): void {
    if (this.#catchUpQueued || !this.#running) return;
    this.#catchUpQueued = true;
    void this.#enqueue(async () => {
      this.#catchUpQueued = false;
      if (!this.#running || !this.#identity) return;
      await this.#catchUpNow(reason);
    });
  }

  // Runs on the queue. Errors are logged and retried with backoff, never thrown.
  async #catchUpNow(reason: string): Promise<void> {
    this.#stats.catchUps++;
    void this.#flushPending();
    try {
      const limit = this.#o.pageSize ?? 1000;
      for (let guard = 0; guard < 100_000; guard++) {
        if (!this.#cache.synced) await this.#snapshotNow();
        const after = this.#cache.appliedSeq;
        const { value: page, hubDate } = await this.#hub.changes(after, limit);
        this.#contact(hubDate);
        if (page.entries.length === 0) {
          if (page.headSeq > after) {
            this.#log.info('the hub no longer has the missing entries: snapshot', { appliedSeq: after, headSeq: page.headSeq });
            await this.#snapshotNow();
            continue;
          }
          if (page.headSeq < after) {
            this.#log.warn('the hub log is behind this edge (hub restored?): snapshot', { appliedSeq: after, headSeq: page.headSeq });
            await this.#snapshotNow();
            if (this.#cache.appliedSeq <= page.headSeq) break;
            continue;
          }
          break;
        }
        if (page.entries[0].seq > after + 1) {
          this.#log.info('the hub no longer has the missing entries: snapshot', { appliedSeq: after, first: page.entries[0].seq });
          await this.#snapshotNow();
          continue;
        }
        const applied: { e: ChangeEntry; purged: number; set: number }[] = [];
        let gap = false;
        for (const e of page.entries) {
          const r = this.#cache.apply(e);
          if (r.result === 'applied') applied.push({ e, purged: r.purged, set: r.set });
          else if (r.result === 'gap') {
            gap = true; // a hole inside a page: the hub misbehaved; start over from the snapshot
            break;
          }
        }
        if (applied.length) await this.#persist(applied.map((a) => a.e));
        for (const a of applied) this.#announce(a.e, a.purged, a.set, 'catch-up');
        if (gap) {
          this.#log.warn('hole inside a /changes page: snapshot', { code: 'validation_failed' });
          await this.#snapshotNow();
          continue;
        }
        if (this.#cache.appliedSeq >= page.headSeq) break;
      }
      this.#catchUpFailed = false;
      this.#retryBackoff.reset();
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    } catch (e) {
      this.#catchUpFailed = true;
      const delay = this.#retryBackoff.next();
      this.#log.warn('catch-up failed; retrying', { reason, code: codeOf(e), error: e, retryMs: delay });
      clearTimeout(this.#retryTimer);
      if (this.#running) {
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#requestCatchUp('retry');
        }, delay);
      }
    } finally {
      this.#judgeHealth();
    }
  }

  async #snapshotNow(): Promise<void> {
    void this.#flushPending();
    const t0 = performance.now();
    const { value: snap, hubDate } = await this.#hub.snapshot();
    this.#contact(hubDate);
    const id = this.#identity;
    if (!id || snap.serviceId !== id.serviceId) throw new MyKeyError('validation_failed', 'snapshot of another service');
    const index = new KeyIndex(snap.entries.length);
    for (const [k, u] of snap.entries) index.set(k, u); // schema-checked: cannot throw
    const before = this.#cache.size;
    this.#cache.replace(index, snap.seq);
    await this.#state.checkpoint();
    const ms = performance.now() - t0;
    this.#stats.snapshots++;
    this.#log.info('snapshot applied', { seq: snap.seq, mappings: index.size, before, ms: Math.round(ms) });
    this.events.emit('snapshot', { seq: snap.seq, mappings: index.size, ms });
    this.#statusSoon();
  }

  // ---- status and health --------------------------------------------------------------------------

  #contact(hubDate?: number): void {
    this.#clock.recordContact(hubDate);
    const wall = this.#clock.lastContactWall;
    if (wall !== undefined) this.#state.recordContact(wall);
  }

  #judgeHealth(): void {
    const a = this.#clock.assess(this.connected);
    let h: Health;
    // Never in contact and nothing cached: there is nothing to be stale about yet, only missing.
    if (a.verdict === 'stale' && a.ageMs === undefined && !this.#cache.synced) h = 'degraded';
    else if (a.verdict === 'stale') h = 'stale';
    else if (a.verdict === 'clock_unsure' || a.clockReason) h = 'clock_unsure';
    else if (!this.#cache.synced || this.#catchUpFailed) h = 'degraded';
    else h = this.#o.extraHealth?.() ?? 'ok';
    if (h === this.#health) return;
    const previous = this.#health;
    this.#health = h;
    this.#log.info('health changed', { health: h, previous, ageMs: a.ageMs, clock: a.clockReason });
    this.events.emit('health', { health: h, previous, ageMs: a.ageMs });
    if (h === 'stale') this.events.emit('stale', { ageMs: a.ageMs });
    this.#statusSoon();
  }

  #statusSoon(): void {
    if (this.#statusDue || !this.#running) return;
    this.#statusDue = setTimeout(() => {
      this.#statusDue = undefined;
      this.#publishStatus();
    }, 250);
  }

  #publishStatus(): void {
    const client = this.#client;
    if (!client?.connected || !this.#identity) return;
    client.publish(edgeStatusTopic(this.#identity.edgeId), JSON.stringify(this.status(true)), { qos: 1, retain: true }, (e) => {
      if (e) this.#log.debug('status not published', { error: e.message });
    });
  }

  // ---- plumbing -----------------------------------------------------------------------------------

  #enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#work.then(fn, fn);
    this.#work = run.catch(() => undefined);
    return run;
  }

  #every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.#timers.add(t);
  }
}

function codeOf(e: unknown): string {
  return e instanceof MyKeyError ? e.code : ((e as { code?: string })?.code ?? 'internal');
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
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
