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
// Keys: an edge never receives MyKey IDs or certificate serials in clear, only keyed identities:
// HMAC-SHA256 under the service's sync secret of `mykey:<MyKey ID>` or `cert:<issuerKey>:<serial>`,
// truncated to 128 bits, base64url. The edge computes the same from what it reads off the card.
// (Someone holding a stolen edge's secret can still test guesses one at a time; the secret is per
// service and rotated by the hub.)
import { createHmac } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { EDGE_ID_PATTERN, SERVICE_ID_PATTERN, SERVICE_USER_ID_PATTERN } from './ids.ts';

/** Kinds of change-log entries (what happened; the effect is always `remove` then `set`). */
export const CHANGE_KINDS = ['link', 'unlink', 'suspend', 'resume', 'carry_over', 'id_changed'] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

const Key = Type.String({ pattern: '^[A-Za-z0-9_-]{22}$', description: 'keyed identity (HMAC-SHA256, 128 bits, base64url)' });

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

/** Keyed identity of a MyKey ID or a certificate for a service (see the header comment). */
export function keyedId(secret: Uint8Array, kind: 'mykey' | 'cert', value: string): string {
  return createHmac('sha256', secret).update(`${kind}:${value}`).digest().subarray(0, 16).toString('base64url');
}

/** Applies one entry to a map of key -> service user id; returns false when it is not the next one. */
export function applyEntry(map: Map<string, string>, appliedSeq: number, e: ChangeEntry): 'applied' | 'duplicate' | 'gap' {
  if (e.seq <= appliedSeq) return 'duplicate';
  if (e.seq !== appliedSeq + 1) return 'gap';
  for (const k of e.remove) map.delete(k);
  if (e.set) for (const k of e.set.keys) map.set(k, e.set.serviceUserId);
  return 'applied';
}
