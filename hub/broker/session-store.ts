// The broker's session store: aedes' in-memory persistence, except that messages on a service's
// change log are never kept for an edge's session.
//
// aedes keeps every QoS 1 message for each persistent session (edges connect with clean=false) until
// it is acknowledged, and for a session whose edge is offline, until the edge comes back: about 100
// bytes of hub memory per message per offline edge (the payload is shared), without a bound, so a
// reader left unplugged for weeks would hold tens of megabytes, a hundred of them gigabytes. None of
// it is needed for the change log: every entry is stored before it is published, and an edge catches
// up through /v1/device/changes at every connect (edge/sync: requestCatchUp('connect')) and whenever
// a message shows a gap, as after a hub restart, which loses these queues anyway. So a log message is
// written to the edges connected now and kept for none (an unacknowledged one is not resent on the
// next connect: the catch-up brings it). Commands to one edge (edge/<id>/cmd) are kept as before:
// they exist nowhere else.
import type { AedesPublishPacket } from 'aedes';
import memoryPersistence from 'aedes-persistence';
import { parseTopic } from '../../shared/topics.ts';

/** Whether aedes keeps a message for sessions: not a service's change log. */
export const keptForSessions = (topic: string): boolean => parseTopic(topic)?.kind !== 'service-log';

/** The persistence methods aedes 1.x calls without a callback (each returns a promise). */
interface PromiseForm {
  outgoingEnqueueCombi(subs: { clientId: string }[], packet: AedesPublishPacket): Promise<void>;
  outgoingUpdate(client: unknown, packet: AedesPublishPacket): Promise<void>;
}

/** aedes-persistence's factory (a CommonJS function: its type declarations describe an ES default). */
const memory = memoryPersistence as unknown as () => object;

/** aedes' in-memory persistence, keeping no change-log message for any session (see above). */
export function createSessionStore(): object {
  const store = memory();
  const form = store as unknown as PromiseForm;
  const enqueue = form.outgoingEnqueueCombi.bind(store);
  const update = form.outgoingUpdate.bind(store);
  // Called for every QoS 1 publish with the persistent sessions it matches, online or not.
  form.outgoingEnqueueCombi = (subs, packet) => (keptForSessions(packet.topic) ? enqueue(subs, packet) : Promise.resolve());
  // Called as a message is written to a persistent session, to record its packet id with the copy kept.
  form.outgoingUpdate = (client, packet) => (keptForSessions(packet.topic) ? update(client, packet) : Promise.resolve());
  return store;
}
