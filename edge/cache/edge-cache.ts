// The edge's lookup cache: the KeyIndex of one service, the sequence number it reflects, and the
// service's sync secret to turn what a card says into keyed identities (shared/sync.ts). Applying a
// change-log entry follows shared/sync.ts applyEntry exactly: remove every key, then set every key.
//
// Pure apart from the key derivation: persistence (edge/state) and the hub session (edge/sync) drive it.
import { certIdentity, certIdentityWithKey } from '../../shared/cert-identity.ts';
import { keyedIdentitySync, KEY_SCHEMES, LEGACY_KEY_SCHEME, schemeKeysCertIssuer, type ChangeEntry, type KeyScheme } from '../../shared/sync.ts';
import { KeyIndex, type PackedPairs } from './key-index.ts';

/** Outcome of applying one entry. */
export interface ApplyOutcome {
  result: 'applied' | 'duplicate' | 'gap';
  /** Keys that were mapped before and are not mapped after (a purge). */
  purged: number;
  /** Keys set. */
  set: number;
}

export class EdgeCache {
  #index: KeyIndex;
  #appliedSeq = 0;
  #synced = false;
  #secret: Uint8Array | undefined;
  #scheme: KeyScheme | undefined;

  constructor(opts: { secret?: Uint8Array } = {}) {
    this.#index = new KeyIndex();
    this.#secret = opts.secret;
  }

  /** Sequence number of the last entry reflected (0 before any). */
  get appliedSeq(): number {
    return this.#appliedSeq;
  }

  /** True once the cache holds a service's mappings (a snapshot or a checkpoint); false when new or wiped. */
  get synced(): boolean {
    return this.#synced;
  }

  /**
   * The derivation every key held was made under (shared/sync.ts), as the last snapshot said;
   * undefined when not known (a checkpoint restored, or a `rekey` or an entry of another derivation
   * applied since the snapshot): then a touch is looked up under every derivation.
   */
  get scheme(): KeyScheme | undefined {
    return this.#scheme;
  }

  /** Mappings held. */
  get size(): number {
    return this.#index.size;
  }

  /** The index (read-only use: benchmarks, status). */
  get index(): KeyIndex {
    return this.#index;
  }

  /** True when the service's sync secret is known (lookups by MyKey ID or certificate need it). */
  get hasSecret(): boolean {
    return this.#secret !== undefined;
  }

  /** Sets the service's sync secret (from the hub's device config). */
  setSecret(secret: Uint8Array): void {
    this.#secret = secret;
  }

  /** Raw lookup by keyed identity. */
  get(key: string): string | undefined {
    return this.#index.get(key);
  }

  /**
   * Lookup under the cache's derivation (every one when unknown; shared/sync.ts); blocking, so not
   * the touch path (edge/lookup). `value` gives the identity a derivation uses.
   */
  #lookup(kind: 'mykey' | 'cert', value: (scheme: KeyScheme) => string): string | undefined {
    if (!this.#secret) return undefined;
    for (const scheme of this.#scheme ? [this.#scheme] : KEY_SCHEMES) {
      const hit = this.#index.get(keyedIdentitySync(this.#secret, kind, value(scheme), scheme));
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** Lookup by MyKey ID (read from the card). Undefined when unmapped or when the secret is unknown. */
  lookupMyKey(mykeyId: string): string | undefined {
    return this.#lookup('mykey', () => mykeyId);
  }

  /**
   * Lookup by certificate (certificate mode): issuer key (shared/cert-identity.ts), serial in hex and
   * the certificate's AKI keyIdentifier in hex ('' or absent: none), which scrypt-v3 keys include.
   * The hub writes serials as whole bytes, so an odd-length hex (a bigint's toString(16)) gets its
   * leading zero back first.
   */
  lookupCert(issuerKey: string, serialHex: string, aki = ''): string | undefined {
    const hex = serialHex.length % 2 ? `0${serialHex}` : serialHex;
    return this.#lookup('cert', (scheme) => (schemeKeysCertIssuer(scheme) ? certIdentityWithKey({ issuerKey, serialHex: hex, aki }) : certIdentity(issuerKey, hex)));
  }

  /**
   * Applies one change-log entry (already schema-validated). Entries at or below appliedSeq are
   * duplicates and change nothing; an entry above appliedSeq + 1 is a gap and changes nothing.
   */
  apply(e: ChangeEntry): ApplyOutcome {
    if (e.seq <= this.#appliedSeq) return { result: 'duplicate', purged: 0, set: 0 };
    if (e.seq !== this.#appliedSeq + 1) return { result: 'gap', purged: 0, set: 0 };
    // A rekey, or keys of another derivation, leave keys of two derivations until the next snapshot.
    if (e.kind === 'rekey' || (e.keyScheme ?? LEGACY_KEY_SCHEME) !== this.#scheme) this.#scheme = undefined;
    const index = this.#index;
    let removed = 0;
    for (const k of e.remove) if (index.delete(k)) removed++;
    let reset = 0; // removed keys that the same entry sets again are not purged
    if (e.set) {
      for (const k of e.set.keys) {
        if (removed > 0 && e.remove.includes(k)) reset++;
        index.set(k, e.set.serviceUserId);
      }
    }
    this.#appliedSeq = e.seq;
    return { result: 'applied', purged: removed - reset, set: e.set ? e.set.keys.length : 0 };
  }

  /**
   * Replaces every mapping at once (a snapshot or a checkpoint) at `seq`, all keyed under `scheme`
   * (undefined: not known). Lookups never see a half state.
   */
  replace(index: KeyIndex, seq: number, scheme?: KeyScheme): void {
    this.#index = index;
    this.#appliedSeq = seq;
    this.#scheme = scheme;
    this.#synced = true;
  }

  /** Forgets every mapping (decommission, or state that cannot be trusted). */
  clear(): void {
    this.#index = new KeyIndex();
    this.#appliedSeq = 0;
    this.#scheme = undefined;
    this.#synced = false;
  }

  /** Mappings in compact form (for a checkpoint). */
  pack(): PackedPairs {
    return this.#index.pack();
  }
}
