// The checks that end an enrollment (and start a decommission's verification): the hub answers, the
// device API accepts the certificate, the broker accepts it (MQTT 3.1.1 over TLS, client id = edge
// id) and lets it subscribe to its command topic, and the first snapshot of the service arrives.
import mqtt, { type MqttClient } from 'mqtt';
import { MyKeyError } from '../../shared/errors.ts';
import { edgeCommandTopic } from '../../shared/topics.ts';
import { fetchDeviceConfig, fetchSnapshot, hubHealth, type DeviceTls } from './hub-client.ts';

const CONNACK_REASONS: Record<number, string> = {
  // MQTT 3.1.1 3.2.2.3 connect return codes.
  1: 'unacceptable protocol version',
  2: 'identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
};

/** How a connection attempt ended. */
export type BrokerVerdict = { accepted: true; client: MqttClient } | { accepted: false; reason: string };

/** Opens one MQTT over TLS connection with the device certificate; never retries. */
export function connectDevice(brokerUrl: string, edgeId: string, tls: DeviceTls, timeoutMs = 8000): Promise<BrokerVerdict> {
  return new Promise((resolve) => {
    const client = mqtt.connect(brokerUrl, {
      clientId: edgeId,
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
    });
    let settled = false;
    const finish = (v: BrokerVerdict) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!v.accepted) client.end(true);
      resolve(v);
    };
    const timer = setTimeout(() => finish({ accepted: false, reason: `no CONNACK within ${timeoutMs} ms` }), timeoutMs + 500);
    client.once('connect', () => finish({ accepted: true, client }));
    client.on('error', (e: Error & { code?: unknown }) => {
      const rc = typeof e.code === 'number' ? e.code : undefined;
      finish({ accepted: false, reason: rc !== undefined ? `CONNACK ${rc} (${CONNACK_REASONS[rc] ?? 'refused'})` : e.message });
    });
    client.once('close', () => finish({ accepted: false, reason: 'the broker closed the connection' }));
  });
}

/** The broker accepts the certificate and grants the edge's command topic. */
export async function checkBroker(brokerUrl: string, edgeId: string, tls: DeviceTls, timeoutMs?: number): Promise<string> {
  const v = await connectDevice(brokerUrl, edgeId, tls, timeoutMs);
  if (!v.accepted) {
    throw new MyKeyError('unauthorized', `the broker at ${brokerUrl} refused the device certificate: ${v.reason}`, {
      details: { fix: 'check that the hub still lists this edge as enrolled and that the broker address is right (--broker); re-enroll with a new token if it was revoked' },
    });
  }
  try {
    const topic = edgeCommandTopic(edgeId);
    const granted = await v.client.subscribeAsync(topic, { qos: 1 });
    // MQTT 3.1.1 3.9.3: 0x80 in a SUBACK is a refusal.
    if (!granted.length || granted.some((g) => g.qos === 128)) {
      throw new MyKeyError('topic_forbidden', `the broker refused the subscription to ${topic}`, {
        details: { fix: 'the hub broker ACL does not recognise this edge; check the edge id the token was issued for' },
      });
    }
    return `broker ${brokerUrl} accepted the certificate; subscribed to ${topic}`;
  } finally {
    await v.client.endAsync(true).catch(() => undefined);
  }
}

/** GET /v1/device/config over mutual TLS: the hub knows this device as `edgeId` of `serviceId`. */
export async function checkDeviceApi(deviceApiUrl: string, tls: DeviceTls, expect: { edgeId: string; serviceId: string }, timeoutMs?: number): Promise<string> {
  const body = await fetchDeviceConfig(deviceApiUrl, tls, timeoutMs);
  if (body.edgeId !== expect.edgeId || body.serviceId !== expect.serviceId) {
    throw new MyKeyError('device_id_mismatch', `the hub knows this certificate as ${body.edgeId} of ${body.serviceId}, not ${expect.edgeId} of ${expect.serviceId}`);
  }
  return `device API ${deviceApiUrl} knows ${expect.edgeId} (${expect.serviceId})`;
}

/** GET /healthz on the hub (the device API, verified against the device CA `ca`). */
export async function checkHub(hubUrl: string, timeoutMs?: number, ca?: string): Promise<string> {
  const h = await hubHealth(hubUrl, timeoutMs, ca);
  return `hub ${hubUrl} answers${h.version ? ` (version ${h.version})` : ''}`;
}

export async function checkSnapshot(deviceApiUrl: string, tls: DeviceTls, timeoutMs?: number): Promise<string> {
  const s = await fetchSnapshot(deviceApiUrl, tls, timeoutMs);
  return `first snapshot of ${s.serviceId}: ${s.entries.length} mapping${s.entries.length === 1 ? '' : 's'} at sequence ${s.seq}`;
}
