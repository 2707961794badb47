// authorizeSubscribe: an edge subscribes to its service's change log and its own command topic,
// named exactly; anything else gets the SUBACK failure return code 0x80 (MQTT 3.1.1 3.9.3) and the
// connection stays up. The hub publishes at QoS 1, and a message is delivered at the lower of its
// own QoS and the granted one (MQTT 3.1.1 3.8.4), so a QoS 2 request never costs a QoS 2 flow.
import type { Client, Subscription } from 'aedes';
import { canSubscribe } from '../acl.ts';
import type { BrokerContext } from '../context.ts';

export function authorizeSubscribeHook(ctx: BrokerContext) {
  return (client: Client, sub: Subscription, done: (err: Error | null, sub?: Subscription | null) => void): void => {
    const id = ctx.identities.get(client);
    if (!id) {
      ctx.refuse('unauthorized', 'subscribe without an identity', { topic: sub.topic });
      return void done(null, null);
    }
    const r = canSubscribe(id, sub.topic);
    if (!r.ok) {
      ctx.refuse(r.code, `subscribe: ${r.message}`, { edgeId: id.edgeId, topic: sub.topic });
      return void done(null, null);
    }
    done(null, sub);
  };
}
