// The edge's index: keyed identity (16 bytes) -> service user id. An open-addressing hash table in
// typed arrays (linear probing, backward-shift deletion, so removal leaves no tombstones and probe
// chains never silt up), with the ids interned in a UserIdArena. About 40 bytes of table per mapping
// at a million mappings, where a Map<string, string> costs several times that.
//
// Pure: no I/O. Keys are validated (canonical base64url, 22 characters) and ids must be printable
// ASCII of 1 to 64 characters; anything else is refused with a TypeError by `set` and misses in `get`.
import { decodeKey, encodeKey, KEY_BYTES } from './key-codec.ts';
import { isStorableUserId, UserIdArena } from './user-id-arena.ts';

const EMPTY = 0; // #vals: arena slot + 1, 0 = empty
const MAX_LOAD_NUM = 3; // grow above 3/4 full
const MAX_LOAD_DEN = 4;

// Per-process seed: keys are HMAC outputs and already uniform, but mixing in a secret seed keeps a
// crafted key list (a hostile or buggy hub) from forming one long probe chain.
const SEED = (Math.random() * 0x100000000) | 0;

function mix(a: number, b: number, c: number, d: number): number {
  let h = Math.imul(a ^ SEED, 0x9e3779b1);
  h = Math.imul(h ^ b ^ (h >>> 15), 0x85ebca77);
  h = Math.imul(h ^ c ^ (h >>> 13), 0xc2b2ae3d);
  h ^= d;
  h = Math.imul(h ^ (h >>> 16), 0x27d4eb2f);
  return (h ^ (h >>> 15)) | 0;
}

/** A pair list in compact form: the keys' bytes back to back, distinct ids, and an id index per key. */
export interface PackedPairs {
  /** n * 16 bytes. */
  keys: Uint8Array;
  /** Distinct service user ids. */
  userIds: string[];
  /** For key i, the index of its id in `userIds`. */
  refs: Uint32Array;
}

export class KeyIndex {
  #keys: Int32Array; // 4 words per slot
  #vals: Uint32Array;
  #mask: number;
  #size = 0;
  readonly #ids: UserIdArena;
  readonly #scratch = new Int32Array(4);

  /** `expected`: mappings to size the table for up front (avoids rehashing while loading). */
  constructor(expected = 0) {
    let cap = 16;
    while (cap * MAX_LOAD_NUM < expected * MAX_LOAD_DEN) cap *= 2;
    this.#keys = new Int32Array(cap * 4);
    this.#vals = new Uint32Array(cap);
    this.#mask = cap - 1;
    this.#ids = new UserIdArena(Math.max(1024, expected >>> 1));
  }

  /** Mappings held. */
  get size(): number {
    return this.#size;
  }

  /** Distinct service user ids held. */
  get distinctUserIds(): number {
    return this.#ids.size;
  }

  /** Bytes held in this index's typed arrays. */
  get byteLength(): number {
    return this.#keys.byteLength + this.#vals.byteLength + this.#ids.byteLength;
  }

  /** The service user id of a key, or undefined (also for a malformed key). */
  get(key: string): string | undefined {
    const w = this.#scratch;
    if (!decodeKey(key, w)) return undefined;
    const i = this.#find(w[0], w[1], w[2], w[3]);
    return i < 0 ? undefined : this.#ids.get(this.#vals[i] - 1);
  }

  /** True when the key is mapped. */
  has(key: string): boolean {
    const w = this.#scratch;
    return decodeKey(key, w) && this.#find(w[0], w[1], w[2], w[3]) >= 0;
  }

  /** Maps a key to a service user id (replacing any previous one). */
  set(key: string, userId: string): void {
    const w = this.#scratch;
    if (!decodeKey(key, w)) throw new TypeError('not a keyed identity');
    if (!isStorableUserId(userId)) throw new TypeError('not a storable service user id');
    this.#set(w[0], w[1], w[2], w[3], this.#ids.acquire(userId));
  }

  /** Removes a key; true when it was there. */
  delete(key: string): boolean {
    const w = this.#scratch;
    if (!decodeKey(key, w)) return false;
    const i = this.#find(w[0], w[1], w[2], w[3]);
    if (i < 0) return false;
    this.#ids.release(this.#vals[i] - 1);
    this.#removeAt(i);
    return true;
  }

