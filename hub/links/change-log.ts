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
import type { LinkRepo, ServiceRow } from '../store/link-repo.ts';
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

  /** Appends one change-log entry with its outbox rows. Must run inside a transaction. */
  async function append(s: ServiceRow, c: ChangeInput): Promise<ChangeEntry> {
    const at = now();
    const seq = await repo.nextSeq(s.id);
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
      await repo.insertWebhook(s.id, JSON.stringify(notice), at);
    }
    appended++;
    return entry;
  }

  /** Runs a write transaction and tells the outbox publishers afterwards. */
  async function tx<T>(fn: () => Promise<T>): Promise<T> {
    // Transactions may run side by side (PostgreSQL): another one's appends may move the count too,
    // which only costs a spare kick; this one's are never missed.
    const before = appended;
    const r = await sql.tx(fn, { immediate: true });
    if (appended !== before) deps.events?.emit('outboxWritten', { source: 'links' });
    return r;
  }

  /** A MyKey ID's own changes, appended for every service it is linked with (inside their transaction). */
  async function onLifecycle(e: MyKeyLifecycleEvent): Promise<void> {
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
        case 'suspended':
        case 'resumed': {
          // A revoked certificate suspends an active link (its keys removed at the edges); a resumed one
          // (the revocation lifted) gives a suspended link its keys back.
          const suspend = e.kind === 'suspended';
          if (l.state !== (suspend ? 'active' : 'suspended')) break;
          await repo.setLinkState(s.id, e.mykeyId, suspend ? 'suspended' : 'active');
          const keys = await keysOf(s, e.mykeyId);
          await append(s, {
            kind: suspend ? 'suspend' : 'resume',
            mykeyId: e.mykeyId,
            serviceUserId: l.service_user_id,
            by: suspend ? 'hub:revocation' : 'hub',
            remove: suspend ? keys : [],
            set: suspend ? undefined : { keys, serviceUserId: l.service_user_id },
            reason: e.reason ?? undefined,
            notice: suspend ? 'link.suspended' : 'link.resumed',
          });
          break;
        }
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
