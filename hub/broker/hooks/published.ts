// published: an accepted status from an edge (or its will) updates the device repo: online, last
// seen, applied sequence, version, health, and lag = the service's head sequence - applied. Lag is
// sampled for the console chart at most once per interval per edge (and whenever it changes). The
// repo records the status of an active device only: the will that aedes publishes for a connection
// the hub cut off after revoking the device says nothing true about it (device-repo recordStatus).
import type { AedesPublishPacket, Client } from 'aedes';
import type { BrokerContext } from '../context.ts';
import { checkStatusPayload } from '../payloads.ts';

export function publishedHook(ctx: BrokerContext, headSeq: (serviceId: string) => Promise<number>, sampleIntervalMs: number) {
  const lastSample = new Map<string, { at: number; lag: number }>();
  return (packet: AedesPublishPacket, client: Client | null, done: (err?: Error | null) => void): void => {
    void record(packet, client).finally(() => done(null));
  };
  async function record(packet: AedesPublishPacket, client: Client | null): Promise<void> {
    const id = client ? ctx.identities.get(client) : undefined;
    if (id && packet.topic === id.topics.status) {
      // authorizePublish has validated it; parsing again keeps the hooks independent.
      const s = checkStatusPayload(id, packet.payload as Buffer);
      // The will of a connection that a newer one of the same edge replaced [MQTT-3.1.4-2] says
      // "offline" about an edge that is online: it is not recorded.
      const current = ctx.connected.get(id.edgeId);
      const superseded = current !== undefined && current !== client;
      if (s.ok && !superseded) {
        try {
          const at = ctx.now();
          const lag = Math.max(0, (await headSeq(id.serviceId)) - s.value.appliedSeq);
          const prev = lastSample.get(id.edgeId);
          const sample = !prev || prev.lag !== lag || at - prev.at >= sampleIntervalMs;
          if (sample) lastSample.set(id.edgeId, { at, lag });
          await ctx.devices.recordStatus(id.edgeId, { online: s.value.online, appliedSeq: s.value.appliedSeq, version: s.value.version, health: s.value.health, lag, at }, sample);
        } catch (err) {
          // The message is delivered either way; a failing store must not stall the broker.
          ctx.log.error('recording an edge status failed', { edgeId: id.edgeId, error: err });
        }
      }
    }
  }
}
