// Services and links: the meeting place of MyKey IDs and service IDs.
//
// Every change of a link is, in one transaction: the link row, the service's change-log entry (next
// seq), the MQTT outbox row that carries it to the service's edges, and, where the service has a
// webhook, the signed notice (失効連絡) in the webhook outbox. Changes of a MyKey ID itself (suspension
// by a CRL, resumption, invalidation, carry-over, change of id) reach here through the MyKey
// repository's lifecycle listener, inside the transaction that makes them.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { MyKeyError } from '../../shared/errors.ts';
import { certIdentity, certIdentityWithKey, type CertRef } from '../../shared/cert-identity.ts';
import { isMyKeyId, isServiceId } from '../../shared/ids.ts';
import { CURRENT_KEY_SCHEME, keyedIdentity, keyedIdentitySync, LEGACY_KEY_SCHEME, schemeKeysCertIssuer, type ChangeEntry, type ChangeKind, type KeyScheme, type Snapshot } from '../../shared/sync.ts';
import { serviceLogTopic } from '../../shared/topics.ts';
import type { Db } from '../store/db.ts';
import { sqlOf, type Sql } from '../store/sql.ts';
import type { LinkRepo, LinkRow, ServiceRow } from '../store/link-repo.ts';
import type { MyKeyLifecycleEvent, MyKeyRepo } from '../store/mykey-repo.ts';

/** What a service's business system is told (webhook body). Never the MyKey ID: the service ID is its key. */
export interface ServiceNotice {
  id: string;
  type: 'link.created' | 'link.replaced' | 'link.unlinked' | 'link.suspended' | 'link.resumed';
  serviceId: string;
  serviceUserId: string;
  reason?: string;
  seq: number;
  at: string;
}

export interface LinksDeps {
  /** The store's executor (or a SQLite connection). */
  sql: Sql | Db;
  repo: LinkRepo;
  mykeys: MyKeyRepo;
  now?: () => number;
  /** Called after a transaction that wrote outbox rows has committed. */
  onOutbox?: () => void;
}

const SERVICE_USER_ID = /^[\x21-\x7e]{1,64}$/;

function hashSecret(secret: string): string {
  // API secrets are 32 random bytes: a plain hash is enough (no password to stretch).
  return createHash('sha256').update(secret).digest('hex');
}

