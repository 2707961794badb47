// Keyed identities of linked MyKey IDs (shared/sync.ts): what a service's edges look a touch up by.
// A memory-hard key is derived once per (service, identity), on the libuv pool (deriveAhead: before a
// link, or for a whole service when it is re-keyed), and stored; keysOf only reads it. A key not
// derived ahead (a carry-over or a change of MyKey ID, inside the MyKey repository's transaction) is
// derived there, blocking, once, and stored too.
import { certIdentity, certIdentityWithKey, type CertRef } from '../../shared/cert-identity.ts';
import { keyedIdentity, keyedIdentitySync, LEGACY_KEY_SCHEME, schemeKeysCertIssuer, type KeyScheme } from '../../shared/sync.ts';
import type { LinkRepo, ServiceRow } from '../store/link-repo.ts';
import type { MyKeyRepo } from '../store/mykey-repo.ts';

/** One identity of a MyKey ID that a key is derived from: the MyKey ID itself, or its certificate. */
export type Ident = { kind: 'mykey' | 'cert'; value: string };

/** Rows checked between two turns of the event loop when a whole service's identities are looked at. */
const ROWS_PER_TURN = 1024;

/** One turn of the event loop: requests are answered between two slices of a long job. */
export const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

export function createKeyedIdentities(deps: { repo: LinkRepo; mykeys: MyKeyRepo }) {
  const { repo, mykeys } = deps;
  const stats = { derived: 0, derivedBlocking: 0 };
  const schemeOf = (s: ServiceRow): KeyScheme => s.key_scheme ?? LEGACY_KEY_SCHEME;
  // From scrypt-v3 on, a certificate is identified with its issuing key (its AKI), so a serial reused
  // under a CA key rolled over under the same name is another identity (shared/cert-identity.ts). A
  // service still on an older scheme keeps the old form its edges compute, until it is re-keyed.
  const certValue = (c: CertRef, scheme: KeyScheme): string => (schemeKeysCertIssuer(scheme) ? certIdentityWithKey(c) : certIdentity(c.issuerKey, c.serialHex));
  /** The identities of a MyKey ID with this certificate (none: by MyKey ID alone). */
  const identsWith = (mykeyId: string, scheme: KeyScheme, cert: CertRef | undefined): Ident[] => [
    { kind: 'mykey', value: mykeyId },
    ...(cert ? [{ kind: 'cert' as const, value: certValue(cert, scheme) }] : []),
  ];
  // Without a certificate given, the MyKey ID's current one.
  const identsOf = async (mykeyId: string, scheme: KeyScheme, certGiven?: CertRef): Promise<Ident[]> =>
    identsWith(mykeyId, scheme, certGiven === undefined ? await mykeys.currentCert(mykeyId) : certGiven);

  /**
   * The keys of identities for a service, in order: computed (legacy HMAC), stored (read at once), or
   * derived here and stored.
   */
  async function derivedAll(s: ServiceRow, idents: readonly Ident[]): Promise<string[]> {
    const scheme = schemeOf(s);
    if (scheme === 'hmac-sha256') return idents.map((i) => keyedIdentitySync(s.sync_secret, i.kind, i.value, scheme));
    const names = idents.map((i) => `${i.kind}:${i.value}`);
    const stored = await repo.storedKeys(s.id, scheme, names);
    const out: string[] = [];
    for (let j = 0; j < idents.length; j++) {
      let key = stored.get(names[j]);
      if (key === undefined) {
        stats.derivedBlocking++;
        key = keyedIdentitySync(s.sync_secret, idents[j].kind, idents[j].value, scheme);
        await repo.insertKey(s.id, scheme, names[j], key);
        stored.set(names[j], key);
      }
      out.push(key);
    }
    return out;
  }

  /** The key of one identity for a service (derivedAll of one). */
  const derived = async (s: ServiceRow, kind: 'mykey' | 'cert', value: string): Promise<string> => (await derivedAll(s, [{ kind, value }]))[0];

  /**
   * Derives on the libuv pool and stores every key of `idents` not stored yet, `parallel` at a time.
   * Which are stored is checked a slice at a time: a whole service's identities (a re-key at
   * start-up) never hold the event loop.
   */
  async function deriveAhead(s: ServiceRow, scheme: KeyScheme, idents: Ident[], parallel = 2): Promise<void> {
    if (scheme === 'hmac-sha256') return;
    const todo: Ident[] = [];
    for (let i = 0; i < idents.length; i++) {
      if ((await repo.storedKey(s.id, scheme, `${idents[i].kind}:${idents[i].value}`)) === undefined) todo.push(idents[i]);
      if (i % ROWS_PER_TURN === ROWS_PER_TURN - 1) await nextTurn();
    }
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const i = todo[next++];
        const key = await keyedIdentity(s.sync_secret, i.kind, i.value, scheme);
        await repo.insertKey(s.id, scheme, `${i.kind}:${i.value}`, key);
        stats.derived++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, todo.length) }, worker));
  }

  /** The identities of many MyKey IDs under a scheme, read a slice at a time (their certificates are looked up). */
  async function identsOfMany(mykeyIds: readonly string[], scheme: KeyScheme): Promise<Ident[]> {
    const out: Ident[] = [];
    for (let i = 0; i < mykeyIds.length; i++) {
      out.push(...(await identsOf(mykeyIds[i], scheme)));
      if (i % ROWS_PER_TURN === ROWS_PER_TURN - 1) await nextTurn();
    }
    return out;
  }

  return {
    /** Aggregate counts of key derivations since start (ahead, and blocking inside a transaction). */
    stats,
    schemeOf,
    certValue,
    identsOf,
    identsOfMany,
    derived,
    deriveAhead,
    /** The keyed identities of a MyKey ID for one service: by MyKey ID and by its current certificate. */
    keysOf: async (s: ServiceRow, mykeyId: string, cert?: CertRef): Promise<string[]> => derivedAll(s, await identsOf(mykeyId, schemeOf(s), cert)),
    /**
     * keysOf for many MyKey IDs of one service, each with its certificate given (undefined: none, the
     * MyKey ID alone), in order: the stored keys read at once.
     */
    async keysOfMany(s: ServiceRow, items: readonly { mykeyId: string; cert: CertRef | undefined }[]): Promise<string[][]> {
      const scheme = schemeOf(s);
      const idents = items.map((i) => identsWith(i.mykeyId, scheme, i.cert));
      const keys = await derivedAll(s, idents.flat());
      const out: string[][] = [];
      for (let i = 0, at = 0; i < idents.length; at += idents[i++].length) out.push(keys.slice(at, at + idents[i].length));
      return out;
    },
    /** What entries and snapshots of a service say about their keys (nothing: the legacy derivation). */
    schemeField: (s: ServiceRow): { keyScheme?: KeyScheme } => (schemeOf(s) === LEGACY_KEY_SCHEME ? {} : { keyScheme: schemeOf(s) }),
  };
}

export type KeyedIdentities = ReturnType<typeof createKeyedIdentities>;
