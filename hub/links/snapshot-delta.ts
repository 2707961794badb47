// A snapshot at a later head made from the kept one and the change log between the two, without
// reading the links again: a fleet re-syncing while its service keeps changing asks at a new head
// almost every time, and a full build of a national service is seconds of CPU. The change log is what
// every edge applies to its own copy (remove, then set, in seq order: shared/sync.ts applyEntry), so
// applied to the kept snapshot it gives the snapshot at the later head. Pure functions over bytes.
//
// The kept entries are the JSON `["<key>","<service ID>"]` the builder wrote (snapshot.ts), in pieces
// of a page each, every piece but the first starting with a comma. A key is 22 base64url characters
// (shared/sync.ts Key); anything else in a piece is refused (the caller builds in full instead).
import type { ChangeEntry } from '../../shared/sync.ts';

/** What a run of change-log entries does to a snapshot: keys it touches, and what they map to at the end. */
export interface Folded {
  /** Every key removed or set by the entries: a kept entry with one of these is dropped. */
  touched: Set<string>;
  /** The keys mapped at the end of the run, and to which service ID (written after the kept entries). */
  added: Map<string, string>;
}

/** Folds entries (in seq order) into what they remove and what they leave set. */
export function foldChanges(entries: readonly ChangeEntry[]): Folded {
  const touched = new Set<string>();
  const added = new Map<string, string>();
  for (const e of entries) {
    for (const k of e.remove) {
      added.delete(k);
      touched.add(k);
    }
    if (e.set)
      for (const k of e.set.keys) {
        added.set(k, e.set.serviceUserId);
        touched.add(k);
      }
  }
  return { touched, added };
}

const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const KEY_LENGTH = 22;
const COMMA_BUFFER = Buffer.from(',');

/** Thrown for a piece that is not the builder's JSON: the caller builds the snapshot in full. */
export class NotSnapshotJson extends Error {}

/**
 * One piece without the entries whose key is touched: the same buffer when none is (no copy), else
 * the kept entries joined. Returns the piece with a leading comma (unless empty) and how many entries
 * it dropped and kept.
 */
export function filterPiece(p: Buffer, touched: ReadonlySet<string>): { piece: Buffer; dropped: number; kept: number } {
  const keptRanges: [number, number][] = [];
  let dropped = 0;
  let i = p.length > 0 && p[0] === COMMA ? 1 : 0;
  const leadingComma = i === 1;
  while (i < p.length) {
    if (p[i] !== OPEN || p[i + 1] !== QUOTE || p[i + 2 + KEY_LENGTH] !== QUOTE || p[i + 3 + KEY_LENGTH] !== COMMA || p[i + 4 + KEY_LENGTH] !== QUOTE) {
      throw new NotSnapshotJson(`no snapshot entry at byte ${i}`);
    }
    const key = p.toString('latin1', i + 2, i + 2 + KEY_LENGTH);
    // The service ID: a JSON string, whose quote ends it unless escaped.
    let j = i + 5 + KEY_LENGTH;
    while (j < p.length && p[j] !== QUOTE) j += p[j] === BACKSLASH ? 2 : 1;
    if (p[j + 1] !== CLOSE) throw new NotSnapshotJson(`unterminated snapshot entry at byte ${i}`);
    const end = j + 2;
    if (touched.has(key)) dropped++;
    else keptRanges.push([i, end]);
    i = end;
    if (i < p.length) {
      if (p[i] !== COMMA) throw new NotSnapshotJson(`no comma at byte ${i}`);
      i++;
    }
  }
  if (dropped === 0) return { piece: leadingComma || p.length === 0 ? p : Buffer.concat([COMMA_BUFFER, p]), dropped, kept: keptRanges.length };
  const out: Buffer[] = [];
  for (const [a, b] of keptRanges) out.push(COMMA_BUFFER, p.subarray(a, b));
  return { piece: Buffer.concat(out), dropped, kept: keptRanges.length };
}

/** The entries `added` maps, as a piece with a leading comma. */
export function addedPiece(added: ReadonlyMap<string, string>): Buffer {
  let json = '';
  for (const [k, uid] of added) json += `,["${k}",${JSON.stringify(uid)}]`;
  return Buffer.from(json);
}

/** Pieces that each start with a comma (or are empty) as entry pieces of a snapshot: the first entry has none. */
export function firstWithoutComma(pieces: Buffer[]): Buffer[] {
  const out = pieces.filter((p) => p.length > 0);
  if (out.length > 0) out[0] = out[0].subarray(1);
  return out;
}
