// The sync contract between the hub and the edges of a service: an ordered change log per service,
// snapshots, edge status and commands. Payloads are JSON, validated on both sides with these schemas.
//
// Sequence rules:
// - Each service has its own log; `seq` starts at 1 and increases by exactly 1 per entry.
// - An edge applies entry `applied + 1` and ignores `seq <= applied` (duplicates and replays are
//   harmless). Seeing `seq > applied + 1` is a gap: the edge catches up from the hub (missing entries,
//   or a snapshot at some seq followed by the entries above it).
// - Applying an entry is: delete every key in `remove`, then map every key in `set.keys` to
//   `set.serviceUserId`. That makes every entry idempotent and order-checkable.
//
// Keys: an edge never receives MyKey IDs or certificate serials in clear, only keyed identities of
// `mykey:<MyKey ID>` or `cert:<certificate identity>` (shared/cert-identity.ts) under the service's sync secret, 128 bits,
// base64url. The edge computes the same from what it reads off the card. Two derivations
// (`keyScheme`), said by every snapshot and change-log entry (absent: the legacy one):
// - `hmac-sha256` (legacy): HMAC-SHA256(secret, identity). Every edge of a service holds the secret,
//   and there are only 31^8 = 8.5e11 MyKey IDs: one stolen reader lets a GPU test them all in minutes
//   and learn every linked MyKey ID of its service.
// - `scrypt-v2`: scrypt(identity, salt = secret, N = 2^14, r = 8, p = 1) (RFC 7914), 16 MiB per
//   guess. With the secret alone, each guess costs the whole derivation. hashcat 6.2.6 mode 8900
//   runs exactly these parameters at 7,126 H/s on an RTX 4090 (Chick3nman's published benchmark), so
//   enumerating 31^8 for one service takes 8.5e11 / 7126 = 1.2e8 s, about 3.8 GPU-years (some
//   33,000 GPU-hours, around US$13,000 at US$0.40 an hour), per service, since the salt is the
//   service's own secret. A touch pays one derivation (bench/keyed-identity.bench.ts,
//   touch_keyed_identity_us); the hub derives once per (service, identity) off the event loop and
//   stores the result (hub/links).
// - `scrypt-v3`: the same scrypt, but the certificate identity names the issuing KEY as well:
//   `cert:<issuerKey>:<AKI keyIdentifier hex>:<serial>` (shared/cert-identity.ts certIdentityWithKey;
//   the old form only for a certificate without an AKI). Under v2, a CA key rolled over under the same
//   Name with a reused serial gave two holders one key, so a touch of one card could answer the
//   other's service ID. MyKey-ID keys are the same under v2 and v3.
// Messages on a service's log topic (shared/topics.ts), two forms while a fleet upgrades:
// - v1: one ChangeEntry as the whole payload (what every edge understands);
// - v2: a ChangeBatch `{ v: 2, seq, kind, at, entries: [...] }`: consecutive entries from `seq` on,
//   written compactly (no seq per entry, `kind` and `at` only where they change: a suspension takes
//   ~60 bytes instead of ~150), the whole payload at most MAX_SYNC_PAYLOAD_BYTES. The seq rules above
//   apply entry by entry, so a gap between batches and a batch seen twice are handled as for single
//   entries. One batch costs the broker one write per edge instead of one per entry, and the bytes
//   (TLS to every edge) are what a burst costs (bench/fanout.bench.ts, fanout_burst_10k_ms).
// - v3: a CompactBatch `{ v: 3, seq, n, kind, at, entries: [...] }`: v2 where an entry that only
//   removes keys (a suspension, an unlink: what a CRL run is made of) is the string of its keys back
//   to back (22 characters each) instead of an object, and `n` says how many entries there are, so
//   the range seq .. seq + n - 1 is known from the head. A suspension takes ~47 bytes instead of
//   ~63: a burst of 10,000 is 8 messages to every edge instead of 10, and each decodes into a few
//   strings instead of thousands of objects and arrays.
//   The hub sends a lone entry as v1, so an edge not yet upgraded misses only bursts, and catches
//   up on them through the change log. Edges accept all three; which batch form the hub writes is
//   the outbox's choice (hub/links/outbox-publisher.ts), v3 unless told otherwise.
// A service moves from one to the other with a `rekey` entry: the edge applies it, then fetches a
// snapshot under the new derivation. Until then an edge looks a touch up under both.
import { createHmac, scrypt, scryptSync } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { EDGE_ID_PATTERN, SERVICE_ID_PATTERN, SERVICE_USER_ID_PATTERN } from './ids.ts';

