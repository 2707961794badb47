// A deterministic change log for state tests: entry `seq` depends on seq alone, so any process can
// compute what the cache must hold after applying entries 1..seq.
import { createHash } from 'node:crypto';
import type { ChangeEntry } from '../../../../shared/sync.ts';

const KEYS = 400;
const keyCache: string[] = [];
export function keyOf(i: number): string {
  keyCache[i] ??= createHash('sha256').update(`k${i}`).digest().subarray(0, 16).toString('base64url');
  return keyCache[i];
}

export function entryFor(seq: number): ChangeEntry {
  const remove = seq % 5 === 0 ? [keyOf((seq * 7) % KEYS), keyOf((seq * 11) % KEYS)] : [keyOf((seq * 7) % KEYS)];
  if (seq % 3 === 0) return { seq, kind: 'unlink', at: '2026-01-01T00:00:00Z', remove };
  return { seq, kind: 'link', at: '2026-01-01T00:00:00Z', remove, set: { keys: [keyOf(seq % KEYS), keyOf((seq * 13) % KEYS)], serviceUserId: `U-${seq % 97}` } };
}

/** The mappings after entries 1..seq. */
export function modelAt(seq: number): Map<string, string> {
  const m = new Map<string, string>();
  for (let s = 1; s <= seq; s++) {
    const e = entryFor(s);
    for (const k of e.remove) m.delete(k);
    if (e.set) for (const k of e.set.keys) m.set(k, e.set.serviceUserId);
  }
  return m;
}
