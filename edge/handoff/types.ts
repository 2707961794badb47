// What a touch hands over (サービスID引渡し), and the shape every hand-off target has.
import type { Outcome } from './outcomes.ts';

/**
 * The result of one touch as the hand-off targets see it. It lives only until every target has
 * taken it; nothing keeps it afterwards (no usage history: MISSION.md).
 */
export interface TouchResult {
  /** Random id of this touch, for the target to match retries; not a card identifier. */
  transaction: string;
  outcome: Outcome;
  serviceId: string;
  edgeId: string;
  storeId?: string;
  reader: string;
  /** ISO time of the touch (the business system files the lending, not us). */
  at: string;
  /** The service's own id of the holder: for `linked`, and `degraded` with a linked answer. */
  serviceUserId?: string;
  /** For `refused` and `degraded`: why. */
  reason?: string;
  /** For `degraded`: what the edge's answer would be (its cache may be out of date). */
  answer?: 'linked' | 'not_linked';
  /** Only given to targets configured with includeMyKeyId, and only when the card carries one. */
  mykeyId?: string;
}

/** A hand-off target. deliver() returns at once and never throws: the next touch must not wait. */
export interface HandoffTarget {
  readonly name: string;
  start?(): Promise<void>;
  stop?(): Promise<void>;
  deliver(result: TouchResult): void;
  /** Aggregate counters only. */
  stats(): Record<string, number>;
}

/** What a target may receive: the service ID and what it needs, the MyKey ID only when configured. */
export function payloadOf(result: TouchResult, opts: { includeMyKeyId: boolean }): Omit<TouchResult, 'mykeyId'> & { mykeyId?: string } {
  const { mykeyId, ...rest } = result;
  return opts.includeMyKeyId && mykeyId !== undefined ? { ...rest, mykeyId } : rest;
}
