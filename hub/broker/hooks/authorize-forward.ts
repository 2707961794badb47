// authorizeForward: the last gate before a message is written to an edge. Subscriptions are already
// limited to the edge's own topics; this makes sure nothing else (a retained message, a restored
// session) reaches it either. Compares precomputed strings, so fan-out stays cheap. What passes goes
// out under the message's one packet identifier, the same for every edge, so that the PUBLISH is
// encoded once and written to all of them as one buffer (encoded-publish.ts).
import type { AedesPublishPacket, Client } from 'aedes';
import { canReceive } from '../acl.ts';
import type { BrokerContext } from '../context.ts';

export function authorizeForwardHook(ctx: BrokerContext) {
  return (client: Client, packet: AedesPublishPacket): AedesPublishPacket | null => {
    const id = ctx.identities.get(client);
    return id && canReceive(id, packet.topic) ? ctx.withMessageId(packet, id.serviceId) : null;
  };
}
