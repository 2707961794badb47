// Services and links: the meeting place of MyKey IDs and service IDs. This file wires the parts and
// holds the service and link operations; the parts are:
//   keyed-identities.ts  the keys edges look a touch up by, derived ahead on the libuv pool and stored
//   change-log.ts        each change as one transaction: the link row, the change-log entry, the MQTT
//                        and webhook outbox rows; a MyKey ID's own lifecycle changes fanned out likewise
//   snapshot.ts          a service's mappings at its head seq, built in slices and kept per head seq
//   snapshot-delta.ts    a later head's snapshot from the kept one and the change log between them
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { MyKeyError } from '../../shared/errors.ts';
import type { CertRef } from '../../shared/cert-identity.ts';
import { isMyKeyId, isServiceId } from '../../shared/ids.ts';
import { CURRENT_KEY_SCHEME, type ChangeEntry, type KeyScheme, type Snapshot } from '../../shared/sync.ts';
import type { Emitter } from '../../shared/typed-events.ts';
import type { FanoutEvents } from '../fanout.ts';
import type { Db } from '../store/db.ts';
import { sqlOf, type Sql } from '../store/sql.ts';
import type { LinkRepo, LinkRow, ServiceRow } from '../store/link-repo.ts';
import type { MyKeyRepo } from '../store/mykey-repo.ts';
import { createSnapshotRepo } from '../store/snapshot-repo.ts';
import { createChangeLog } from './change-log.ts';
import { createKeyedIdentities, nextTurn, type Ident } from './keyed-identities.ts';
import { createSnapshots, type SnapshotBody, type SnapshotOpen } from './snapshot.ts';

export type { ServiceNotice } from './change-log.ts';
export type { SnapshotBody } from './snapshot.ts';

export interface LinksDeps {
  /** The store's executor (or a SQLite connection). */
  sql: Sql | Db;
  repo: LinkRepo;
  mykeys: MyKeyRepo;
  now?: () => number;
  /** Told `outboxWritten` after a transaction that wrote outbox rows has committed (hub/fanout.ts). */
  events?: Emitter<FanoutEvents>;
  /** Bytes of built snapshots kept for edges asking at the same head seq (devices.snapshotCacheMb). */
  snapshotCacheBytes?: number;
}

const SERVICE_USER_ID = /^[\x21-\x7e]{1,64}$/;

function hashSecret(secret: string): string {
  // API secrets are 32 random bytes: a plain hash is enough (no password to stretch).
  return createHash('sha256').update(secret).digest('hex');
}

/** Active links of a service from which the snapshot reader threads are started with the hub. */
const WARM_SNAPSHOT_LINKS = 50_000;

