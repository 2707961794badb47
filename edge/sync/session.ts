// The MQTT session with the hub's broker (aedes, or any standard broker such as Mosquitto):
// clientId = edgeId, clean session off, QoS 1, keepalive; reconnects forever with exponential
// backoff and jitter (backoff.ts). The will is the retained status with `online: false`, so the hub
// learns of a dead edge from the broker. Messages go to `onMessage` synchronously, before the PUBACK.
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from '../../shared/log.ts';
import type { EdgeStatus } from '../../shared/sync.ts';
import { edgeCommandTopic, edgeStatusTopic, serviceLogTopic } from '../../shared/topics.ts';
import type { DeviceIdentity } from '../state/edge-state.ts';
import { brokerServers } from '../config.ts';
import { Backoff } from './backoff.ts';
import { codeOf } from './events.ts';
import type { TlsMaterial } from './hub-client.ts';

export interface SessionDeps {
  /** One broker URL, or several nodes of a clustered broker (mqtt.js `servers`: the next on each reconnect). */
  brokerUrl: string | readonly string[];
  tls?: TlsMaterial;
  keepaliveS?: number;
  backoff?: { minMs?: number; maxMs?: number };
  log: Logger;
  /** The status document as it would be published now (online or as the will). */
  status: (online: boolean) => EdgeStatus;
  /** A message arrived; must not wait for anything (the PUBACK follows it). */
  onMessage: (topic: string, payload: Buffer) => void;
  /** CONNACK received and subscriptions requested. */
  onConnect: (sessionPresent: boolean) => void;
  /** The connection closed; `wasUp` when it had been up. */
  onClose: (wasUp: boolean) => void;
}

export class MqttSession {
  readonly #d: SessionDeps;
  readonly #backoff: Backoff;
  #client: MqttClient | undefined;
  #identity: DeviceIdentity | undefined;
  #up = false;
  #stopping = false;
  #timers = new Set<NodeJS.Timeout>();

  constructor(deps: SessionDeps) {
    this.#d = deps;
    this.#backoff = new Backoff(deps.backoff);
  }

  /** True while the session is up. */
  get connected(): boolean {
    return this.#client?.connected === true;
  }

  /** Opens a session as `identity` (topics and client id follow it); a previous one is dropped. */
  open(identity: DeviceIdentity): void {
    this.#stopping = false;
    this.#identity = identity;
    if (this.#client) {
      const old = this.#client;
      this.#client = undefined;
      old.end(true);
    }
    this.#connect();
  }

  /** Publishes at QoS 1 (status, replies). Rejects when there is no session. */
  async publish(topic: string, payload: string, retain = false): Promise<void> {
    const c = this.#client;
    if (!c) throw new Error('no session');
    await c.publishAsync(topic, payload, { qos: 1, retain });
  }

  /** Publishes the retained status now, if connected; failures are only logged at debug. */
  publishStatus(): void {
    const client = this.#client;
    if (!client?.connected || !this.#identity) return;
    client.publish(edgeStatusTopic(this.#identity.edgeId), JSON.stringify(this.#d.status(true)), { qos: 1, retain: true }, (e) => {
      if (e) this.#d.log.debug('status not published', { error: e.message });
    });
  }

  /** Retained status `online: false`, then a clean DISCONNECT (so the will does not fire). */
  async close(): Promise<void> {
    this.#stopping = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    if (client.connected && this.#identity) {
      await withTimeout(client.publishAsync(edgeStatusTopic(this.#identity.edgeId), JSON.stringify(this.#d.status(false)), { qos: 1, retain: true }), 2000).catch(() => undefined);
    }
    await withTimeout(client.endAsync(false), 2000).catch(() => client.end(true));
    client.removeAllListeners();
    client.on('error', () => undefined);
  }

  #connect(): void {
    const id = this.#identity!;
    const tls = this.#d.tls ?? {};
    const opts: IClientOptions = {
      clientId: id.edgeId,
      clean: false,
      protocolVersion: 4, // MQTT 3.1.1 only: aedes and stock Mosquitto alike
      keepalive: this.#d.keepaliveS ?? 30,
      reconnectPeriod: 0, // reconnects are ours, with backoff and jitter
      connectTimeout: 15_000,
      resubscribe: false, // we subscribe after every CONNACK ourselves
      will: this.#will(),
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
      rejectUnauthorized: true,
    };
    const urls = typeof this.#d.brokerUrl === 'string' ? [this.#d.brokerUrl] : this.#d.brokerUrl;
    const client = mqtt.connect(urls[0]!, { ...opts, servers: brokerServers(urls) });
    this.#client = client;
    const log = this.#d.log;
    // mqtt.js reads incoming packets one at a time and waits for this callback (PINGRESP too), so it
    // must not wait for a catch-up: entries are validated and queued, and PUBACK goes out at once.
    // An entry queued but not yet applied when the process dies is fetched again by the catch-up.
    client.handleMessage = (packet: IPublishPacket, done: (err?: Error) => void) => {
      try {
        const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
        this.#d.onMessage(packet.topic, payload);
      } catch (e) {
        log.error('message handling failed', { code: codeOf(e) });
      }
      done();
    };
    client.on('connect', (connack) => {
      if (client !== this.#client) return;
      this.#up = true;
      this.#backoff.reset();
      log.info('connected to the broker', { sessionPresent: connack.sessionPresent });
      client.subscribe({ [serviceLogTopic(id.serviceId)]: { qos: 1 }, [edgeCommandTopic(id.edgeId)]: { qos: 1 } }, (err, granted) => {
        if (err) log.warn('subscribe failed', { error: err });
        else if (granted?.some((g) => g.qos === 128)) log.error('the broker refused a subscription', { code: 'topic_forbidden' });
      });
      this.#d.onConnect(connack.sessionPresent);
    });
    client.on('close', () => {
      if (client !== this.#client) return;
      const wasUp = this.#up;
      this.#up = false;
      this.#d.onClose(wasUp);
      if (this.#stopping) return;
      const delay = this.#backoff.next();
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
      log.warn('broker connection error', { error: e.message, code: (e as { code?: unknown }).code });
    });
  }

  #will(): IClientOptions['will'] {
    const id = this.#identity!;
    return { topic: edgeStatusTopic(id.edgeId), payload: Buffer.from(JSON.stringify(this.#d.status(false))), qos: 1, retain: true };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
