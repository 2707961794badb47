// Hub replicas on one PostgreSQL database: what must happen once across them, and what one replica
// must tell the others.
//
// - One outbox publisher at a time: a session-level advisory lock (pg_try_advisory_lock) taken on a
//   dedicated connection and held while this replica publishes. PostgreSQL releases it when that
//   connection ends, which a kill -9 of the holder does at once (the kernel closes its socket), and
//   the other replicas try to take it every `retryMs`, so one of them publishes within about that
//   long. The outbox keeps a row until the broker acknowledged it, so the new holder publishes what
//   the old one had not finished, in id order (edges skip the seqs they already applied).
// - Once per period (the scheduled CRL fetch): a claim on a row of replica_schedules, one UPDATE
//   that succeeds for the first replica whose tick comes in each period.
// - Device revocation: the device table is shared (so every replica refuses the device at its next
//   check), and the replica that revoked it sends NOTIFY on a channel every replica LISTENs on, so
//   the replica whose embedded broker holds the edge's session drops it now. After the listening
//   connection is re-established (a notification may have been missed), `onResync` lets the hub
//   check its connected edges against the table.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../../shared/log.ts';
import type { Sql } from '../store/sql.ts';

/** NOTIFY channel of the replicas. */
export const REPLICA_CHANNEL = 'mykey_replicas';
/** Advisory lock key of the outbox publisher (any constant shared by every hub on the database). */
export const OUTBOX_LOCK = '7885681097389061939';

/**
 * What one replica tells the others: a device was revoked (the replica holding its MQTT session drops
 * it); change-log entries were written (the outbox publisher, on whichever replica, publishes now
 * rather than at its next sweep); the publisher published a service's entries `from`..`to` (the
 * others relay them to their own embedded brokers, log-relay.ts).
 */
export type ReplicaEvent = { type: 'deviceRevoked'; edgeId: string } | { type: 'outboxWritten' } | { type: 'published'; serviceId: string; from: number; to: number };

function isEvent(v: unknown): v is ReplicaEvent {
  const e = v as Partial<{ type: unknown; edgeId: unknown; serviceId: unknown; from: unknown; to: unknown }> | null;
  if (!e) return false;
  if (e.type === 'deviceRevoked') return typeof e.edgeId === 'string';
  if (e.type === 'published') return typeof e.serviceId === 'string' && Number.isSafeInteger(e.from) && Number.isSafeInteger(e.to) && (e.from as number) >= 1 && (e.to as number) >= (e.from as number);
  return e.type === 'outboxWritten';
}

export interface ReplicaCoordinatorOptions {
  /** The PostgreSQL URL (store.url): the coordinator opens its own two connections. */
  url: string;
  /** The store's executor (schedule claims). */
  sql: Sql;
  log: Logger;
  /** How often a replica without the outbox lock tries to take it, and a lost connection is reopened. */
  retryMs?: number;
  now?: () => number;
  /** This replica took the outbox lock (publish what is pending now). */
  onOutboxLock?: () => void;
  /** Another replica said something. */
  onEvent?: (e: ReplicaEvent) => void;
  /** The listening connection was (re)opened: notifications sent meanwhile were missed. */
  onResync?: () => void;
}

