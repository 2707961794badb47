// The per-service change log and its outboxes. Every change of a link is, in one transaction: the link
// row, the service's change-log entry (next seq), the MQTT outbox row that carries it to the service's
// edges, and, where the service has a webhook, the signed notice (失効連絡) in the webhook outbox.
// Changes of a MyKey ID itself (suspension by a CRL, resumption, invalidation, carry-over, change of
// id) reach here through the MyKey repository's lifecycle listener, inside the transaction that makes
// them, and fan out to every service the MyKey ID is linked with.
import type { ChangeEntry, ChangeKind } from '../../shared/sync.ts';
import { serviceLogTopic } from '../../shared/topics.ts';
import type { Emitter } from '../../shared/typed-events.ts';
import type { FanoutEvents } from '../fanout.ts';
import type { LinkRepo, LinkRow, ServiceRow } from '../store/link-repo.ts';
import type { MyKeyLifecycleEvent, MyKeyRepo } from '../store/mykey-repo.ts';
import type { Sql } from '../store/sql.ts';
import type { KeyedIdentities } from './keyed-identities.ts';

/** What a service's business system is told (webhook body). Never the MyKey ID: the service ID is its key. */
export interface ServiceNotice {
  id: string;
  type: 'link.created' | 'link.replaced' | 'link.unlinked' | 'link.suspended' | 'link.resumed' | 'link.carried_over';
  serviceId: string;
  serviceUserId: string;
  reason?: string;
  seq: number;
  at: string;
}

/** One change to append: what happened, to whom, and what the edges remove and set. */
export interface ChangeInput {
  kind: ChangeKind;
  mykeyId: string;
  serviceUserId: string | null;
  by: string;
  remove: string[];
  set?: ChangeEntry['set'];
  reason?: string;
  notice?: ServiceNotice['type'];
}

export interface ChangeLogDeps {
  /** The store's executor. */
  sql: Sql;
  repo: LinkRepo;
  mykeys: MyKeyRepo;
  keys: KeyedIdentities;
  now: () => number;
  /** Told `outboxWritten` after a transaction that wrote outbox rows has committed (hub/fanout.ts). */
  events?: Emitter<FanoutEvents>;
}