/** Kinds of change-log entries (what happened; the effect is always `remove` then `set`). */
export const CHANGE_KINDS = ['link', 'unlink', 'suspend', 'resume', 'carry_over', 'id_changed', 'rekey'] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

const Key = Type.String({ pattern: '^[A-Za-z0-9_-]{22}$', description: 'keyed identity (128 bits, base64url)' });

/** Derivations of keyed identities, oldest first (see the header comment). */
export const KEY_SCHEMES = ['hmac-sha256', 'scrypt-v2', 'scrypt-v3'] as const;
export type KeyScheme = (typeof KEY_SCHEMES)[number];
/** What a payload without `keyScheme` uses. */
export const LEGACY_KEY_SCHEME: KeyScheme = 'hmac-sha256';
/** What the hub moves every service to. */
export const CURRENT_KEY_SCHEME: KeyScheme = 'scrypt-v3';
/** Whether a scheme's certificate identity includes the issuing key (shared/cert-identity.ts certIdentityWithKey). */
export const schemeKeysCertIssuer = (scheme: KeyScheme): boolean => scheme === 'scrypt-v3';
const KeySchemeField = Type.Union(
  KEY_SCHEMES.map((k) => Type.Literal(k)),
  { description: 'derivation of the keys; absent: hmac-sha256' },
);

/** One change-log entry of a service. */
export const ChangeEntry = Type.Object(
  {
    seq: Type.Integer({ minimum: 1 }),
    kind: Type.Union(CHANGE_KINDS.map((k) => Type.Literal(k))),
    at: Type.String({ format: 'date-time' }),
    remove: Type.Array(Key, { maxItems: 64 }),
    set: Type.Optional(Type.Object({ keys: Type.Array(Key, { minItems: 1, maxItems: 64 }), serviceUserId: Type.String({ pattern: SERVICE_USER_ID_PATTERN }) }, { additionalProperties: false })),
    reason: Type.Optional(Type.String({ maxLength: 64 })),
    keyScheme: Type.Optional(KeySchemeField),
  },
  { additionalProperties: false },
);
export type ChangeEntry = Static<typeof ChangeEntry>;

/** Version tag of a batched change-log message. */
export const CHANGE_BATCH_VERSION = 2;

/** Most entries in one batch: a suspension takes ~60 bytes in a batch, so 64 KiB holds ~1,000. */
export const MAX_BATCH_ENTRIES = 2000;

const KindField = Type.Union(CHANGE_KINDS.map((k) => Type.Literal(k)));
const DateTime = Type.String({ format: 'date-time' });
const SetField = Type.Object({ keys: Type.Array(Key, { minItems: 1, maxItems: 64 }), serviceUserId: Type.String({ pattern: SERVICE_USER_ID_PATTERN }) }, { additionalProperties: false });

/** An entry inside a batch: no seq (implied by its place), `kind` and `at` only where they change. */
export const BatchEntry = Type.Object(
  {
    kind: Type.Optional(KindField),
    at: Type.Optional(DateTime),
    remove: Type.Array(Key, { maxItems: 64 }),
    set: Type.Optional(SetField),
    reason: Type.Optional(Type.String({ maxLength: 64 })),
    keyScheme: Type.Optional(KeySchemeField),
  },
  { additionalProperties: false },
);
export type BatchEntry = Static<typeof BatchEntry>;

/**
 * Several change-log entries of one service in one message (v2). Entry i has seq `seq + i`, so seqs
 * are consecutive by construction. `kind` and `at` carry over from the previous entry (the first
 * takes the batch's); `reason` and `keyScheme`, when the batch states them, hold for every entry
 * that does not state its own. The expanded entries (expandBatch) are exactly the log's entries.
 */
export const ChangeBatch = Type.Object(
  {
    v: Type.Literal(CHANGE_BATCH_VERSION),
    seq: Type.Integer({ minimum: 1, description: 'seq of the first entry' }),
    kind: KindField,
    at: DateTime,
    reason: Type.Optional(Type.String({ maxLength: 64 })),
    keyScheme: Type.Optional(KeySchemeField),
    entries: Type.Array(BatchEntry, { minItems: 1, maxItems: MAX_BATCH_ENTRIES }),
  },
  { additionalProperties: false },
);
export type ChangeBatch = Static<typeof ChangeBatch>;

