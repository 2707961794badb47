// Edge statuses on the cluster, recorded as the embedded broker's published hook records them
// (online, applied sequence, version, health, lag). The hub subscribes to `edge/+/status` as its own
// user; the hub's topic rules let only edge X write `edge/X/status`, so the topic names the sender,
// and the payload gets the same check (hub/broker/payloads.ts) it gets on aedes. A bad payload is
// dropped with its code; it cannot crash the hub.
import type { Logger } from '../../shared/log.ts';
import { parseTopic } from '../../shared/topics.ts';
import { edgeIdentity } from '../broker/identity.ts';
import { checkStatusPayload } from '../broker/payloads.ts';
import type { DeviceRepo } from '../store/device-repo.ts';

export function createStatusRecorder(o: {
  devices: Pick<DeviceRepo, 'get' | 'recordStatus'>;
  headSeq: (serviceId: string) => Promise<number>;
  now: () => number;
  log: Logger;
  sampleIntervalMs?: number;
}) {
  const interval = o.sampleIntervalMs ?? 60_000;
  const last = new Map<string, { at: number; lag: number }>();
  return (topic: string, payload: Buffer): void => {
    record(topic, payload).catch((err) => o.log.error('recording an edge status failed', { error: err }));
  };
  async function record(topic: string, payload: Buffer): Promise<void> {
    const t = parseTopic(topic);
    if (t?.kind !== 'edge-status') return;
    const row = await o.devices.get(t.edgeId);
    if (!row || row.status !== 'active') return;
    const s = checkStatusPayload(edgeIdentity(row.edge_id, row.service_id, row.cert_fingerprint, row.not_after), payload);
    if (!s.ok) {
      o.log.warn('edge status dropped', { code: s.code, edgeId: t.edgeId });
      return;
    }
    try {
      const at = o.now();
      const lag = Math.max(0, (await o.headSeq(row.service_id)) - s.value.appliedSeq);
      const prev = last.get(t.edgeId);
      const sample = !prev || prev.lag !== lag || at - prev.at >= interval;
      if (sample) last.set(t.edgeId, { at, lag });
      await o.devices.recordStatus(t.edgeId, { online: s.value.online, appliedSeq: s.value.appliedSeq, version: s.value.version, health: s.value.health, lag, at }, sample);
    } catch (err) {
      o.log.error('recording an edge status failed', { edgeId: t.edgeId, error: err });
    }
  }
}
