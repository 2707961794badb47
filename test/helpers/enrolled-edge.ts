// An edge enrolled with a test hub, the way `mykey-enroll` leaves one: a key made on the edge, a
// certificate from the hub's device CA for that key, and the CA the edge pins. For tests that speak
// to the device API or the broker as an edge.
import { writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Hub } from '../../hub/main.ts';
import { createDeviceCsr, derToPem } from '../../hub/pki/device-ca.ts';
import { DeviceRotateResponse } from '../../shared/device-api.ts';
import type { HubHttpClient } from '../../shared/hub-client.ts';
import { startTestHub, type TestHub } from './hub.ts';

/** An edge's TLS identity on the device API and the broker (PEM). */
export interface EdgeTls {
  edgeId: string;
  serviceId: string;
  certPem: string;
  keyPem: string;
  /** The hub's device CA, which the edge trusts for the hub's listeners. */
  caPem: string;
  /** The same, as the platform's HTTP clients take it (shared/hub-client.ts HubTls). */
  tls: { cert: string; key: string; ca: string };
}

/** Enrolls `edgeId` in `serviceId` (which must exist) on a started hub; throws when the hub refuses. */
export async function enrollEdge(hub: Hub, edgeId: string, serviceId = 'library'): Promise<EdgeTls> {
  const csr = await createDeviceCsr(edgeId);
  const enrolled = await hub.enrollment!.enroll(csr.csrDer, { edgeId, serviceId, validityDays: 30 });
  if (!enrolled.ok) throw new Error(`enrollment of ${edgeId} refused: ${enrolled.code} ${enrolled.message}`);
  const { certPem, caPem } = enrolled.value;
  return { edgeId, serviceId, certPem, keyPem: csr.keyPem, caPem, tls: { cert: certPem, key: csr.keyPem, ca: caPem } };
}

/**
 * Writes `edge`'s TLS files into `o.dir` (as mykey-enroll leaves them) and returns the configuration of
 * an edge agent for it against `hub`: the reader on vpcd slot 0, every outcome handed to `o.webhook`.
 */
export function agentConfig(hub: Hub, edge: Pick<EdgeTls, 'edgeId' | 'serviceId' | 'certPem' | 'keyPem' | 'caPem'>, o: { dir: string; webhook: string; logLevel: string }) {
  const tls = { cert: join(o.dir, 'device.pem'), key: join(o.dir, 'device.key'), ca: join(o.dir, 'hub-ca.pem') };
  writeFileSync(tls.cert, edge.certPem);
  writeFileSync(tls.key, edge.keyPem, { mode: 0o600 });
  writeFileSync(tls.ca, edge.caPem);
  return {
    edgeId: edge.edgeId,
    serviceId: edge.serviceId,
    hub: { url: hub.addresses.deviceApi },
    broker: { url: hub.addresses.mqtts },
    tls,
    stateDir: join(o.dir, 'state'),
    readers: { include: ['Virtual PCD 00 00'] },
    handoff: { targets: [{ type: 'webhook', url: o.webhook, outcomes: ['linked', 'not_linked', 'refused', 'degraded'] }] },
    kiosk: { port: 0 },
    logLevel: o.logLevel,
  };
}

type ServiceSpec = Parameters<Hub['links']['createService']>[0];

/**
 * A started test hub with its device listeners on free ports, one service, and one edge of that
 * service enrolled (by default the service `library`, with the platform's defaults).
 */
export async function startHubWithEdge(opts: { edgeId: string; service?: Partial<ServiceSpec> } & NonNullable<Parameters<typeof startTestHub>[0]>): Promise<{ h: TestHub; edge: EdgeTls }> {
  const { edgeId, service, ...hubOpts } = opts;
  const h = await startTestHub(hubOpts);
  await h.hub.start();
  const spec: ServiceSpec = { id: 'library', name: 'Town library', ...service };
  await h.hub.links.createService(spec);
  return { h, edge: await enrollEdge(h.hub, edgeId, spec.id) };
}

/** The answer of the device API: status and parsed JSON body (undefined when empty). */
export type DeviceAnswer = { status: number; body: any };

/** One call to the hub's device API as `edge` (mutual TLS): a GET without a body, a JSON POST with one. */
export function deviceRequest(hub: Hub, edge: Pick<EdgeTls, 'certPem' | 'keyPem' | 'caPem'>, method: string, path: string, body?: unknown): Promise<DeviceAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      new URL(path, hub.addresses.deviceApi),
      { method, ca: edge.caPem, cert: edge.certPem, key: edge.keyPem, headers: body === undefined ? {} : { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text || undefined;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON: the text itself
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** A counter registration as edge/register makes it (the card's certificate and the service's number); the HTTP status. */
export async function counterLink(hub: Hub, edge: Pick<EdgeTls, 'certPem' | 'keyPem' | 'caPem'>, certDer: Uint8Array, serviceUserId: string): Promise<number> {
  const r = await deviceRequest(hub, edge, 'POST', '/v1/device/links', { identity: { certificate: Buffer.from(certDer).toString('base64') }, serviceUserId });
  return r.status;
}

/**
 * Connects to `hub`'s broker over TLS as an edge with `tls` (its certificate, key and pinned CA), MQTT
 * 3.1.1, no reconnects; `over` adds or replaces options (clean session, a will).
 */
export function connectEdgeMqtt(hub: Hub, edgeId: string, tls: Pick<EdgeTls, 'certPem' | 'keyPem' | 'caPem'>, over: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(hub.addresses.mqtts!, { clientId: edgeId, ca: tls.caPem, cert: tls.certPem, key: tls.keyPem, protocolVersion: 4, reconnectPeriod: 0, ...over });
}

/** `POST /v1/device/rotate` through `client` with a new key made for `edgeId`: the answer and that key. */
export async function rotateDevice(client: HubHttpClient, edgeId: string) {
  const csr = await createDeviceCsr(edgeId);
  const r = await client.call({
    method: 'POST',
    path: '/v1/device/rotate',
    body: { csrPem: derToPem(csr.csrDer, 'CERTIFICATE REQUEST') },
    expect: [201],
    schema: DeviceRotateResponse,
    what: 'rotate',
  });
  return { ...r.value, keyPem: csr.keyPem };
}