/** Version tag of a compact batch (v3). */
export const COMPACT_BATCH_VERSION = 3;
/** Batch forms the hub can write. */
export type BatchVersion = typeof CHANGE_BATCH_VERSION | typeof COMPACT_BATCH_VERSION;

/** Characters of one keyed identity (128 bits, base64url without padding). */
export const KEY_CHARS = 22;

/** A remove-only entry of a compact batch: its keys (at most 64) back to back, nothing between them. */
export const RemoveOnlyEntry = Type.String({ pattern: '^(?:[A-Za-z0-9_-]{22}){0,64}$', maxLength: 64 * KEY_CHARS, description: 'keys to remove, 22 characters each' });

/**
 * A compact batch (v3): a v2 batch whose remove-only entries are strings (RemoveOnlyEntry), with the
 * entry count `n` in the head. An object entry means what it means in v2; a string entry is
 * `{ remove: <its keys> }` with `kind`, `at`, `reason` and `keyScheme` carried over as in v2. A
 * receiver refuses a batch whose `n` is not its number of entries (code log_batch_miscounted).
 */
export const CompactBatch = Type.Object(
  {
    v: Type.Literal(COMPACT_BATCH_VERSION),
    seq: Type.Integer({ minimum: 1, description: 'seq of the first entry' }),
    n: Type.Integer({ minimum: 1, maximum: MAX_BATCH_ENTRIES, description: 'number of entries: the batch holds seq .. seq + n - 1' }),
    kind: KindField,
    at: DateTime,
    reason: Type.Optional(Type.String({ maxLength: 64 })),
    keyScheme: Type.Optional(KeySchemeField),
    entries: Type.Array(Type.Union([RemoveOnlyEntry, BatchEntry]), { minItems: 1, maxItems: MAX_BATCH_ENTRIES }),
  },
  { additionalProperties: false },
);
export type CompactBatch = Static<typeof CompactBatch>;

/** What a log-topic message may be: one entry (v1) or a batch (v2, v3). */
export const LogMessage = Type.Union([ChangeEntry, ChangeBatch, CompactBatch]);
export type LogMessage = Static<typeof LogMessage>;

/** The keys of a remove-only entry (a string of 22-character keys). */
export function splitKeys(s: string): string[] {
  const keys = new Array<string>(s.length / KEY_CHARS);
  for (let i = 0; i < keys.length; i++) keys[i] = s.slice(i * KEY_CHARS, (i + 1) * KEY_CHARS);
  return keys;
}

/** The full entries of a batch (v2 or v3), in order. */
export function expandBatch(b: ChangeBatch | CompactBatch): ChangeEntry[] {
  let kind = b.kind;
  let at = b.at;
  const out = new Array<ChangeEntry>(b.entries.length);
  for (let i = 0; i < out.length; i++) {
    const item = b.entries[i];
    const e: BatchEntry = typeof item === 'string' ? { remove: splitKeys(item) } : item;
    kind = e.kind ?? kind;
    at = e.at ?? at;
    const reason = e.reason ?? b.reason;
    const keyScheme = e.keyScheme ?? b.keyScheme;
    out[i] = {
      seq: b.seq + i,
      kind,
      at,
      remove: e.remove,
      ...(e.set ? { set: e.set } : {}),
      ...(reason !== undefined ? { reason } : {}),
      ...(keyScheme !== undefined ? { keyScheme } : {}),
    };
  }
  return out;
}

/** The entries a log-topic message carries, in order. */
export function entriesOf(m: LogMessage): ChangeEntry[] {
  return 'v' in m ? expandBatch(m) : [m];
}

/** True for a key list a RemoveOnlyEntry can carry. */
const stringable = (keys: readonly string[]): boolean => keys.length <= 64 && keys.every((k) => k.length === KEY_CHARS && /^[A-Za-z0-9_-]+$/.test(k));

/**
 * Packs entries (in seq order) into log-topic payloads: runs of consecutive seqs become batches
 * (`version` 3: compact, the default; 2: what edges before v3 understand) of at most `maxBytes` bytes
 * and MAX_BATCH_ENTRIES entries; a run of one stays a v1 entry (what an edge not yet upgraded
 * understands). `json` is the entry as stored, reused for a lone entry. Pure.
 */