export function createLinks(deps: LinksDeps) {
  const { repo, mykeys } = deps;
  const sql = sqlOf(deps.sql);
  const now = deps.now ?? Date.now;
  /** Outbox rows appended so far: a transaction that moved it tells the publishers after its commit. */
  let appended = 0;

  async function requireService(serviceId: string): Promise<ServiceRow> {
    const s = await repo.service(serviceId);
    if (!s) throw new MyKeyError('not_found', `no service ${serviceId}`);
    if (s.status !== 'active') throw new MyKeyError('forbidden', `service ${serviceId} is disabled`);
    return s;
  }

  // ---- keyed identities (shared/sync.ts) ----------------------------------------------------------
  // A memory-hard key is derived once per (service, identity), on the libuv pool (prepareKeys before a
  // link, rekeyService for a whole service), and stored; keysOf only reads it. A key not derived ahead
  // (a carry-over or a change of MyKey ID, inside the MyKey repository's transaction) is derived there,
  // blocking, once, and stored too.
  const keyStats = { derived: 0, derivedBlocking: 0 };
  const schemeOf = (s: ServiceRow): KeyScheme => s.key_scheme ?? LEGACY_KEY_SCHEME;
  type Ident = { kind: 'mykey' | 'cert'; value: string };
  // From scrypt-v3 on, a certificate is identified with its issuing key (its AKI), so a serial reused
  // under a CA key rolled over under the same name is another identity (shared/cert-identity.ts). A
  // service still on an older scheme keeps the old form its edges compute, until it is re-keyed.
  const certValue = (c: CertRef, scheme: KeyScheme): string => (schemeKeysCertIssuer(scheme) ? certIdentityWithKey(c) : certIdentity(c.issuerKey, c.serialHex));
  // Without a certificate given, the MyKey ID's current one.
  const identsOf = async (mykeyId: string, scheme: KeyScheme, certGiven?: CertRef): Promise<Ident[]> => {
    const cert = certGiven === undefined ? await mykeys.currentCert(mykeyId) : certGiven;
    return [{ kind: 'mykey', value: mykeyId }, ...(cert ? [{ kind: 'cert' as const, value: certValue(cert, scheme) }] : [])];
  };

  async function derived(s: ServiceRow, kind: 'mykey' | 'cert', value: string): Promise<string> {
    const scheme = schemeOf(s);
    if (scheme === 'hmac-sha256') return keyedIdentitySync(s.sync_secret, kind, value, scheme);
    const identity = `${kind}:${value}`;
    const stored = await repo.storedKey(s.id, scheme, identity);
    if (stored !== undefined) return stored;
    keyStats.derivedBlocking++;
    const key = keyedIdentitySync(s.sync_secret, kind, value, scheme);
    await repo.insertKey(s.id, scheme, identity, key);
    return key;
  }

  /** Derives on the libuv pool and stores every key of `idents` not stored yet, `parallel` at a time. */
  async function deriveAhead(s: ServiceRow, scheme: KeyScheme, idents: Ident[], parallel = 2): Promise<void> {
    if (scheme === 'hmac-sha256') return;
    const todo: Ident[] = [];
    for (const i of idents) if ((await repo.storedKey(s.id, scheme, `${i.kind}:${i.value}`)) === undefined) todo.push(i);
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const i = todo[next++];
        const key = await keyedIdentity(s.sync_secret, i.kind, i.value, scheme);
        await repo.insertKey(s.id, scheme, `${i.kind}:${i.value}`, key);
        keyStats.derived++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, todo.length) }, worker));
  }

  /** The keyed identities of a MyKey ID for one service: by MyKey ID and by its current certificate. */
  async function keysOf(s: ServiceRow, mykeyId: string, cert?: CertRef): Promise<string[]> {
    const out: string[] = [];
    for (const i of await identsOf(mykeyId, schemeOf(s), cert)) out.push(await derived(s, i.kind, i.value));
    return out;
  }

  /** What entries and snapshots of a service say about their keys (nothing: the legacy derivation). */
  const schemeField = (s: ServiceRow): { keyScheme?: KeyScheme } => (schemeOf(s) === LEGACY_KEY_SCHEME ? {} : { keyScheme: schemeOf(s) });

  /** Appends one change-log entry with its outbox rows. Must run inside a transaction. */
  async function append(
    s: ServiceRow,
    c: { kind: ChangeKind; mykeyId: string; serviceUserId: string | null; by: string; remove: string[]; set?: ChangeEntry['set']; reason?: string; notice?: ServiceNotice['type'] },
  ): Promise<ChangeEntry> {
    const at = now();
    const seq = await repo.nextSeq(s.id);
    const entry: ChangeEntry = {
      seq,
      kind: c.kind,
      at: new Date(at).toISOString(),
      remove: [...new Set(c.remove)],
      ...(c.set ? { set: c.set } : {}),
      ...(c.reason ? { reason: c.reason } : {}),
      ...schemeField(s),
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
    if (appended !== before) deps.onOutbox?.();
    return r;
  }


  // A MyKey ID's own changes fan out to every service it is linked with.
  mykeys.onLifecycle(async (e: MyKeyLifecycleEvent) => {
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
          if (l.state !== 'active') break;
          await repo.setLinkState(s.id, e.mykeyId, 'suspended');
          await append(s, { kind: 'suspend', mykeyId: e.mykeyId, serviceUserId: l.service_user_id, by: 'hub:revocation', remove: await keysOf(s, e.mykeyId), reason: e.reason ?? undefined, notice: 'link.suspended' });
          break;
        case 'resumed':
          if (l.state !== 'suspended') break;
          await repo.setLinkState(s.id, e.mykeyId, 'active');
          await append(s, {
            kind: 'resume',
            mykeyId: e.mykeyId,
            serviceUserId: l.service_user_id,
            by: 'hub',
            remove: [],
            set: { keys: await keysOf(s, e.mykeyId), serviceUserId: l.service_user_id },
            reason: e.reason ?? undefined,
            notice: 'link.resumed',
          });
          break;
        case 'invalidated':
          await repo.deleteLink(s.id, e.mykeyId);
          await append(s, { kind: 'unlink', mykeyId: e.mykeyId, serviceUserId: l.service_user_id, by: 'holder', remove: await keysOf(s, e.mykeyId, e.previousCert), reason: 'invalidated', notice: 'link.unlinked' });
          break;
        case 'carried_over': {
          const oldKeys = e.previousCert ? await keysOf(s, e.mykeyId, e.previousCert) : [];
          await append(s, {
            kind: 'carry_over',
            mykeyId: e.mykeyId,
            serviceUserId: l.service_user_id,
            by: 'holder',
            remove: oldKeys,
            set: l.state === 'active' ? { keys: await keysOf(s, e.mykeyId, e.newCert), serviceUserId: l.service_user_id } : undefined,
          });
          break;
        }
        default:
          break;
      }
    }
  });

  return {
    /**
     * Creates a service with its sync secret (and webhook secret when a webhook is given). Counter
     * links need the holder's proof unless the service is created (or later set) without it.
     */
    async createService(input: { id: string; name: string; webhookUrl?: string; requireHolderProof?: boolean }): Promise<{ service: ServiceRow; webhookSecret?: string }> {
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
          await append(s, { kind: 'unlink', mykeyId: other.mykey_id, serviceUserId: other.service_user_id, by: input.by, remove: await keysOf(s, other.mykey_id), reason: 'moved_by_service', notice: 'link.unlinked' });
        }
        if (current) {
          await append(s, { kind: 'unlink', mykeyId: input.mykeyId, serviceUserId: current.service_user_id, by: input.by, remove: await keysOf(s, input.mykeyId), reason: 'replaced', notice: 'link.replaced' });
        }
        await repo.upsertLink(s.id, input.mykeyId, input.serviceUserId, now(), input.by);
        const keys = await keysOf(s, input.mykeyId);
        const entry = await append(s, { kind: 'link', mykeyId: input.mykeyId, serviceUserId: input.serviceUserId, by: input.by, remove: keys, set: { keys, serviceUserId: input.serviceUserId }, notice: 'link.created' });
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
        const entry = await append(s, { kind: 'unlink', mykeyId: l.mykey_id, serviceUserId: l.service_user_id, by: input.by, remove: await keysOf(s, l.mykey_id), reason: input.reason, notice: 'link.unlinked' });
        return { entry, link: l };
      });
    },

    /** The links of a MyKey ID (for its holder). */
    linksOf: async (mykeyId: string) => {
      const out = [];
      for (const l of await repo.linksOfMyKey(mykeyId)) out.push({ serviceId: l.service_id, serviceName: (await repo.service(l.service_id))?.name ?? l.service_id, serviceUserId: l.service_user_id, state: l.state, linkedAt: new Date(l.linked_at).toISOString() });
      return out;
    },

    /** The service's current mappings at its head seq, for an edge that is new or saw a gap. */
    snapshot(serviceId: string): Promise<Snapshot> {
      return sql.tx(async () => {
        const s = await requireService(serviceId);
        const entries: [string, string][] = [];
        for (const l of await repo.activeLinksOfService(s.id)) for (const k of await keysOf(s, l.mykey_id)) entries.push([k, l.service_user_id]);
        return { serviceId: s.id, seq: s.head_seq, generatedAt: new Date(now()).toISOString(), entries, ...schemeField(s) };
      }, { snapshot: true });
    },

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
        const idents: Ident[] = [];
        for (const m of await repo.linkedMyKeys(s.id)) idents.push(...(await identsOf(m, CURRENT_KEY_SCHEME)));
        const before = keyStats.derived;
        // One derivation at a time: a large service takes long to move, but the hub keeps a core for requests.
        await deriveAhead(s, CURRENT_KEY_SCHEME, idents, 1);
        if (keyStats.derived === before) break;
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
    keyStats: () => ({ ...keyStats }),

    headSeq: async (serviceId: string): Promise<number> => (await repo.service(serviceId))?.head_seq ?? 0,
    service: (id: string) => repo.service(id),
    services: () => repo.services(),
  };
}

export type Links = ReturnType<typeof createLinks>;
