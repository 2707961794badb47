// Hub replicas wired to the hub's parts (hub/main.ts calls this when the store is PostgreSQL): the
// coordinator (coordinator.ts) and what the parts do with it. The outbox and the webhooks run while
// this replica holds the publisher lock; change-log entries written here wake the publisher wherever
// it runs; the publisher's log messages are relayed to the other replicas' embedded brokers
// (log-relay.ts); a device revoked here is dropped by whichever replica's broker holds its session;
// challenges and rate limits are the shared ones.
import type { Logger } from '../../shared/log.ts';
import type { BatchVersion, ChangeEntry } from '../../shared/sync.ts';
import type { ChallengeStore } from '../mykey/challenges.ts';
import type { DeviceRepo } from '../store/device-repo.ts';
import type { Sql } from '../store/sql.ts';
import { createReplicaCoordinator, type ReplicaCoordinator } from './coordinator.ts';
import { createLogRelay, rangeOf } from './log-relay.ts';
import { createSharedChallengeStore, type SharedChallengeOptions } from './shared-challenges.ts';
import { createSharedRateBuckets, type RateBuckets } from './shared-rate-limit.ts';

/** The hub's parts the replicas act on, asked for when needed (some exist only once the hub started). */
export interface ReplicaParts {
  outbox: { kick(): void };
  webhooks: { kick(): void };
  /** The embedded broker, once started. */
  broker(): { publish(topic: string, payload: string, o: { qos: 1 }): Promise<void>; disconnectEdge(edgeId: string): boolean; connectedEdges(): string[] } | undefined;
  /** True with a clustered broker (broker.external): every edge is on the cluster, nothing to relay. */
  clustered(): boolean;
  devices: Pick<DeviceRepo, 'get'>;
  changesAfter(serviceId: string, seq: number, limit: number): Promise<ChangeEntry[]>;
}

export interface Replicas {
  readonly coordinator: ReplicaCoordinator;
  readonly challenges: (o: SharedChallengeOptions) => ChallengeStore;
  readonly rateBuckets: RateBuckets;
  /** The outbox publisher's and the webhook sender's gate. */
  mayPublish(): Promise<boolean>;
  claimPeriod(name: string, periodMs: number): Promise<boolean>;
  /** Change-log entries were written here: the publisher, on another replica, is told. */
  outboxWritten(): void;
  /** The outbox's publish function on the embedded broker: the others relay what it published. */
  embeddedPublish(publish: (topic: string, payload: string) => Promise<void>): (topic: string, payload: string) => Promise<void>;
  /** A device was revoked here: the others drop its session. */
  deviceRevoked(edgeId: string): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createReplicas(o: { url: string; sql: Sql; log: Logger; retryMs: number; batchVersion?: BatchVersion; parts: () => ReplicaParts }): Replicas {
  const relay = createLogRelay({
    batchVersion: o.batchVersion,
    changesAfter: (serviceId, seq, limit) => o.parts().changesAfter(serviceId, seq, limit),
    publish: (topic, payload) => o.parts().broker()?.publish(topic, payload, { qos: 1 }) ?? Promise.resolve(),
    log: o.log.child('relay'),
  });
  const kickPublisher = () => {
    const p = o.parts();
    p.outbox.kick();
    p.webhooks.kick();
  };
  // Notifications sent while this replica was not listening are lost: its connected edges are
  // checked against the shared device table instead.
  async function dropRevokedSessions(): Promise<void> {
    const p = o.parts();
    const b = p.broker();
    if (!b) return;
    for (const edgeId of b.connectedEdges()) {
      const d = await p.devices.get(edgeId);
      if (!d || d.status !== 'active') b.disconnectEdge(edgeId);
    }
  }
  const coordinator = createReplicaCoordinator({
    url: o.url,
    sql: o.sql,
    log: o.log,
    retryMs: o.retryMs,
    onOutboxLock: kickPublisher,
    onEvent: (e) => {
      if (e.type === 'deviceRevoked') o.parts().broker()?.disconnectEdge(e.edgeId);
      else if (e.type === 'published') {
        if (!o.parts().clustered()) void relay.relay(e);
      } else if (coordinator.holdsOutbox) kickPublisher();
    },
    onResync: () => void dropRevokedSessions().catch((err) => o.log.warn('connected edges could not be checked', { error: err })),
  });
  // One notification in flight at a time; those asked for meanwhile make one more after it.
  let telling: Promise<void> | undefined;
  let tellAgain = false;
  function outboxWritten(): void {
    if (coordinator.holdsOutbox) return;
    if (telling) {
      tellAgain = true;
      return;
    }
    telling = coordinator.announce({ type: 'outboxWritten' }).finally(() => {
      telling = undefined;
      if (tellAgain) {
        tellAgain = false;
        outboxWritten();
      }
    });
  }
  return {
    coordinator,
    challenges: (c) => createSharedChallengeStore(o.sql, c),
    rateBuckets: createSharedRateBuckets(o.sql),
    mayPublish: () => coordinator.mayPublishOutbox(),
    claimPeriod: (name, periodMs) => coordinator.claimPeriod(name, periodMs),
    outboxWritten,
    embeddedPublish: (publish) => async (topic, payload) => {
      // A replica that just took over first finishes relaying what its predecessor told it, so its
      // own broker gets the log in order.
      await relay.settled();
      await publish(topic, payload);
      const range = rangeOf(topic, payload);
      if (range) {
        relay.mark(range);
        await coordinator.announce({ type: 'published', ...range });
      }
    },
    deviceRevoked: (edgeId) => void coordinator.announce({ type: 'deviceRevoked', edgeId }),
    start: () => coordinator.start(),
    stop: () => coordinator.stop(),
  };
}
