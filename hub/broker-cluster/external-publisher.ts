// The hub's change-log publisher on a clustered broker: an MQTT 3.1.1 client (user name and
// password of the hub user, which the hub's own auth backend checks) that fails over between the
// cluster's nodes. `publish` resolves on PUBACK (QoS 1), so the outbox keeps a row until a node has
// taken it; a node that dies mid-flight makes the publish fail, and the outbox retries. The outbox
// keeps several publishes in flight (broker.external.outboxWindow): mqtt.js sends them in order on the
// one connection and, after a reconnect, sends what was unacknowledged again in the same order first.
import mqtt, { type MqttClient } from 'mqtt';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../shared/log.ts';

export interface ExternalPublisherOptions {
  urls: string[];
  username: string;
  password: string;
  log: Logger;
  /** PEM of the CA that signed the nodes' certificates (for mqtts:// URLs). */
  ca?: string;
  timeoutMs?: number;
  /** Topic filters the hub reads (edge statuses), subscribed after every CONNACK, and their handler. */
  subscribe?: { filters: string[]; onMessage(topic: string, payload: Buffer): void };
}

export interface ExternalPublisher {
  publish(topic: string, payload: Buffer | string): Promise<void>;
  stop(): Promise<void>;
  readonly connected: boolean;
}

/** mqtt.js `servers` for a list of URLs (it rotates through them on each connect). */
export function brokerServers(urls: string[]): Array<{ host: string; port: number; protocol: 'mqtt' | 'mqtts' }> {
  return urls.map((u) => {
    const url = new URL(u);
    if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') throw new Error(`not an MQTT URL: ${u}`);
    const protocol = url.protocol === 'mqtts:' ? 'mqtts' : 'mqtt';
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (protocol === 'mqtts' ? 8883 : 1883)), protocol };
  });
}

export function createExternalPublisher(o: ExternalPublisherOptions): ExternalPublisher {
  if (o.urls.length === 0) throw new Error('broker.external.urls is empty');
  const timeout = o.timeoutMs ?? 10_000;
  const clientId = () => `${o.username}-${randomBytes(4).toString('hex')}`;
  const client: MqttClient = mqtt.connect(o.urls[0]!, {
    servers: brokerServers(o.urls),
    clientId: clientId(),
    username: o.username,
    password: o.password,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 1000,
    // Subscribed on every CONNACK below; mqtt.js's own resubscribe on top of it sent a second
    // SUBSCRIBE for the same filter, and RabbitMQ 3.10 closed the connection each time.
    resubscribe: false,
    connectTimeout: 10_000,
    ...(o.ca ? { ca: o.ca } : {}),
  });
  let up = false;
  client.on('connect', () => {
    up = true;
    o.log.info('connected to the broker cluster');
    if (o.subscribe) {
      client.subscribe(o.subscribe.filters, { qos: 1 }, (err, granted) => {
        if (granted?.some((g) => g.qos === 128)) o.log.error('the broker cluster refused the hub’s status subscription', { code: 'topic_forbidden' });
        else if (err) o.log.warn('the hub’s status subscription failed; it is made again at the next connection', { error: err.message });
      });
    }
  });
  client.on('message', (topic, payload) => {
    try {
      o.subscribe?.onMessage(topic, payload);
    } catch (e) {
      o.log.error('handling a message from the broker cluster failed', { error: e });
    }
  });
  client.on('close', () => {
    if (up) o.log.warn('broker cluster connection lost; reconnecting to the next node');
    up = false;
    // The next node's name is checked against its own certificate, not the first node's.
    delete (client.options as { servername?: string }).servername;
    // A clean session under a new client id: the subscription queue of the old one may still be on
    // record at a node that died, and declaring it again from another node closes the connection.
    client.options.clientId = clientId();
  });
  client.on('error', (e) => o.log.warn('broker cluster connection error', { error: e.message }));
  return {
    get connected() {
      return up;
    },
    publish(topic, payload) {
      if (!up) return Promise.reject(new Error('not connected to the broker cluster'));
      return new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error('no PUBACK from the broker cluster')), timeout);
        client.publish(topic, payload, { qos: 1 }, (err) => {
          clearTimeout(t);
          if (err) rej(err);
          else res();
        });
      });
    },
    stop: () => new Promise<void>((r) => client.end(true, {}, () => r())),
  };
}