export function packLogMessages(
  items: readonly { entry: ChangeEntry; json: string }[],
  maxBytes = MAX_SYNC_PAYLOAD_BYTES,
  version: BatchVersion = COMPACT_BATCH_VERSION,
): { payload: string; count: number }[] {
  const compact = version === COMPACT_BATCH_VERSION;
  const out: { payload: string; count: number }[] = [];
  let i = 0;
  while (i < items.length) {
    const first = items[i].entry;
    const rest = JSON.stringify({
      kind: first.kind,
      at: first.at,
      ...(first.reason !== undefined ? { reason: first.reason } : {}),
      ...(first.keyScheme !== undefined ? { keyScheme: first.keyScheme } : {}),
    }).slice(1, -1);
    // v3 puts `n` right after `seq`: the range is known from the first bytes.
    const open = (n: number | undefined) => `{"v":${version},"seq":${first.seq}${n === undefined ? '' : `,"n":${n}`},${rest},"entries":[`;
    const parts: string[] = [];
    let bytes = Buffer.byteLength(open(undefined)) + 2; // + "]}"
    // The bytes of `,"n":<count>` with one more entry.
    const countBytes = (count: number) => (compact ? 5 + String(count).length : 0);
    let kind = first.kind;
    let at = first.at;
    let j = i;
    for (; j < items.length && parts.length < MAX_BATCH_ENTRIES; j++) {
      const e = items[j].entry;
      if (e.seq !== first.seq + (j - i)) break;
      // An entry without a reason (or key scheme) cannot sit in a batch that states one for all.
      if ((first.reason !== undefined && e.reason === undefined) || (first.keyScheme !== undefined && e.keyScheme === undefined)) break;
      const c: BatchEntry = {
        ...(e.kind !== kind ? { kind: e.kind } : {}),
        ...(e.at !== at ? { at: e.at } : {}),
        remove: e.remove,
        ...(e.set ? { set: e.set } : {}),
        ...(e.reason !== first.reason ? { reason: e.reason } : {}),
        ...(e.keyScheme !== first.keyScheme ? { keyScheme: e.keyScheme } : {}),
      };
      // v3: an entry that only removes is the string of its keys.
      const json = compact && Object.keys(c).length === 1 && stringable(e.remove) ? `"${e.remove.join('')}"` : JSON.stringify(c);
      const size = Buffer.byteLength(json) + (parts.length > 0 ? 1 : 0);
      if (parts.length > 0 && bytes + size + countBytes(parts.length + 1) > maxBytes) break;
      parts.push(json);
      bytes += size;
      kind = e.kind;
      at = e.at;
    }
    if (parts.length === 1) out.push({ payload: items[i].json, count: 1 });
    else out.push({ payload: `${open(compact ? parts.length : undefined)}${parts.join(',')}]}`, count: parts.length });
    i += parts.length;
  }
  return out;
}

/** A service's mappings at one sequence number: `[key, serviceUserId]` pairs. */
export const Snapshot = Type.Object(
  {
    serviceId: Type.String({ pattern: SERVICE_ID_PATTERN }),
    seq: Type.Integer({ minimum: 0 }),
    generatedAt: Type.String({ format: 'date-time' }),
    entries: Type.Array(Type.Tuple([Key, Type.String({ pattern: SERVICE_USER_ID_PATTERN })])),
    keyScheme: Type.Optional(KeySchemeField),
  },
  { additionalProperties: false },
);
export type Snapshot = Static<typeof Snapshot>;

