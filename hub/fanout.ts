// Revocation fan-out as one chain of typed events (shared/typed-events.ts), wired here and nowhere
// else: a CRL run suspends MyKey IDs, or a link changes, and the transaction that did it has written
// change-log entries with their MQTT and webhook outbox rows (`suspended`, `outboxWritten`); the
// outbox hands them to the broker, batched (`published`); the services' business systems
// acknowledge their notices (`notified`). A revoked device certificate drops its edge's session
// (`deviceRevoked`). Emitters only say what happened; the reactions are the listeners below. A
// listener that throws is logged, never fatal, and the events carry counts, never an ID of a person.
//
// Who emits (each is given the bus as an Emitter, never a callback):
//   suspended       hub/revocation/crl-manager.ts, after each committed chunk of suspensions
//   outboxWritten   hub/links/links.ts after its transactions; hub/linkage after each carry-over; hub/main.ts after each group commit
//                   of the write batcher (MyKey lifecycle changes append change-log entries)
//   published       hub/links/outbox-publisher.ts, after each round that published something
//   notified        hub/notify/webhooks.ts, for each acknowledged request
//   deviceRevoked   hub/enrollment/device-enrollment.ts, after a revocation or a superseded certificate
import type { Logger } from '../shared/log.ts';
import { TypedEvents, type ListenerFailureLog } from '../shared/typed-events.ts';

export interface FanoutEvents {
  /**
   * A CRL run suspended MyKey IDs; their entries are in the outbox, committed. `more`: the run goes on
   * writing (its last event comes without it), so a partly filled batch may wait for the rest.
   */
  suspended: { source: 'crl'; more?: boolean };
  /** A transaction committed change-log entries and their outbox rows (`more`: as for `suspended`). */
  outboxWritten: { source: 'links' | 'lifecycle' | 'crl' | 'linkage'; more?: boolean };
  /** The broker took change-log messages (a batch counts once, with its entries). */
  published: { messages: number; entries: number };
  /** A service's business system acknowledged notices. */
  notified: { notices: number };
  /** A device certificate was revoked: its edge must lose its MQTT session now. */
  deviceRevoked: { edgeId: string };
}

export type FanoutBus = TypedEvents<FanoutEvents>;

/** The bus; created first, so that every part can be given its `emit` before the chain is wired. */
export function createFanoutBus(log: ListenerFailureLog): FanoutBus {
  return new TypedEvents<FanoutEvents>(log, 'fanout');
}

export interface FanoutParts {
  log: Logger;
  outbox: { kick(o?: { more?: boolean }): void };
  webhooks: { kick(): void };
  /** Drops an edge's session on the embedded broker (once started). */
  disconnectEdge: (edgeId: string) => void;
  /** Cuts an edge off the clustered broker (broker.external), when there is one. */
  cutOffEdge?: (edgeId: string) => void;
  /**
   * The other hubs on the same PostgreSQL (hub/replicas), when there are any: entries written here
   * wake the outbox publisher on whichever replica publishes, and a device revoked here may hold its
   * session on another replica's embedded broker.
   */
  replicas?: { outboxWritten(): void; deviceRevoked(edgeId: string): void };
}

/** Subscribes the outbox, the webhooks, the brokers and the other replicas to the chain; returns the function that unsubscribes them. */
export function wireFanout(bus: FanoutBus, p: FanoutParts): () => void {
  const offs = [
    bus.on('suspended', (e) => bus.emit('outboxWritten', { source: 'crl', ...(e.more ? { more: true } : {}) })),
    bus.on('outboxWritten', (e) => {
      p.outbox.kick(e.more ? { more: true } : {});
      p.replicas?.outboxWritten();
      p.webhooks.kick();
    }),
    bus.on('published', (e) => p.log.debug('change-log messages published', e)),
    bus.on('notified', (e) => p.log.debug('notices acknowledged', e)),
    bus.on('deviceRevoked', ({ edgeId }) => p.disconnectEdge(edgeId)),
    bus.on('deviceRevoked', ({ edgeId }) => p.cutOffEdge?.(edgeId)),
    bus.on('deviceRevoked', ({ edgeId }) => p.replicas?.deviceRevoked(edgeId)),
  ];
  return () => {
    for (const off of offs) off();
  };
}