  /** Every mapping, in table order (tests, small exports). */
  *entries(): IterableIterator<[string, string]> {
    for (let i = 0; i < this.#vals.length; i++) {
      if (this.#vals[i] === EMPTY) continue;
      yield [encodeKey(this.#keys, i * 4), this.#ids.get(this.#vals[i] - 1)];
    }
  }

  /** The mappings in compact form, for a checkpoint. */
  pack(): PackedPairs {
    const keys = new Uint8Array(this.#size * KEY_BYTES);
    const view = new DataView(keys.buffer);
    const refs = new Uint32Array(this.#size);
    const userIds: string[] = [];
    const idIndex = new Map<number, number>(); // arena slot -> index in userIds
    let n = 0;
    for (let i = 0; i < this.#vals.length; i++) {
      const v = this.#vals[i];
      if (v === EMPTY) continue;
      for (let k = 0; k < 4; k++) view.setInt32(n * KEY_BYTES + k * 4, this.#keys[i * 4 + k]);
      let u = idIndex.get(v);
      if (u === undefined) {
        u = userIds.length;
        userIds.push(this.#ids.get(v - 1));
        idIndex.set(v, u);
      }
      refs[n++] = u;
    }
    return { keys, userIds, refs };
  }

  /** Builds an index from packed pairs (a checkpoint or a decoded snapshot). Throws TypeError on bad input. */
  static unpack(p: PackedPairs): KeyIndex {
    const n = p.refs.length;
    if (p.keys.byteLength !== n * KEY_BYTES) throw new TypeError('packed keys and refs differ in length');
    const index = new KeyIndex(n);
    const slots = new Int32Array(p.userIds.length).fill(-1);
    const view = new DataView(p.keys.buffer, p.keys.byteOffset, p.keys.byteLength);
    for (let i = 0; i < n; i++) {
      const r = p.refs[i];
      if (r >= p.userIds.length) throw new TypeError('packed ref out of range');
      let slot = slots[r];
      if (slot < 0) {
        const id = p.userIds[r];
        if (!isStorableUserId(id)) throw new TypeError('not a storable service user id');
        slot = slots[r] = index.#ids.acquire(id);
      } else index.#ids.retain(slot);
      const o = i * KEY_BYTES;
      index.#set(view.getInt32(o), view.getInt32(o + 4), view.getInt32(o + 8), view.getInt32(o + 12), slot);
    }
    return index;
  }

  #find(a: number, b: number, c: number, d: number): number {
    const keys = this.#keys,
      vals = this.#vals,
      mask = this.#mask;
    let i = mix(a, b, c, d) & mask;
    for (;;) {
      if (vals[i] === EMPTY) return -1;
      const o = i * 4;
      if (keys[o] === a && keys[o + 1] === b && keys[o + 2] === c && keys[o + 3] === d) return i;
      i = (i + 1) & mask;
    }
  }

  // Takes ownership of one reference to `slot`.
  #set(a: number, b: number, c: number, d: number, slot: number): void {
    const keys = this.#keys,
      vals = this.#vals,
      mask = this.#mask;
    let i = mix(a, b, c, d) & mask;
    for (;;) {
      if (vals[i] === EMPTY) break;
      const o = i * 4;
      if (keys[o] === a && keys[o + 1] === b && keys[o + 2] === c && keys[o + 3] === d) {
        this.#ids.release(vals[i] - 1);
        vals[i] = slot + 1;
        return;
      }
      i = (i + 1) & mask;
    }
    if ((this.#size + 1) * MAX_LOAD_DEN > vals.length * MAX_LOAD_NUM) {
      this.#grow();
      this.#set(a, b, c, d, slot);
      return;
    }
    const o = i * 4;
    keys[o] = a;
    keys[o + 1] = b;
    keys[o + 2] = c;
    keys[o + 3] = d;
    vals[i] = slot + 1;
    this.#size++;
  }

  #removeAt(i: number): void {
    const keys = this.#keys,
      vals = this.#vals,
      mask = this.#mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (vals[j] === EMPTY) break;
      const o = j * 4;
      const home = mix(keys[o], keys[o + 1], keys[o + 2], keys[o + 3]) & mask;
      // Shift j back into the hole at i unless j's home lies cyclically in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        keys.copyWithin(i * 4, o, o + 4);
        vals[i] = vals[j];
        i = j;
      }
    }
    vals[i] = EMPTY;
    this.#size--;
  }

  #grow(): void {
    const oldKeys = this.#keys,
      oldVals = this.#vals;
    const cap = oldVals.length * 2;
    this.#keys = new Int32Array(cap * 4);
    this.#vals = new Uint32Array(cap);
    this.#mask = cap - 1;
    const keys = this.#keys,
      vals = this.#vals,
      mask = this.#mask;
    for (let s = 0; s < oldVals.length; s++) {
      if (oldVals[s] === EMPTY) continue;
      const o = s * 4;
      let i = mix(oldKeys[o], oldKeys[o + 1], oldKeys[o + 2], oldKeys[o + 3]) & mask;
      while (vals[i] !== EMPTY) i = (i + 1) & mask;
      keys.set(oldKeys.subarray(o, o + 4), i * 4);
      vals[i] = oldVals[s];
    }
  }
}