export function createChangeLog(deps: ChangeLogDeps) {
  const { sql, repo, mykeys, keys, now } = deps;
  const { derived, keysOf } = keys;
  /** Outbox rows appended so far: a transaction that moved it tells the publishers after its commit. */
  let appended = 0;

  /**
   * Appends change-log entries with their outbox rows, in order: each service's seqs taken at once
   * (services in the order they first come), the rows queued. Must run inside a transaction.
   */
  async function appendAll(changes: readonly { s: ServiceRow; c: ChangeInput }[]): Promise<ChangeEntry[]> {
    const counts = new Map<string, number>();
    for (const { s } of changes) counts.set(s.id, (counts.get(s.id) ?? 0) + 1);
    const nextSeq = new Map<string, number>();
    for (const [id, n] of counts) nextSeq.set(id, await repo.takeSeqs(id, n));
    const out: ChangeEntry[] = [];
    for (const { s, c } of changes) {
      const at = now();
      const seq = nextSeq.get(s.id)!;
      nextSeq.set(s.id, seq + 1);
      const entry: ChangeEntry = {
        seq,
        kind: c.kind,
        at: new Date(at).toISOString(),
        remove: [...new Set(c.remove)],
        ...(c.set ? { set: c.set } : {}),
        ...(c.reason ? { reason: c.reason } : {}),
        ...keys.schemeField(s),
      };
      const json = JSON.stringify(entry);
      await repo.insertChange({ service_id: s.id, seq, kind: c.kind, mykey_id: c.mykeyId, service_user_id: c.serviceUserId, by: c.by, entry: json, at });
      await repo.insertMqtt(serviceLogTopic(s.id), json, at);
      if (c.notice && c.serviceUserId && s.webhook_url) {
        const notice: ServiceNotice = {
          id: `${s.id}-${seq}`,
          type: c.notice,
          serviceId: s.id,
          serviceUserId: c.serviceUserId,
          ...(c.reason ? { reason: c.reason } : {}),
          seq,
          at: entry.at,
        };
        await repo.queueWebhook(s.id, JSON.stringify(notice), at);
      }
      appended++;
      out.push(entry);
    }
    return out;
  }

  /** Appends one change-log entry with its outbox rows. Must run inside a transaction. */
  const append = async (s: ServiceRow, c: ChangeInput): Promise<ChangeEntry> => (await appendAll([{ s, c }]))[0];

  /** Runs a write transaction and tells the outbox publishers afterwards. */
  async function tx<T>(fn: () => Promise<T>): Promise<T> {
    // Transactions may run side by side (PostgreSQL): another one's appends may move the count too,
    // which only costs a spare kick; this one's are never missed.
    const before = appended;
    const r = await sql.tx(fn, { immediate: true });
    if (appended !== before) deps.events?.emit('outboxWritten', { source: 'links' });
    return r;
  }

  /**
   * Suspensions (a CRL run's chunk at once) or resumptions of MyKey IDs, in order: each active link
   * (suspended link, for a resumption) changes state and gets its entry, the keys removed at the
   * edges (given back). Statements per service, not per MyKey ID: the links of all of them, their
   * certificates, each service's link states, stored keys and seqs.
   */
  async function suspendOrResume(events: readonly MyKeyLifecycleEvent[]): Promise<void> {
    const suspend = events[0].kind === 'suspended';
    const [from, to] = suspend ? (['active', 'suspended'] as const) : (['suspended', 'active'] as const);
    const linksOf = await repo.linksOfMyKeys(events.map((e) => e.mykeyId));
    /** Each link that changes, with its keys (read below, per service). */
    const changed: { e: MyKeyLifecycleEvent; l: LinkRow; keys: string[] }[] = [];
    for (const e of events)
      for (const l of linksOf.get(e.mykeyId) ?? [])
        if (l.state === from) {
          l.state = to; // as a second event of the MyKey ID, one after the other, would find it
          changed.push({ e, l, keys: [] });
        }
    if (changed.length === 0) return;
    // A suspension names the revoked certificate, still the current one; a resumption does not.
    const certs = await mykeys.currentCerts([...new Set(changed.filter(({ e }) => !e.cert).map(({ e }) => e.mykeyId))]);
    const byService = new Map<string, typeof changed>();
    for (const x of changed) {
      const list = byService.get(x.l.service_id);
      if (list) list.push(x);
      else byService.set(x.l.service_id, [x]);
    }
    const services = new Map<string, ServiceRow>();
    for (const [id, list] of byService) {
      const s = (await repo.service(id))!;
      services.set(id, s);
      await repo.setLinkStates(
        id,
        list.map(({ e }) => e.mykeyId),
        to,
      );
      const keysOfList = await keys.keysOfMany(
        s,
        list.map(({ e }) => ({ mykeyId: e.mykeyId, cert: e.cert ?? certs.get(e.mykeyId) })),
      );
      for (let i = 0; i < list.length; i++) list[i].keys = keysOfList[i];
    }
    await appendAll(
      changed.map((x) => ({
        s: services.get(x.l.service_id)!,
        c: {
          kind: suspend ? 'suspend' : 'resume',
          mykeyId: x.e.mykeyId,
          serviceUserId: x.l.service_user_id,
          by: suspend ? 'hub:revocation' : 'hub',
          remove: suspend ? x.keys : [],
          set: suspend ? undefined : { keys: x.keys, serviceUserId: x.l.service_user_id },
          reason: x.e.reason ?? undefined,
          notice: suspend ? 'link.suspended' : 'link.resumed',
        },
      })),
    );
  }

  /**
   * A MyKey ID's own changes, appended for every service it is linked with (inside their
   * transaction): suspensions and resumptions together, any other change one at a time.
   */
  async function onLifecycle(events: readonly MyKeyLifecycleEvent[]): Promise<void> {
    if (events.length === 0) return;
    if (events[0].kind === 'suspended' || events[0].kind === 'resumed') return suspendOrResume(events);
    for (const e of events) await onChange(e);
  }

  /** Any other change of a MyKey ID, appended for each of its links. */
  async function onChange(e: MyKeyLifecycleEvent): Promise<void> {
    // A MyKey ID just created has no links yet: nothing to append (and no query per registration).
    if (e.kind === 'created') return;
    if (e.kind === 'id_changed' && e.from) {
      const links = await repo.linksOfMyKey(e.from);
      await repo.renameMyKey(e.from, e.mykeyId);
      for (const l of links) {
        const s = (await repo.service(l.service_id))!;
        const oldKey = await derived(s, 'mykey', e.from);
        await append(s, {
          kind: 'id_changed',
          mykeyId: e.mykeyId,
          serviceUserId: l.service_user_id,
          by: 'holder',
          remove: l.state === 'active' ? [oldKey, ...(await keysOf(s, e.mykeyId))] : [oldKey],
          set: l.state === 'active' ? { keys: await keysOf(s, e.mykeyId), serviceUserId: l.service_user_id } : undefined,
        });
      }
      return;
    }
    for (const l of await repo.linksOfMyKey(e.mykeyId)) {
      const s = (await repo.service(l.service_id))!;
      switch (e.kind) {
        case 'invalidated':
          await repo.deleteLink(s.id, e.mykeyId);
          await append(s, {
            kind: 'unlink',
            mykeyId: e.mykeyId,
            serviceUserId: l.service_user_id,
            by: 'holder',
            remove: await keysOf(s, e.mykeyId, e.previousCert ?? (await mykeys.currentCert(e.mykeyId))),
            reason: 'invalidated',
            notice: 'link.unlinked',
          });
          break;
        case 'carried_over': {
          const oldKeys = e.previousCert ? await keysOf(s, e.mykeyId, e.previousCert) : [];
          // A linkage record (hub/linkage) carries without the holder: the service is told, and a link
          // suspended with its MyKey ID (superseded) resumes in this same entry; the `resumed` event
          // that follows then finds the link active and adds nothing.
          const linkage = e.via === 'linkage';
          const resumes = linkage && e.resumes === true && l.state === 'suspended';
          if (resumes) await repo.setLinkState(s.id, e.mykeyId, 'active');
          await append(s, {
            kind: 'carry_over',
            mykeyId: e.mykeyId,
            serviceUserId: l.service_user_id,
            by: linkage ? 'hub:linkage' : 'holder',
            remove: oldKeys,
            set: l.state === 'active' || resumes ? { keys: await keysOf(s, e.mykeyId, e.newCert), serviceUserId: l.service_user_id } : undefined,
            ...(linkage ? { reason: 'linkage', notice: resumes ? ('link.resumed' as const) : ('link.carried_over' as const) } : {}),
          });
          break;
        }
        default:
          break;
      }
    }
  }

  return {
    append,
    tx,
    onLifecycle,
    /** Change-log entries (with their outbox rows) appended by this process so far: a counter to compare. */
    appended: () => appended,
  };
}

export type ChangeLog = ReturnType<typeof createChangeLog>;