export interface ReplicaCoordinator {
  /** This replica's id (in NOTIFY payloads, so that it ignores its own). */
  readonly id: string;
  /** True while this replica holds the outbox lock (synchronous: the connection's state). */
  readonly holdsOutbox: boolean;
  /** True when this replica holds the outbox lock, taking it if it is free. */
  mayPublishOutbox(): Promise<boolean>;
  /** True for the one replica whose call first comes in a period of `periodMs` for `name`. */
  claimPeriod(name: string, periodMs: number): Promise<boolean>;
  /** Tells the other replicas (best effort; logged when it fails). */
  announce(e: ReplicaEvent): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

// A claim is free again after 90% of a period: the ticks of one replica (jittered by up to a tenth
// of the period, crl-manager.ts) still claim every period, and another replica's tick inside the
// same period does not.
const CLAIM = `
  INSERT INTO replica_schedules (name, next_at, ran_at) VALUES (?, ?, ?)
  ON CONFLICT (name) DO UPDATE SET next_at = EXCLUDED.next_at, ran_at = EXCLUDED.ran_at
    WHERE replica_schedules.next_at <= EXCLUDED.ran_at
  RETURNING name`;

export function createReplicaCoordinator(o: ReplicaCoordinatorOptions): ReplicaCoordinator {
  const id = randomBytes(6).toString('hex');
  const retryMs = o.retryMs ?? 1000;
  const now = o.now ?? Date.now;
  let stopped = false;
  let lockClient: pg.Client | undefined;
  let held = false;
  let trying: Promise<boolean> | undefined;
  let lastTry = 0;
  let listenClient: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  let listenRetry: NodeJS.Timeout | undefined;

  /** `role`: in the connection's application_name (pg_stat_activity shows which replica holds what). */
  const connect = async (role: 'lock' | 'listen'): Promise<pg.Client> => {
    // keepAlive: a holder cut off by the network (not killed) is noticed by the server, which then
    // frees its lock, instead of holding it until the socket times out on its own.
    const c = new pg.Client({ connectionString: o.url, keepAlive: true, application_name: `mykey-hub-${role}-${id}` });
    await c.connect();
    return c;
  };

  function dropLock(why: string) {
    if (held) o.log.warn('outbox lock lost', { reason: why });
    held = false;
    const c = lockClient;
    lockClient = undefined;
    c?.end().catch(() => undefined);
  }

  async function tryLock(): Promise<boolean> {
    if (held || stopped) return held;
    lastTry = now();
    try {
      if (!lockClient) {
        const c = await connect('lock');
        c.on('error', (e) => dropLock(e.message));
        c.on('end', () => dropLock('connection ended'));
        if (stopped) {
          await c.end();
          return false;
        }
        lockClient = c;
      }
      const r = await lockClient.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${OUTBOX_LOCK}) AS ok`);
      held = r.rows[0]?.ok === true;
      if (held) {
        o.log.info('this replica publishes the outbox');
        o.onOutboxLock?.();
      }
      return held;
    } catch (e) {
      dropLock((e as Error).message);
      return false;
    }
  }

  async function listen(): Promise<void> {
    if (stopped) return;
    try {
      const c = await connect('listen');
      const lost = (why: string) => {
        if (listenClient !== c) return;
        listenClient = undefined;
        c.end().catch(() => undefined);
        if (stopped) return;
        o.log.warn('replica notifications interrupted; reconnecting', { reason: why });
        clearTimeout(listenRetry);
        listenRetry = setTimeout(() => void listen(), retryMs);
        listenRetry.unref();
      };
      c.on('error', (e) => lost(e.message));
      c.on('end', () => lost('connection ended'));
      c.on('notification', (n) => {
        if (n.channel !== REPLICA_CHANNEL || !n.payload) return;
        let msg: { from?: unknown; event?: ReplicaEvent };
        try {
          msg = JSON.parse(n.payload) as typeof msg;
        } catch {
          return; // not ours: only hubs NOTIFY on this channel
        }
        if (msg.from === id || !isEvent(msg.event)) return;
        try {
          o.onEvent?.(msg.event);
        } catch (e) {
          o.log.error('a replica event handler failed', { error: e });
        }
      });
      await c.query(`LISTEN ${REPLICA_CHANNEL}`);
      if (stopped) {
        await c.end();
        return;
      }
      listenClient = c;
      o.onResync?.();
    } catch (e) {
      if (stopped) return;
      o.log.warn('replica notifications unavailable; retrying', { error: (e as Error).message });
      clearTimeout(listenRetry);
      listenRetry = setTimeout(() => void listen(), retryMs);
      listenRetry.unref();
    }
  }

  return {
    id,
    get holdsOutbox() {
      return held;
    },
    mayPublishOutbox(): Promise<boolean> {
      if (held || stopped) return Promise.resolve(held && !stopped);
      // Asked on every outbox round: the database is asked at most once per retryMs.
      if (now() - lastTry < retryMs) return Promise.resolve(false);
      trying ??= tryLock().finally(() => (trying = undefined));
      return trying;
    },
    async claimPeriod(name, periodMs) {
      const t = now();
      const r = await o.sql.get<{ name: string }>(CLAIM, [name, t + Math.floor(periodMs * 0.9), t]);
      return r !== undefined;
    },
    async announce(e) {
      try {
        await o.sql.run('SELECT pg_notify(?, ?)', [REPLICA_CHANNEL, JSON.stringify({ from: id, event: e })]);
      } catch (err) {
        o.log.warn('the other replicas could not be told; they act at their next check', { error: (err as Error).message });
      }
    },
    async start() {
      await listen();
      // One attempt at a time: a retry tick while one is in flight waits for the next tick.
      const attempt = () => {
        trying = tryLock().finally(() => {
          trying = undefined;
        });
      };
      if (!trying) attempt();
      timer = setInterval(() => {
        if (!held && !trying && !stopped) attempt();
      }, retryMs);
      timer.unref();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearTimeout(listenRetry);
      await trying?.catch(() => undefined);
      const l = listenClient;
      listenClient = undefined;
      held = false;
      const k = lockClient;
      lockClient = undefined;
      // Ending the connection frees the lock (and the LISTEN) at once.
      await Promise.all([l?.end().catch(() => undefined), k?.end().catch(() => undefined)]);
    },
  };
}
