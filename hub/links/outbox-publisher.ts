// Publishes the MQTT outbox: change-log entries are stored before they are published, and a row
// leaves the outbox only once the broker has taken it. After a crash, whatever was left is published
// on start; edges ignore what they already applied (seq), so a second publication is harmless.
//
// What is pending is coalesced per topic: runs of consecutive seqs go out as batches (v3, compact; v2
// when configured) under the broker's packet limit (shared/sync.ts packLogMessages), a lone entry as v1. A CRL run that suspends
// thousands of MyKey IDs thus costs the broker one write per edge per ~64 KiB, not one per entry.
// Order within a topic is kept: messages of one topic are published in order, on one connection.
//
// A window (`window`, config broker.external.outboxWindow) lets several messages of a topic be in
// flight at once: a clustered broker confirms a QoS 1 PUBLISH only once every quorum queue holds it,
// and one at a time that round trip, not the broker's throughput, set the pace. Rows leave the outbox
// only as the confirmed PREFIX of a topic's messages grows, so what is left is always a topic's oldest
// rows: a message confirmed after an earlier one failed keeps its rows and is published again (edges
// ignore a seq they already applied, edge/sync/apply-queue.ts), and a replica that takes over
// (hub/replicas) publishes from the oldest row left, as with one message in flight.
import type { Logger } from '../../shared/log.ts';
import type { Emitter } from '../../shared/typed-events.ts';
import { COMPACT_BATCH_VERSION, MAX_SYNC_PAYLOAD_BYTES, packLogMessages, type BatchVersion, type ChangeEntry } from '../../shared/sync.ts';
import type { FanoutEvents } from '../fanout.ts';
import type { LinkRepo } from '../store/link-repo.ts';

export type Publish = (topic: string, payload: string) => Promise<void>;

export interface OutboxPublisherOptions {
  repo: LinkRepo;
  log: Logger;
  publish?: Publish;
  retryMs?: number;
  sweepMs?: number;
  /** Rows read per round. */
  pageRows?: number;
  /** Largest batched payload; default the protocol's limit. */
  maxBatchBytes?: number;
  /** Batch consecutive entries; false: one v1 message per entry, as before batching. */
  batch?: boolean;
  /**
   * Batch form (shared/sync.ts): 3, compact (default), or 2 while edges older than v3 remain (they
   * drop a v3 batch and catch up through /changes, as edges before v2 do with any batch).
   */
  batchVersion?: BatchVersion;
  /** Told `published` after each round that published something (hub/fanout.ts). */
  events?: Emitter<FanoutEvents>;
  /**
   * Hub replicas (hub/replicas/coordinator.ts): true while this replica is the one publisher. Asked
   * before each page and each message; without it this process is the only publisher.
   */
  mayPublish?: () => Promise<boolean>;
  /**
   * Messages of one topic in flight at once (published, not yet confirmed); default 1. Only for a
   * publish function whose transport keeps order (one MQTT connection: the broker's clustered
   * publisher, an MQTT client); the embedded broker takes one at a time.
   */
  window?: number;
  /**
   * Bytes of payload in flight at once per topic (at least one message always goes); default no
   * bound. A clustered broker writes each message into every edge's quorum queue: a burst's 64 KiB
   * batches pipelined without a bound overran the nodes' write-ahead logs, while small single
   * entries gain the most from the window.
   */
  windowBytes?: number;
}

type Row = { id: number; topic: string; payload: string };

/** How long after a run's last `more` the sweep still holds a partly filled batch back (a run tells every 250 ms while it suspends). */
const HOLD_MAX_MS = 10_000;

/** One message to publish and the outbox rows it carries. */
export interface OutboxMessage {
  topic: string;
  payload: string;
  ids: number[];
}

/** Groups rows (in id order) by topic and packs each topic's run into messages, order kept per topic. */
export function coalesce(rows: readonly Row[], maxBytes = MAX_SYNC_PAYLOAD_BYTES, version: BatchVersion = COMPACT_BATCH_VERSION): OutboxMessage[] {
  const byTopic = new Map<string, { entry: ChangeEntry; json: string; id: number }[]>();
  const out: OutboxMessage[] = [];
  for (const r of rows) {
    const entry = entryOf(r.payload);
    if (entry === undefined) {
      // Not an entry (nothing writes such rows today): published as it is, alone.
      out.push({ topic: r.topic, payload: r.payload, ids: [r.id] });
      continue;
    }
    let list = byTopic.get(r.topic);
    if (!list) {
      list = [];
      byTopic.set(r.topic, list);
    }
    list.push({ entry, json: r.payload, id: r.id });
  }
  for (const [topic, list] of byTopic) {
    let at = 0;
    for (const m of packLogMessages(list, maxBytes, version)) {
      out.push({ topic, payload: m.payload, ids: list.slice(at, at + m.count).map((x) => x.id) });
      at += m.count;
    }
  }
  return out;
}

