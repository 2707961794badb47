// Service user ids, interned: each distinct id is stored once, as bytes in one arena, with a
// reference count. Several keys usually map to one id (a MyKey ID and its certificate), and a JS
// string per mapping would cost far more heap than the bytes themselves. Everything lives in typed
// arrays, so a million ids are a handful of objects for the garbage collector.
//
// Ids are 1 to 64 printable ASCII characters (shared/ids.ts SERVICE_USER_ID_PATTERN), so a byte
// per character and a one-byte length suffice. Freed ids leave garbage in the arena; it is compacted
// once garbage outweighs live bytes.

const MAX_LEN = 64;
const EMPTY = 0; // in the dedup table: slot + 1, 0 = empty

/** True when `s` is a storable service user id (printable ASCII, 1..64 characters). */
export function isStorableUserId(s: string): boolean {
  if (s.length < 1 || s.length > MAX_LEN) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

export class UserIdArena {
  // Per id slot: where its bytes are, how many, how many keys refer to it.
  #off: Uint32Array;
  #len: Uint8Array;
  #refs: Uint32Array;
  #hash: Int32Array;
  #free: Uint32Array; // stack of freed slots
  #freeTop = 0;
  #slots = 0; // slots ever handed out (high-water mark)
  #live = 0;

  #bytes: Buffer;
  #used = 0;
  #garbage = 0;

  // Open-addressing table from the id's bytes to its slot (linear probing, backward-shift delete).
  #table: Uint32Array;
  #mask: number;

  constructor(initialSlots = 1024) {
    const n = Math.max(16, initialSlots);
    this.#off = new Uint32Array(n);
    this.#len = new Uint8Array(n);
    this.#refs = new Uint32Array(n);
    this.#hash = new Int32Array(n);
    this.#free = new Uint32Array(n);
    this.#bytes = Buffer.alloc(n * 12);
    const cap = tableSize(n);
    this.#table = new Uint32Array(cap);
    this.#mask = cap - 1;
  }

  /** Distinct ids held. */
  get size(): number {
    return this.#live;
  }

  /** Bytes held by this arena's arrays (for memory accounting in benchmarks and status). */
  get byteLength(): number {
    return this.#off.byteLength + this.#len.byteLength + this.#refs.byteLength + this.#hash.byteLength + this.#free.byteLength + this.#bytes.byteLength + this.#table.byteLength;
  }

  /** Takes one reference to `s` (which must satisfy isStorableUserId) and returns its slot. */
  acquire(s: string): number {
    const h = hashString(s);
    let i = h & this.#mask;
    for (;;) {
      const t = this.#table[i];
      if (t === EMPTY) break;
      const slot = t - 1;
      if (this.#hash[slot] === h && this.#equals(slot, s)) {
        this.#refs[slot]++;
        return slot;
      }
      i = (i + 1) & this.#mask;
    }
    const slot = this.#newSlot();
    if (this.#used + s.length > this.#bytes.length) this.#growBytes(s.length);
    const off = this.#used;
    for (let k = 0; k < s.length; k++) this.#bytes[off + k] = s.charCodeAt(k);
    this.#used += s.length;
    this.#off[slot] = off;
    this.#len[slot] = s.length;
    this.#refs[slot] = 1;
    this.#hash[slot] = h;
    this.#live++;
    if (this.#live * 4 > this.#table.length * 3) this.#rehash(this.#table.length * 2);
    else this.#table[i] = slot + 1;
    return slot;
  }

  /** Takes one more reference to a slot already held. */
  retain(slot: number): void {
    this.#refs[slot]++;
  }

  /** Drops one reference; the id goes when none are left. */
  release(slot: number): void {
    if (--this.#refs[slot] !== 0) return;
    this.#unlink(slot);
    this.#garbage += this.#len[slot];
    this.#len[slot] = 0;
    this.#free[this.#freeTop++] = slot;
    this.#live--;
    if (this.#garbage > 64 * 1024 && this.#garbage > this.#used - this.#garbage) this.#compact();
  }

  /** The id in a slot. */
  get(slot: number): string {
    const off = this.#off[slot];
    return this.#bytes.toString('latin1', off, off + this.#len[slot]);
  }

  /** Reference count of a slot (tests). */
  refs(slot: number): number {
    return this.#refs[slot];
  }

  #equals(slot: number, s: string): boolean {
    const len = this.#len[slot];
    if (len !== s.length) return false;
    const off = this.#off[slot];
    const b = this.#bytes;
    for (let k = 0; k < len; k++) if (b[off + k] !== s.charCodeAt(k)) return false;
    return true;
  }

  #newSlot(): number {
    if (this.#freeTop > 0) return this.#free[--this.#freeTop];
    if (this.#slots === this.#off.length) {
      const n = this.#off.length * 2;
      this.#off = grow(this.#off, n);
      this.#len = grow(this.#len, n);
      this.#refs = grow(this.#refs, n);
      this.#hash = grow(this.#hash, n);
      this.#free = grow(this.#free, n);
    }
    return this.#slots++;
  }

  #growBytes(need: number): void {
    let n = this.#bytes.length * 2;
    while (n < this.#used + need) n *= 2;
    const b = Buffer.alloc(n);
    this.#bytes.copy(b, 0, 0, this.#used);
    this.#bytes = b;
  }

  // Backward-shift deletion keeps every probe chain unbroken without tombstones.
  #unlink(slot: number): void {
    const mask = this.#mask;
    const t = this.#table;
    let i = this.#hash[slot] & mask;
    while (t[i] !== slot + 1) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (t[j] === EMPTY) break;
      const home = this.#hash[t[j] - 1] & mask;
      // Move j back to i unless its home lies cyclically in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        t[i] = t[j];
        i = j;
      }
    }
    t[i] = EMPTY;
  }

  #rehash(cap: number): void {
    const t = new Uint32Array(cap);
    const mask = cap - 1;
    for (let slot = 0; slot < this.#slots; slot++) {
      if (this.#refs[slot] === 0) continue;
      let i = this.#hash[slot] & mask;
      while (t[i] !== EMPTY) i = (i + 1) & mask;
      t[i] = slot + 1;
    }
    this.#table = t;
    this.#mask = mask;
  }

  #compact(): void {
    const live = this.#used - this.#garbage;
    const b = Buffer.alloc(Math.max(1024, live * 2));
    let used = 0;
    for (let slot = 0; slot < this.#slots; slot++) {
      if (this.#refs[slot] === 0) continue;
      const off = this.#off[slot],
        len = this.#len[slot];
      this.#bytes.copy(b, used, off, off + len);
      this.#off[slot] = used;
      used += len;
    }
    this.#bytes = b;
    this.#used = used;
    this.#garbage = 0;
  }
}

function tableSize(n: number): number {
  let cap = 16;
  while (cap * 3 < n * 4) cap *= 2;
  return cap;
}

function grow<T extends Uint32Array | Uint8Array | Int32Array>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

// Per-process seed, so a crafted list of ids cannot be made to pile into one probe chain.
const SEED = (Math.random() * 0x100000000) | 0;

// FNV-1a over the characters, seeded; ids are short.
function hashString(s: string): number {
  let h = (0x811c9dc5 ^ SEED) | 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h ^ (h >>> 16)) | 0;
}
