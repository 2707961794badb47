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
// `mykey:<MyKey ID>` or `cert:<issuerKey>:<serial>` under the service's sync secret, 128 bits,
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
// Messages on a service's log topic (shared/topics.ts), two forms while a fleet upgrades:
// - v1: one ChangeEntry as the whole payload (what every edge understands);
// - v2: a ChangeBatch `{ v: 2, entries: [...] }`, entries in order with consecutive seqs, the whole
//   payload at most MAX_SYNC_PAYLOAD_BYTES. The seq rules above apply entry by entry, so a gap inside
//   or between batches and a batch seen twice are handled as for single entries. One batch costs the
//   broker one write per edge instead of one per entry (bench/fanout.bench.ts, fanout_burst_10k_ms).
//   The hub sends a lone entry as v1, so an edge not yet upgraded misses only bursts, and catches
//   up on them through the change log.
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
export const KEY_SCHEMES = ['hmac-sha256', 'scrypt-v2'] as const;
export type KeyScheme = (typeof KEY_SCHEMES)[number];
/** What a payload without `keyScheme` uses. */
export const LEGACY_KEY_SCHEME: KeyScheme = 'hmac-sha256';
/** What the hub moves every service to. */
export const CURRENT_KEY_SCHEME: KeyScheme = 'scrypt-v2';
const KeySchemeField = Type.Union(KEY_SCHEMES.map((k) => Type.Literal(k)), { description: 'derivation of the keys; absent: hmac-sha256' });

/** One change-log entry of a service. */
export const ChangeEntry = Type.Object(
  {
    seq: Type.Integer({ minimum: 1 }),
    kind: Type.Union(CHANGE_KINDS.map((k) => Type.Literal(k))),
    at: Type.String({ format: 'date-time' }),
    remove: Type.Array(Key, { maxItems: 64 }),
    set: Type.Optional(
      Type.Object({ keys: Type.Array(Key, { minItems: 1, maxItems: 64 }), serviceUserId: Type.String({ pattern: SERVICE_USER_ID_PATTERN }) }, { additionalProperties: false }),
    ),
    reason: Type.Optional(Type.String({ maxLength: 64 })),
    keyScheme: Type.Optional(KeySchemeField),
  },
  { additionalProperties: false },
);
export type ChangeEntry = Static<typeof ChangeEntry>;

/** Version tag of a batched change-log message. */
export const CHANGE_BATCH_VERSION = 2;

/** Most entries in one batch: a suspension is ~170 bytes, so 64 KiB holds a few hundred anyway. */
export const MAX_BATCH_ENTRIES = 2000;

/** Several change-log entries of one service in one message (v2), consecutive seqs in order. */
export const ChangeBatch = Type.Object(
  {
    v: Type.Literal(CHANGE_BATCH_VERSION),
    entries: Type.Array(ChangeEntry, { minItems: 1, maxItems: MAX_BATCH_ENTRIES }),
  },
  { additionalProperties: false },
);
export type ChangeBatch = Static<typeof ChangeBatch>;

/** What a log-topic message may be: one entry (v1) or a batch (v2). */
export const LogMessage = Type.Union([ChangeEntry, ChangeBatch]);
export type LogMessage = Static<typeof LogMessage>;

/** The entries a log-topic message carries, in order. */
export function entriesOf(m: LogMessage): ChangeEntry[] {
  return 'v' in m ? m.entries : [m];
}

/** True when a batch's seqs are consecutive and increasing (the schema cannot say so). */
export function batchIsConsecutive(entries: readonly { seq: number }[]): boolean {
  for (let i = 1; i < entries.length; i++) if (entries[i].seq !== entries[0].seq + i) return false;
  return true;
}

const BATCH_HEAD = `{"v":${CHANGE_BATCH_VERSION},"entries":[`;
const BATCH_TAIL = ']}';

/**
 * Packs serialized entries (JSON of ChangeEntry, in seq order) into log-topic payloads: runs of
 * consecutive seqs become v2 batches of at most `maxBytes` bytes and `MAX_BATCH_ENTRIES` entries; a
 * run of one stays a v1 entry. Pure: no parsing beyond each entry's seq, which the caller gives.
 */
export function packLogMessages(items: readonly { seq: number; json: string }[], maxBytes = MAX_SYNC_PAYLOAD_BYTES): { payload: string; count: number; firstSeq: number }[] {
  const out: { payload: string; count: number; firstSeq: number }[] = [];
  let run: { seq: number; json: string }[] = [];
  let bytes = 0;
  const close = () => {
    if (run.length === 0) return;
    out.push({ payload: run.length === 1 ? run[0].json : BATCH_HEAD + run.map((r) => r.json).join(',') + BATCH_TAIL, count: run.length, firstSeq: run[0].seq });
    run = [];
  };
  for (const it of items) {
    const len = Buffer.byteLength(it.json);
    const last = run.at(-1);
    // bytes: the entries of the run so far with the commas between them.
    if (last && (it.seq !== last.seq + 1 || run.length >= MAX_BATCH_ENTRIES || BATCH_HEAD.length + bytes + 1 + len + BATCH_TAIL.length > maxBytes)) close();
    bytes = run.length === 0 ? len : bytes + 1 + len;
    run.push(it);
  }
  close();
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

/** scrypt cost of `scrypt-v2` (RFC 7914): 128 * N * r = 16 MiB of memory per derivation. */
export const SCRYPT_V2 = { N: 2 ** 14, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;

/**
 * Keyed identity under `scheme` (default: the current, memory-hard one). Async: scrypt runs on the
 * libuv thread pool, never on the event loop.
 */
export function keyedIdentity(secret: Uint8Array, kind: 'mykey' | 'cert', value: string, scheme: KeyScheme = CURRENT_KEY_SCHEME): Promise<string> {
  if (scheme === 'hmac-sha256') return Promise.resolve(keyedId(secret, kind, value));
  return new Promise((resolve, reject) =>
    scrypt(`${kind}:${value}`, secret, 16, SCRYPT_V2, (err, key) => (err ? reject(err) : resolve(key.toString('base64url')))),
  );
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