// The hub wrote these rows itself (links.ts append): a shape check is enough to tell them apart.
function entryOf(payload: string): ChangeEntry | undefined {
  try {
    const v = JSON.parse(payload) as Partial<ChangeEntry> | null;
    return v && Number.isInteger(v.seq) && typeof v.kind === 'string' && typeof v.at === 'string' && Array.isArray(v.remove) ? (v as ChangeEntry) : undefined;
  } catch {
    return undefined;
  }
}

export function createOutboxPublisher(deps: OutboxPublisherOptions) {
  let publish = deps.publish;
  let running = false;
  let again = false;
  /**
   * Whether the next pass publishes everything pending (true after any kick or drain that did not say
   * more is coming), or only whole messages: a CRL run still writing (kick({ more: true })) leaves
   * each topic's last, partly filled batch pending, to be filled by its next chunks, so a burst goes
   * out as full ~64 KiB messages (each costs the broker a write and a PUBACK per edge) rather than
   * one small batch per notification.
   */
  let all = false;
  /**
   * When a run last said `more` (undefined once a kick or drain without it came): the sweep then
   * publishes only whole messages too (a sweep mid-run sent a small batch to every edge), unless the
   * run has gone quiet for HOLD_MAX_MS (its last event lost), when the sweep sends everything.
   */
  let heldSince: number | undefined;
  let retry: NodeJS.Timeout | undefined;
  let stopped = false;
  let sweep: NodeJS.Timeout | undefined;
  const stats = { messages: 0, entries: 0 };

  let current: Promise<void> = Promise.resolve();
  const windowOf = (n: number | undefined) => Math.max(1, Math.floor(n ?? 1));
  let window = windowOf(deps.window);
  let windowBytes = deps.windowBytes ?? Number.POSITIVE_INFINITY;
  /** Set when a chain found this replica no longer holds the publisher lock. */
  let lost = false;

  /**
   * Publishes one topic's messages in order with up to `window` in flight, deleting the rows of the
   * confirmed prefix as it grows (one statement for whatever was confirmed meanwhile). Returns the
   * first failure; the messages from the first unconfirmed one on keep their rows.
   */
  async function sendChain(chain: readonly OutboxMessage[]): Promise<{ error: unknown } | undefined> {
    type Flight = { m: OutboxMessage; settled: boolean; error?: { error: unknown }; done: Promise<void> };
    const flights: Flight[] = [];
    let bytes = 0;
    let next = 0;
    let failure: { error: unknown } | undefined;
    let deleting: Promise<void> = Promise.resolve();
    const start = (m: OutboxMessage): Flight => {
      const f: Flight = { m, settled: false, done: Promise.resolve() };
      let sent: Promise<void>;
      try {
        sent = publish!(m.topic, m.payload);
      } catch (error) {
        sent = Promise.reject(error);
      }
      f.done = sent.then(
        () => {
          f.settled = true;
        },
        (error: unknown) => {
          f.settled = true;
          f.error = { error };
        },
      );
      return f;
    };
    for (;;) {
      // Fill the window while nothing failed.
      while (failure === undefined && !lost && next < chain.length && flights.length < window && (flights.length === 0 || bytes + chain[next].payload.length <= windowBytes)) {
        // A replica that lost the lock stops here: the new holder publishes from the oldest row left.
        if (deps.mayPublish && !(await deps.mayPublish())) {
          lost = true;
          break;
        }
        bytes += chain[next].payload.length;
        flights.push(start(chain[next++]));
      }
      if (flights.length === 0) break;
      // Wait for the oldest; then take every confirmation already in, in order.
      await flights[0].done;
      const ids: number[] = [];
      let entries = 0;
      let messages = 0;
      while (flights.length > 0 && flights[0].settled) {
        const f = flights.shift()!;
        bytes -= f.m.payload.length;
        if (f.error) failure ??= f.error;
        // Confirmed after an earlier one failed: its rows stay, so the rows left are the topic's oldest.
        if (failure !== undefined) continue;
        for (const id of f.m.ids) ids.push(id);
        entries += f.m.ids.length;
        messages++;
      }
      if (ids.length > 0) {
        // One delete at a time, in order, while later messages are in flight.
        deleting = deleting.then(async () => {
          await deps.repo.deleteMqttMany(ids);
          stats.messages += messages;
          stats.entries += entries;
        });
        deleting.catch(() => undefined);
      }
    }
    try {
      await deleting;
    } catch (error) {
      // The rows stay and are published again: a duplicate at the edges, never a loss.
      failure ??= { error };
    }
    return failure;
  }

  /**
   * Publishes what is pending; a call while a round runs makes it go round again, and waits for it.
   * `more`: a CRL run is still writing; only whole messages need go (see `all`).
   */
  function drain(o: { more?: boolean } = {}): Promise<void> {
    if (o.more) heldSince = Date.now();
    else {
      all = true;
      heldSince = undefined;
    }
    if (running) {
      again = true;
      return current;
    }
    if (!publish || stopped) return Promise.resolve();
    running = true;
    current = round();
    return current;
  }

  async function round(): Promise<void> {
    const before = { ...stats };
    lost = false;
    try {
      do {
        again = false;
        const whole = all;
        all = false;
        const pageRows = deps.pageRows ?? 5000;
        for (;;) {
          if (deps.mayPublish && !(await deps.mayPublish())) break;
          const rows = await deps.repo.pendingMqtt(pageRows);
          if (rows.length === 0) break;
          const messages = deps.batch === false ? rows.map((r) => ({ topic: r.topic, payload: r.payload, ids: [r.id] })) : coalesce(rows, deps.maxBatchBytes, deps.batchVersion);
          // Topics are independent: each goes in its own chain, in order within it.
          const chains = new Map<string, OutboxMessage[]>();
          for (const m of messages) {
            let c = chains.get(m.topic);
            if (!c) {
              c = [];
              chains.set(m.topic, c);
            }
            c.push(m);
          }
          // More is coming: each topic's last message (cut where the rows ran out, not where it was
          // full) stays pending, its rows the oldest left, and goes with what follows it.
          if (!whole) for (const c of chains.values()) c.pop();
          const sending = [...chains.values()].filter((c) => c.length > 0);
          if (sending.length === 0) break;
          const failures = await Promise.all(sending.map((chain) => sendChain(chain)));
          const failed = failures.find((f) => f !== undefined);
          if (failed) throw failed.error;
          if (lost) break;
          // A page that was not full showed everything pending when it was read (the tails wait when
          // held). Rows committed since come with their own kick (`again`): reading on after them
          // would chase a CRL run that is still writing with one small message per chunk.
          if (rows.length < pageRows) break;
        }
      } while (again);
    } catch (e) {
      if (stopped) return;
      deps.log.warn('outbox publish failed; will retry', { error: e });
      clearTimeout(retry);
      retry = setTimeout(() => void drain(), deps.retryMs ?? 1000);
      retry.unref();
    } finally {
      running = false;
      if (stats.messages > before.messages) deps.events?.emit('published', { messages: stats.messages - before.messages, entries: stats.entries - before.entries });
    }
  }

  return {
    /** Sets the broker publish function (the broker starts after the store), and its window when given. */
    attach(p: Publish, o: { window?: number; windowBytes?: number } = {}): void {
      publish = p;
      if (o.window !== undefined) window = windowOf(o.window);
      if (o.windowBytes !== undefined) windowBytes = o.windowBytes;
      void drain();
      // A safety net: rows written by a path that did not kick are published within a few seconds.
      clearInterval(sweep);
      sweep = setInterval(() => void drain(heldSince !== undefined && Date.now() - heldSince < HOLD_MAX_MS ? { more: true } : {}), deps.sweepMs ?? 2000);
      sweep.unref();
    },
    /**
     * Called after a transaction wrote outbox rows. `more`: a CRL run that goes on writing made them
     * (hub/fanout.ts `suspended`); the last call of the run comes without it.
     */
    kick(o: { more?: boolean } = {}): void {
      void drain(o);
    },
    drain,
    /** Messages and entries published since start. */
    stats: () => ({ ...stats }),
    stop(): void {
      stopped = true;
      clearTimeout(retry);
      clearInterval(sweep);
    },
  };
}

export type OutboxPublisher = ReturnType<typeof createOutboxPublisher>;
