// Events and counters of the sync agent, shared by its parts.
import { MyKeyError, type ErrorCode } from '../../shared/errors.ts';
import type { ChangeEntry } from '../../shared/sync.ts';
import type { Health } from './health.ts';

/** Events of the agent. */
export interface SyncEvents {
  /** An entry was applied; emitted once it is also in the journal. */
  applied: { seq: number; kind: ChangeEntry['kind']; purged: number; set: number; source: 'live' | 'catch-up' };
  /** An applied entry removed mappings: they are gone from the cache. */
  purged: { seq: number; kind: ChangeEntry['kind']; keys: number };
  /** A snapshot replaced the cache. */
  snapshot: { seq: number; mappings: number; ms: number };
  /** Health changed. */
  health: { health: Health; previous: Health; ageMs?: number };
  /** Health became `stale`. */
  stale: { ageMs?: number };
  connected: { sessionPresent: boolean };
  disconnected: { reason?: string };
  /** A payload was dropped. */
  dropped: { code: ErrorCode; topic: string };
  /** The hub decommissioned this edge: state wiped, session stopped. */
  decommissioned: Record<string, never>;
}

/** Counts since start. */
export interface SyncStats {
  applied: number;
  duplicates: number;
  gaps: number;
  snapshots: number;
  catchUps: number;
  dropped: number;
  connects: number;
  /** Log-topic messages that carried more than one entry (v2 batches). */
  batches: number;
}

/** The code of an error for logs: a MyKeyError's code, a system error's code, else `internal`. */
export function codeOf(e: unknown): string {
  return e instanceof MyKeyError ? e.code : ((e as { code?: string })?.code ?? 'internal');
}