/** Aggregate counters an edge may report (never which card touched when). */
export const EdgeCounters = Type.Object(
  {
    touches: Type.Integer({ minimum: 0 }),
    handoffs: Type.Integer({ minimum: 0 }),
    notLinked: Type.Integer({ minimum: 0 }),
    refused: Type.Integer({ minimum: 0 }),
    errors: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type EdgeCounters = Static<typeof EdgeCounters>;

/**
 * The card reader's health as the edge's self-healing sees it (edge/reader/reader-health.ts): `ok`,
 * `missing` (on the USB bus but not in PC/SC, or not plugged in), `unresponsive` (in PC/SC but it
 * stopped answering), `resetting` (a USB reset or port power cycle is under way), `needs_replug`
 * (resets did not bring it back, or cannot: someone must unplug it and plug it back in).
 */
export const ReaderHealth = Type.Object(
  {
    state: Type.Union([Type.Literal('ok'), Type.Literal('missing'), Type.Literal('unresponsive'), Type.Literal('resetting'), Type.Literal('needs_replug')]),
    resets: Type.Integer({ minimum: 0, description: 'USB resets or port power cycles since the agent started' }),
    failedResets: Type.Optional(Type.Integer({ minimum: 0, description: 'resets since the reader last worked that did not bring it back' })),
    model: Type.Optional(Type.String({ maxLength: 64, description: 'the known reader model on the USB bus, e.g. "ACS ACR1252U"' })),
    usbId: Type.Optional(Type.String({ pattern: '^[0-9a-f]{4}:[0-9a-f]{4}$', description: 'USB vendor:product of that reader' })),
    kernelDriver: Type.Optional(Type.String({ maxLength: 32, description: 'a kernel NFC module holding the reader instead of PC/SC (pn533_usb, port100): blacklist it (enroll --fix-nfc-modules)' })),
  },
  { additionalProperties: false },
);
export type ReaderHealth = Static<typeof ReaderHealth>;

/** An edge's retained status; the same shape with `online: false` is its MQTT will. */
export const EdgeStatus = Type.Object(
  {
    edgeId: Type.String({ pattern: EDGE_ID_PATTERN }),
    serviceId: Type.String({ pattern: SERVICE_ID_PATTERN }),
    online: Type.Boolean(),
    appliedSeq: Type.Integer({ minimum: 0 }),
    version: Type.String({ maxLength: 64 }),
    health: Type.Union([Type.Literal('ok'), Type.Literal('degraded'), Type.Literal('stale'), Type.Literal('clock_unsure'), Type.Literal('reader_missing')]),
    at: Type.String({ format: 'date-time' }),
    counters: Type.Optional(EdgeCounters),
    /** Optional (edges before it omit it); a hub older than it refuses statuses that carry it. */
    reader: Type.Optional(ReaderHealth),
  },
  { additionalProperties: false },
);
export type EdgeStatus = Static<typeof EdgeStatus>;

/** Commands the hub sends to one edge. */
export const EdgeCommand = Type.Object(
  {
    transaction: Type.String({ maxLength: 64 }),
    command: Type.Union([Type.Literal('resync'), Type.Literal('ping'), Type.Literal('decommission')]),
  },
  { additionalProperties: false },
);
export type EdgeCommand = Static<typeof EdgeCommand>;

/** Largest MQTT payload either side accepts on protocol topics. */
export const MAX_SYNC_PAYLOAD_BYTES = 64 * 1024;

/** Legacy keyed identity (`hmac-sha256`) of a MyKey ID or a certificate for a service. */
export function keyedId(secret: Uint8Array, kind: 'mykey' | 'cert', value: string): string {
  return createHmac('sha256', secret).update(`${kind}:${value}`).digest().subarray(0, 16).toString('base64url');
}

/** scrypt cost of `scrypt-v2` and `scrypt-v3` (RFC 7914): 128 * N * r = 16 MiB of memory per derivation. */
export const SCRYPT_V2 = { N: 2 ** 14, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;

/**
 * Keyed identity under `scheme` (default: the current, memory-hard one). Async: scrypt runs on the
 * libuv thread pool, never on the event loop.
 */
export function keyedIdentity(secret: Uint8Array, kind: 'mykey' | 'cert', value: string, scheme: KeyScheme = CURRENT_KEY_SCHEME): Promise<string> {
  if (scheme === 'hmac-sha256') return Promise.resolve(keyedId(secret, kind, value));
  return new Promise((resolve, reject) => scrypt(`${kind}:${value}`, secret, 16, SCRYPT_V2, (err, key) => (err ? reject(err) : resolve(key.toString('base64url')))));
}

/** The same, blocking: only where a caller cannot wait (the hub's rare fallback inside a transaction). */
export function keyedIdentitySync(secret: Uint8Array, kind: 'mykey' | 'cert', value: string, scheme: KeyScheme = CURRENT_KEY_SCHEME): string {
  if (scheme === 'hmac-sha256') return keyedId(secret, kind, value);
  return scryptSync(`${kind}:${value}`, secret, 16, SCRYPT_V2).toString('base64url');
}

/** Applies one entry to a map of key -> service user id; returns false when it is not the next one. */
export function applyEntry(map: Map<string, string>, appliedSeq: number, e: ChangeEntry): 'applied' | 'duplicate' | 'gap' {
  if (e.seq <= appliedSeq) return 'duplicate';
  if (e.seq !== appliedSeq + 1) return 'gap';
  for (const k of e.remove) map.delete(k);
  if (e.set) for (const k of e.set.keys) map.set(k, e.set.serviceUserId);
  return 'applied';
}
