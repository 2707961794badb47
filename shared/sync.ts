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
