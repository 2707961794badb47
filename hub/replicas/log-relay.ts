// The change log on every replica's embedded broker. One replica publishes the outbox (coordinator.ts),
// but edges are spread over the replicas' embedded brokers (a load balancer, or each edge's list of
// broker URLs): after each log message it publishes, the publisher tells the others which entries it
// carried (service, first and last seq: a NOTIFY payload is limited to 8000 bytes, a message is up to
// 64 KiB), and each other replica reads those entries from the shared change log and publishes them
// to its own broker, in the order told. An edge that misses some (a replica that was not listening)
// sees the gap at its next entry and catches up through /changes, as after any disconnection.
//
// With a clustered broker (broker.external) there is nothing to relay: every edge is on the cluster.
import type { Logger } from '../../shared/log.ts';
import { MAX_SYNC_PAYLOAD_BYTES, packLogMessages, type BatchVersion, type ChangeEntry } from '../../shared/sync.ts';
import { parseTopic, serviceLogTopic } from '../../shared/topics.ts';

/** Entries of a service's log published by the outbox publisher (`published` of ReplicaEvent). */
export interface PublishedRange {
  serviceId: string;
  from: number;
  to: number;
}

/** The range of seqs a log message carries (the publisher's own payload: v1 entry or v2 batch), or undefined. */
export function rangeOf(topic: string, payload: string): PublishedRange | undefined {
  const t = parseTopic(topic);
  if (t?.kind !== 'service-log') return undefined;
  try {
    const m = JSON.parse(payload) as { seq?: unknown; v?: unknown; entries?: unknown };
    if (!Number.isInteger(m.seq)) return undefined;
    const n = 'v' in m ? (Array.isArray(m.entries) ? m.entries.length : 0) : 1;
    return n > 0 ? { serviceId: t.serviceId, from: m.seq as number, to: (m.seq as number) + n - 1 } : undefined;
  } catch {
    return undefined;
  }
}

export function createLogRelay(deps: {
  changesAfter: (serviceId: string, seq: number, limit: number) => Promise<ChangeEntry[]>;
  /** This replica's embedded broker (QoS 1). */
  publish: (topic: string, payload: string) => Promise<void>;
  log: Logger;
  maxBatchBytes?: number;
  /** Batch form (shared/sync.ts), as the outbox writes it (broker.logBatchVersion). */
  batchVersion?: BatchVersion;
}) {
  let chain: Promise<void> = Promise.resolve();
  /** The last seq relayed per service: a range told twice (or overlapping) is published once. */
  const relayed = new Map<string, number>();
  async function relay(r: PublishedRange): Promise<void> {
    const from = Math.max(r.from, (relayed.get(r.serviceId) ?? 0) + 1);
    if (from > r.to) return;
    const entries = (await deps.changesAfter(r.serviceId, from - 1, r.to - from + 1)).filter((e) => e.seq <= r.to);
    const topic = serviceLogTopic(r.serviceId);
    for (const m of packLogMessages(
      entries.map((entry) => ({ entry, json: JSON.stringify(entry) })),
      deps.maxBatchBytes ?? MAX_SYNC_PAYLOAD_BYTES,
      deps.batchVersion,
    ))
      await deps.publish(topic, m.payload);
    if (entries.length > 0) relayed.set(r.serviceId, entries[entries.length - 1]!.seq);
  }
  return {
    /** Resolves when the ranges told so far are relayed (the new publisher waits for it before its first message). */
    settled(): Promise<void> {
      return chain;
    },
    /** This replica published a range itself (it publishes the outbox now): not to be relayed again. */
    mark(r: PublishedRange): void {
      if (r.to > (relayed.get(r.serviceId) ?? 0)) relayed.set(r.serviceId, r.to);
    },
    /** Publishes a range another replica published, after the ranges told before it. */
    relay(r: PublishedRange): Promise<void> {
      chain = chain.then(() => relay(r)).catch((e) => deps.log.warn('change-log entries could not be relayed to this broker; edges catch up through /changes', { error: e }));
      return chain;
    },
  };
}
