// preConnect: keeps the CONNECT packet's will for authenticate to check, since aedes hands
// authenticate only the username and password. Refuses nothing by itself.
import type { Client, ConnectPacket } from 'aedes';
import type { BrokerContext } from '../context.ts';

export function preConnectHook(ctx: BrokerContext) {
  return (client: Client, packet: ConnectPacket, done: (err: Error | null, ok: boolean) => void): void => {
    // MQTT 3.1.1 3.1.2.5: the Will Flag says a will topic and message follow in the payload.
    const w = packet.will;
    ctx.wills.set(client, w ? { topic: w.topic, payload: Buffer.from(w.payload ?? ''), qos: w.qos ?? 0, retain: w.retain ?? false } : undefined);
    done(null, true);
  };
}
