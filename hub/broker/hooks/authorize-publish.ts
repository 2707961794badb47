// authorizePublish: an edge publishes only its own status (valid EdgeStatus speaking for itself) and
// its own command replies, at QoS 0 or 1, each at most MAX_SYNC_PAYLOAD_BYTES. MQTT 3.1.1 has no
// negative PUBACK: an unauthorized PUBLISH closes the connection [MQTT-3.3.5-2]. Also runs for a
// will when it is published; the hub's own publishes go around it (aedes.publish).
import type { Client, PublishPacket } from 'aedes';
import { canPublish } from '../acl.ts';
import type { BrokerContext } from '../context.ts';
import { checkReplyPayload, checkStatusPayload } from '../payloads.ts';

export function authorizePublishHook(ctx: BrokerContext) {
  return (client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void => {
    const id = client ? ctx.identities.get(client) : undefined;
    const refuse = (code: Parameters<BrokerContext['refuse']>[0], what: string) => {
      ctx.refuse(code, `publish: ${what}`, { edgeId: id?.edgeId, topic: packet.topic, bytes: packet.payload?.length });
      done(new Error(code));
    };
    if (!id) return void refuse('unauthorized', 'no identity (stale will or unauthenticated)');
    const topic = canPublish(id, packet.topic);
    if (!topic.ok) return void refuse(topic.code, topic.message);
    if (packet.qos > 1) return void refuse('validation_failed', 'QoS 2 is not part of the protocol');
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (topic.value === 'status') {
      const s = checkStatusPayload(id, payload);
      if (!s.ok) return void refuse(s.code, s.message);
      // Edges publish their status retained (and as their will) so that a stock broker keeps it for
      // whoever watches. Here the hub itself is that watcher: the published hook records the status
      // in the device repo, and no edge may subscribe to status topics. Keeping a retained copy per
      // edge would make every SUBSCRIBE scan them all (aedes matches retained messages against each
      // new subscription), which grows with the square of the fleet, so it is not kept.
      packet.retain = false;
    } else {
      if (packet.retain) return void refuse('validation_failed', 'replies are not retained');
      const r = checkReplyPayload(payload);
      if (!r.ok) return void refuse(r.code, r.message);
    }
    done(null);
  };
}