export function createLinks(deps: LinksDeps) {
  const { repo, mykeys } = deps;
  const sql = sqlOf(deps.sql);
  const now = deps.now ?? Date.now;
  const keys = createKeyedIdentities({ repo, mykeys });
  const { schemeOf, identsOf, certValue, deriveAhead, keysOf } = keys;
  const log = createChangeLog({ sql, repo, mykeys, keys, now, events: deps.events });
  const { append, tx } = log;
  const snapshotRepo = createSnapshotRepo(deps.sql);
  const snapshots = createSnapshots({ repo, store: snapshotRepo, keys, now, cacheBytes: deps.snapshotCacheBytes });

  async function requireService(serviceId: string): Promise<ServiceRow> {
    const s = await repo.service(serviceId);
    if (!s) throw new MyKeyError('not_found', `no service ${serviceId}`);
    if (s.status !== 'active') throw new MyKeyError('forbidden', `service ${serviceId} is disabled`);
    return s;
  }

  // A MyKey ID's own changes fan out to every service it is linked with.
  mykeys.onLifecycleBatch(log.onLifecycle);

  return {
    /**
     * Change-log entries appended by this process so far (also those of lifecycle changes made in
     * another module's transaction): compared before and after a commit, it says whether outbox rows
     * were written and the publishers need a kick.
     */
    appendedCount: (): number => log.appended(),

    /**
     * Creates a service with its sync secret (and webhook secret when a webhook is given). Counter
     * links need the holder's proof unless the service is created (or later set) without it.
     */
    async createService(input: {
      id: string;
      name: string;
      webhookUrl?: string;
      requireHolderProof?: boolean;
      touchAssurance?: 'possession' | 'pin';
    }): Promise<{ service: ServiceRow; webhookSecret?: string }> {
      if (!isServiceId(input.id)) throw new MyKeyError('validation_failed', 'a service id is 2-32 lower-case letters, digits and hyphens, starting with a letter');
      if (await repo.service(input.id)) throw new MyKeyError('conflict', `service ${input.id} exists`);
      const webhookSecret = input.webhookUrl ? randomBytes(32) : null;
      await repo.insertService({
        id: input.id,
        name: input.name,
        sync_secret: randomBytes(32),
        webhook_url: input.webhookUrl ?? null,
        webhook_secret: webhookSecret,
        require_holder_proof: input.requireHolderProof === false ? 0 : 1,
        created_at: now(),
      });
      await repo.setKeyScheme(input.id, CURRENT_KEY_SCHEME); // a new service has no edges on the legacy keys
      if (input.touchAssurance === 'pin') await repo.setTouchAssurance(input.id, 'pin');
      return { service: (await repo.service(input.id))!, webhookSecret: webhookSecret?.toString('base64url') };
    },

    /** Sets or clears a service's webhook; returns the new signing secret. */
    async setWebhook(serviceId: string, url: string | null): Promise<{ webhookSecret?: string }> {
      await requireService(serviceId);
      const secret = url ? randomBytes(32) : null;
      await repo.updateWebhook(serviceId, url, secret);
      return { webhookSecret: secret?.toString('base64url') };
    },

    /** Sets whether counter links of the service need the holder's proof (the caller audits it). */
    async setRequireHolderProof(serviceId: string, on: boolean): Promise<void> {
      await requireService(serviceId);
      await repo.setRequireHolderProof(serviceId, on);
    },

    /**
     * Sets what a touch at the service's readers proves (PIN-checked touch, #14); the caller audits it.
     * Edges learn it with their device config (at start, on reconnect and at every catch-up poll).
     */
    async setTouchAssurance(serviceId: string, level: 'possession' | 'pin'): Promise<void> {
      await requireService(serviceId);
      if (level !== 'possession' && level !== 'pin') throw new MyKeyError('validation_failed', "touch assurance is 'possession' or 'pin'");
      await repo.setTouchAssurance(serviceId, level);
    },

    /** Issues an API credential for a service's business system; the token is shown only now. */
    async issueCredential(serviceId: string, label: string): Promise<{ id: string; token: string }> {
      await requireService(serviceId);
      const id = `cred_${randomBytes(6).toString('hex')}`;
      const secret = randomBytes(32).toString('base64url');
      await repo.insertCredential(id, serviceId, label, hashSecret(secret), now());
      return { id, token: `mk_${id}.${secret}` };
    },

    revokeCredential(serviceId: string, credentialId: string): Promise<boolean> {
      return repo.revokeCredential(serviceId, credentialId, now());
    },

    /** The service a bearer token belongs to, or undefined. Constant-time on the secret. */
    async authenticate(token: string): Promise<{ serviceId: string; credentialId: string } | undefined> {
      const m = /^mk_(cred_[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/.exec(token);
      if (!m) return undefined;
      const cred = await repo.credential(m[1]);
      if (!cred || cred.revoked_at !== null) return undefined;
      const a = Buffer.from(cred.secret_hash, 'hex');
      const b = Buffer.from(hashSecret(m[2]), 'hex');
      return a.length === b.length && timingSafeEqual(a, b) ? { serviceId: cred.service_id, credentialId: cred.id } : undefined;
    },

    /**
     * Links a service ID to a MyKey ID for a service. Linking again replaces the previous service ID of
     * that MyKey ID (unlinked everywhere). A service ID linked to another MyKey ID is never moved
     * silently (a counter link with one's own card and someone else's card number would steal it):
     * it is refused with service_user_id_taken, unless the service itself moves it (`move`, only from
     * the authenticated service API, which audits it).
     */
    async link(input: { serviceId: string; mykeyId: string; serviceUserId: string; by: string; move?: boolean }): Promise<{
      entry?: ChangeEntry;
      replaced?: string;
      moved?: true;
      unchanged?: true;
    }> {
      if (!isMyKeyId(input.mykeyId)) throw new MyKeyError('mykey_id_malformed');
      if (!SERVICE_USER_ID.test(input.serviceUserId)) throw new MyKeyError('validation_failed', 'a service ID is 1-64 printable ASCII characters');
      return tx(async () => {
        const s = await requireService(input.serviceId);
        const m = await mykeys.get(input.mykeyId);
        if (!m) throw new MyKeyError('mykey_id_not_found', 'no such MyKey ID');
        if (m.status !== 'active') throw new MyKeyError(m.status === 'invalidated' ? 'mykey_id_invalidated' : 'mykey_id_suspended');
        const current = await repo.link(s.id, input.mykeyId);
        if (current?.service_user_id === input.serviceUserId && current.state === 'active') return { unchanged: true };
        // The service ID is someone else's: only the service's explicit move ends that link.
        const other = await repo.linkByUser(s.id, input.serviceUserId);
        const moved = !!other && other.mykey_id !== input.mykeyId;
        if (other && moved) {
          if (!input.move) throw new MyKeyError('service_user_id_taken', 'this service ID is linked to another MyKey ID; the service can move it through its API (move: true)');
          await repo.deleteLink(s.id, other.mykey_id);
          await append(s, {
            kind: 'unlink',
            mykeyId: other.mykey_id,
            serviceUserId: other.service_user_id,
            by: input.by,
            remove: await keysOf(s, other.mykey_id),
            reason: 'moved_by_service',
            notice: 'link.unlinked',
          });
        }
        if (current) {
          await append(s, {
            kind: 'unlink',
            mykeyId: input.mykeyId,
            serviceUserId: current.service_user_id,
            by: input.by,
            remove: await keysOf(s, input.mykeyId),
            reason: 'replaced',
            notice: 'link.replaced',
          });
        }
        await repo.upsertLink(s.id, input.mykeyId, input.serviceUserId, now(), input.by);
        const keys = await keysOf(s, input.mykeyId);
        const entry = await append(s, {
          kind: 'link',
          mykeyId: input.mykeyId,
          serviceUserId: input.serviceUserId,
          by: input.by,
          remove: keys,
          set: { keys, serviceUserId: input.serviceUserId },
          notice: 'link.created',
        });
        return { entry, replaced: current?.service_user_id, ...(moved ? { moved: true as const } : {}) };
      });
    },

    /** Ends a link, found by MyKey ID or by service ID. */
    unlink(input: { serviceId: string; mykeyId?: string; serviceUserId?: string; by: string; reason: string }): Promise<{ entry: ChangeEntry; link: LinkRow }> {
      return tx(async () => {
        const s = await requireService(input.serviceId);
        const l = input.mykeyId ? await repo.link(s.id, input.mykeyId) : input.serviceUserId ? await repo.linkByUser(s.id, input.serviceUserId) : undefined;
        if (!l) throw new MyKeyError('not_found', 'no such link');
        await repo.deleteLink(s.id, l.mykey_id);
        const entry = await append(s, {
          kind: 'unlink',
          mykeyId: l.mykey_id,
          serviceUserId: l.service_user_id,
          by: input.by,
          remove: await keysOf(s, l.mykey_id),
          reason: input.reason,
          notice: 'link.unlinked',
        });
        return { entry, link: l };
      });
    },

    /** The links of a MyKey ID (for its holder). */
    linksOf: async (mykeyId: string) => {
      const out = [];
      for (const l of await repo.linksOfMyKey(mykeyId))
        out.push({
          serviceId: l.service_id,
          serviceName: (await repo.service(l.service_id))?.name ?? l.service_id,
          serviceUserId: l.service_user_id,
          state: l.state,
          linkedAt: new Date(l.linked_at).toISOString(),
        });
      return out;
    },

    /** The service's current mappings at its head seq, read at once in one transaction (tests, tools; the device route uses snapshotBody). */
    snapshot: (serviceId: string): Promise<Snapshot> => snapshots.snapshot(serviceId),

    /**
     * The service's snapshot at its head seq as JSON bytes (and gzip on demand), for an edge that is
     * new or saw a gap: built in slices off the event loop's critical path, kept per head seq.
     */
    snapshotBody: (serviceId: string): Promise<SnapshotBody> => snapshots.body(serviceId),

    /** The same, for the device route: kept (whole) or being built (its bytes as they are read). */
    snapshotOpen: (serviceId: string): Promise<SnapshotOpen> => snapshots.open(serviceId),

    /** Counts of snapshot builds, cache hits and shared builds since start. */
    snapshotStats: () => snapshots.stats(),

    /** Change-log entries after `seq` (at most `limit`). */
    async changesAfter(serviceId: string, seq: number, limit = 1000): Promise<ChangeEntry[]> {
      await requireService(serviceId);
      return (await repo.changesAfter(serviceId, seq, limit)).map((e) => JSON.parse(e) as ChangeEntry);
    },

    /**
     * Derives and stores, off the event loop, the keys a link of this MyKey ID with this service
     * will need; call before link(). Never fails: link() validates and reports.
     */
    async prepareKeys(serviceId: string, mykeyId: string): Promise<void> {
      const s = await repo.service(serviceId);
      if (!s || !isMyKeyId(mykeyId)) return;
      await deriveAhead(s, schemeOf(s), await identsOf(mykeyId, schemeOf(s))).catch(() => undefined);
    },

    /**
     * Derives and stores, off the event loop, the keys a change of a MyKey ID (a new MyKey ID, a new
     * certificate) will need in every service it is linked with; call before the change. Never fails.
     */
    async prepareLifecycleKeys(mykeyId: string, next: { mykeyId?: string; cert?: CertRef }): Promise<void> {
      const idents = (scheme: KeyScheme): Ident[] => [
        ...(next.mykeyId ? [{ kind: 'mykey' as const, value: next.mykeyId }] : []),
        ...(next.cert ? [{ kind: 'cert' as const, value: certValue(next.cert, scheme) }] : []),
      ];
      for (const l of await repo.linksOfMyKey(mykeyId)) {
        const s = await repo.service(l.service_id);
        if (s) await deriveAhead(s, schemeOf(s), idents(schemeOf(s))).catch(() => undefined);
      }
    },

    /**
     * Moves a service on any older derivation (hmac-sha256, scrypt-v2) to the current one: every linked identity's key is derived on the libuv
     * pool and stored, then, in one transaction, the service switches and a `rekey` entry tells its
     * edges to fetch a snapshot under the new keys. Returns false when it was already there.
     */
    async rekeyService(serviceId: string): Promise<boolean> {
      const first = await repo.service(serviceId);
      if (!first || schemeOf(first) === CURRENT_KEY_SCHEME) return false;
      // Links made meanwhile are derived in the next round; the few left are derived in the switch.
      for (let round = 0; round < 3; round++) {
        const s = (await repo.service(serviceId))!;
        // Read a page at a time: at start-up over a large service, requests are answered meanwhile.
        const idents: Ident[] = [];
        for (let after = ''; ; ) {
          const ids = await snapshotRepo.linkedMyKeysAfter(s.id, after, 1024);
          if (ids.length === 0) break;
          for (const i of await keys.identsOfMany(ids, CURRENT_KEY_SCHEME)) idents.push(i);
          after = ids[ids.length - 1];
          await nextTurn();
        }
        const before = keys.stats.derived;
        // One derivation at a time: a large service takes long to move, but the hub keeps a core for requests.
        await deriveAhead(s, CURRENT_KEY_SCHEME, idents, 1);
        if (keys.stats.derived === before) break;
      }
      return tx(async () => {
        const s = (await repo.service(serviceId))!;
        if (schemeOf(s) === CURRENT_KEY_SCHEME) return false;
        await repo.setKeyScheme(s.id, CURRENT_KEY_SCHEME);
        const moved: ServiceRow = { ...s, key_scheme: CURRENT_KEY_SCHEME };
        if (s.head_seq > 0) await append(moved, { kind: 'rekey', mykeyId: '', serviceUserId: null, by: 'hub', remove: [], reason: CURRENT_KEY_SCHEME });
        return true;
      });
    },

    /** Moves every service still on an older derivation (at start-up); returns the ids moved. */
    async rekeyAll(): Promise<string[]> {
      const moved: string[] = [];
      for (const s of await repo.services()) if (s.status === 'active' && schemeOf(s) !== CURRENT_KEY_SCHEME && (await this.rekeyService(s.id))) moved.push(s.id);
      return moved;
    },

    /** Aggregate counts of key derivations since start. */
    keyStats: () => ({ ...keys.stats }),

    /**
     * Starts the snapshot reader threads (SQLite file) when a service has national size, so its first
     * snapshot does not wait for them; a smaller hub starts them at its first snapshot.
     */
    warmSnapshots: (): Promise<boolean> => snapshotRepo.warm(WARM_SNAPSHOT_LINKS),
    /** Closes what the links hold open (the snapshot reader threads). */
    close: (): void => snapshots.close(),

    headSeq: async (serviceId: string): Promise<number> => (await repo.service(serviceId))?.head_seq ?? 0,
    service: (id: string) => repo.service(id),
    services: () => repo.services(),
  };
}

export type Links = ReturnType<typeof createLinks>;
