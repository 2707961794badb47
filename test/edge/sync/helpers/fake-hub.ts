// A small stand-in for the hub's device API and change-log publisher, on loopback: the same routes
// and JSON as the hub (/v1/device/config, /snapshot, /changes), a change log with the hub's seq rules
// and remove-then-set entries, and an MQTT client that publishes each entry at QoS 1 on the service
// log topic. Knobs let tests lose publications, prune old entries and skew the Date header.
import mqtt, { type MqttClient } from 'mqtt';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { keyedId, packLogMessages, type BatchVersion, type ChangeEntry, type Snapshot } from '../../../../shared/sync.ts';
import { serviceLogTopic } from '../../../../shared/topics.ts';

export interface FakeHubOptions {
  edgeId?: string;
  serviceId?: string;
  brokerUrl?: string;
  /** Serve HTTPS demanding a client certificate from `ca`; `client` is what the hub's own MQTT client presents. */
  tls?: { key: string; cert: string; ca: string; client?: { key: string; cert: string } };
}

export class FakeHub {
  readonly edgeId: string;
  readonly serviceId: string;
  readonly secret = randomBytes(32);
  readonly log: ChangeEntry[] = [];
  /** mykeyId -> service user id */
  readonly links = new Map<string, string>();
  /** Publish new entries on MQTT (false: the hub "loses" them, only /changes has them). */
  publish = true;
  /** Entries with seq <= this are gone from /changes (only the snapshot covers them). */
  prunedThrough = 0;
  /** Added to the Date header. */
  dateOffsetMs = 0;
  /** HTTP answers 503 while set. */
  down = false;
  requests = { config: 0, snapshot: 0, changes: 0 };
  url = '';
  #server: Server | undefined;
  #mqtt: MqttClient | undefined;
  #brokerUrl: string | undefined;
  #tls: FakeHubOptions['tls'];

  constructor(o: FakeHubOptions = {}) {
    this.edgeId = o.edgeId ?? 'edge-test-1';
    this.serviceId = o.serviceId ?? 'library';
    this.#brokerUrl = o.brokerUrl;
    this.#tls = o.tls;
  }

  key(mykeyId: string): string {
    return keyedId(this.secret, 'mykey', mykeyId);
  }

  get headSeq(): number {
    return this.log.length;
  }

  async start(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const send = (status: number, body: unknown) => {
        const data = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length, date: new Date(Date.now() + this.dateOffsetMs).toUTCString() });
        res.end(data);
      };
      if (this.down) return send(503, { code: 'unavailable' });
      if (url.pathname === '/v1/device/config') {
        this.requests.config++;
        return send(200, { edgeId: this.edgeId, serviceId: this.serviceId, syncSecret: this.secret.toString('base64url') });
      }
      if (url.pathname === '/v1/device/snapshot') {
        this.requests.snapshot++;
        return send(200, this.snapshot());
      }
      if (url.pathname === '/v1/device/changes') {
        this.requests.changes++;
        const after = Number(url.searchParams.get('after'));
        const limit = Math.min(1000, Number(url.searchParams.get('limit') ?? 1000));
        const from = Math.max(after, this.prunedThrough);
        return send(200, { headSeq: this.headSeq, entries: this.log.slice(from, from + limit) });
      }
      send(404, { code: 'not_found' });
    };
    const t = this.#tls;
    this.#server = t ? createHttpsServer({ key: t.key, cert: t.cert, ca: t.ca, requestCert: true, rejectUnauthorized: true }, handler) : createServer(handler);
    await new Promise<void>((r) => this.#server!.listen(0, '127.0.0.1', r));
    this.url = `${t ? 'https' : 'http'}://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    if (this.#brokerUrl) {
      const clientTls = t?.client ? { ca: t.ca, key: t.client.key, cert: t.client.cert } : {};
      this.#mqtt = mqtt.connect(this.#brokerUrl, { clientId: `hub-${randomBytes(4).toString('hex')}`, protocolVersion: 4, reconnectPeriod: 200, clean: true, ...clientTls });
      this.#mqtt.on('error', () => undefined);
      await new Promise<void>((r) => this.#mqtt!.once('connect', () => r()));
    }
  }

  snapshot(): Snapshot {
    const entries: [string, string][] = [...this.links].map(([m, u]) => [this.key(m), u]);
    return { serviceId: this.serviceId, seq: this.headSeq, generatedAt: new Date().toISOString(), entries };
  }

  /** The mappings an edge must hold now. */
  model(): Map<string, string> {
    return new Map(this.snapshot().entries);
  }

  /** Links (or relinks) a MyKey ID: remove its key, set it (replace semantics). */
  link(mykeyId: string, serviceUserId: string): ChangeEntry {
    this.links.set(mykeyId, serviceUserId);
    return this.#append({ kind: 'link', remove: [this.key(mykeyId)], set: { keys: [this.key(mykeyId)], serviceUserId } });
  }

  unlink(mykeyId: string, kind: 'unlink' | 'suspend' = 'unlink'): ChangeEntry {
    this.links.delete(mykeyId);
    return this.#append({ kind, remove: [this.key(mykeyId)] });
  }

  /** Publishes raw bytes (or an old entry again) on a topic. */
  async raw(payload: string | Buffer, topic = serviceLogTopic(this.serviceId)): Promise<void> {
    await this.#mqtt!.publishAsync(topic, payload, { qos: 1 });
  }

  /** Publishes consecutive entries as batched messages (v3, or v2), as the hub's outbox coalesces a burst. */
  async batch(entries: ChangeEntry[], version: BatchVersion = 3): Promise<void> {
    for (const m of packLogMessages(
      entries.map((entry) => ({ entry, json: JSON.stringify(entry) })),
      Infinity,
      version,
    ))
      await this.raw(m.payload);
  }

  async republish(e: ChangeEntry): Promise<void> {
    await this.raw(JSON.stringify(e));
  }

  #append(p: Omit<ChangeEntry, 'seq' | 'at'>): ChangeEntry {
    const e: ChangeEntry = { seq: this.headSeq + 1, at: new Date().toISOString(), ...p } as ChangeEntry;
    this.log.push(e);
    if (this.publish && this.#mqtt) this.#mqtt.publish(serviceLogTopic(this.serviceId), JSON.stringify(e), { qos: 1 });
    return e;
  }

  /** Resolves once every queued publication has been acknowledged by the broker. */
  async flush(): Promise<void> {
    await this.#mqtt?.publishAsync('mykey/v1/flush', '', { qos: 1 }).catch(() => undefined);
  }

  async stop(): Promise<void> {
    await this.#mqtt?.endAsync(true);
    await new Promise((r) => this.#server?.close(r));
    this.#server?.closeAllConnections();
  }
}
