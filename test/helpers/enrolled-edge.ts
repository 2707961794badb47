// An edge enrolled with a test hub, the way `mykey-enroll` leaves one: a key made on the edge, a
// certificate from the hub's device CA for that key, and the CA the edge pins. For tests that speak
// to the device API or the broker as an edge.
import type { Hub } from '../../hub/main.ts';
import { createDeviceCsr } from '../../hub/pki/device-ca.ts';
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
  h.hub.links.createService(spec);
  return { h, edge: await enrollEdge(h.hub, edgeId, spec.id) };
}
