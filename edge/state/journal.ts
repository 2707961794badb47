// The append-only journal of change-log entries applied since the last checkpoint. One record per
// line: `<crc32 hex> <json>\n`. Appends are batched into one write and one fdatasync, so each delta
// costs a small append, never a rewrite of a large file (SD cards).
//
// A power cut can leave the last record torn (cut short, or with garbage from a half-written page):
// reading stops at the first record that is incomplete or fails its CRC, and the file is truncated
// there. Records name the checkpoint generation they follow, so records left from before a newer
// checkpoint are recognised and skipped.
import { crc32 } from 'node:zlib';
import { open, type FileHandle } from 'node:fs/promises';

/** One journal record: an applied entry's effect, after checkpoint generation `g`. */
export interface JournalRecord {
  /** Checkpoint generation this record follows. */
  g: number;
  /** Sequence number of the entry. */
  s: number;
  /** Keys removed. */
  r: string[];
  /** Keys set (with `u`). */
  k?: string[];
  /** Service user id the keys in `k` map to. */
  u?: string;
}

/** What reading the journal found. */
export interface JournalScan {
  records: JournalRecord[];
  /** Bytes dropped from a torn or corrupt tail (0 when the file was clean). */
  droppedBytes: number;
}

function isRecord(v: unknown): v is JournalRecord {
  const r = v as JournalRecord;
  return (
    typeof r === 'object' &&
    r !== null &&
    Number.isSafeInteger(r.g) &&
    Number.isSafeInteger(r.s) &&
    r.s >= 1 &&
    Array.isArray(r.r) &&
    r.r.every((x) => typeof x === 'string') &&
    (r.k === undefined || (Array.isArray(r.k) && r.k.every((x) => typeof x === 'string') && typeof r.u === 'string'))
  );
}

export function encodeRecord(r: JournalRecord): string {
  const json = JSON.stringify(r);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

export class Journal {
  readonly path: string;
  #fh: FileHandle | undefined;
  #size = 0;
  #count = 0;

  constructor(path: string) {
    this.path = path;
  }

  /** Records in the file. */
  get count(): number {
    return this.#count;
  }

  /** Bytes in the file. */
  get bytes(): number {
    return this.#size;
  }

  /** Opens (creating) the file, reads every intact record and truncates a torn tail. */
  async open(): Promise<JournalScan> {
    this.#fh = await open(this.path, 'a+', 0o600);
    const buf = await this.#fh.readFile();
    const records: JournalRecord[] = [];
    let pos = 0;
    while (pos < buf.length) {
      const nl = buf.indexOf(10, pos);
      if (nl < 0) break; // torn: no end of line
      const line = buf.subarray(pos, nl);
      if (line.length < 10 || line[8] !== 0x20) break;
      const crc = Number.parseInt(line.subarray(0, 8).toString('latin1'), 16);
      const json = line.subarray(9);
      if (!Number.isFinite(crc) || crc32(json) !== crc) break;
      let v: unknown;
      try {
        v = JSON.parse(json.toString('utf8'));
      } catch {
        break;
      }
      if (!isRecord(v)) break;
      records.push(v);
      pos = nl + 1;
    }
    const droppedBytes = buf.length - pos;
    if (droppedBytes > 0) {
      await this.#fh.truncate(pos);
      await this.#fh.datasync();
    }
    this.#size = pos;
    this.#count = records.length;
    return { records, droppedBytes };
  }

  /** Appends records with one write and one fdatasync; resolves once they are durable. */
  async append(records: JournalRecord[]): Promise<void> {
    if (!this.#fh) throw new Error('journal is not open');
    if (records.length === 0) return;
    const data = Buffer.from(records.map(encodeRecord).join(''), 'utf8');
    await this.#fh.write(data, 0, data.length, null);
    await this.#fh.datasync();
    this.#size += data.length;
    this.#count += records.length;
  }

  /** Empties the file (after a checkpoint has made its records redundant). */
  async reset(): Promise<void> {
    if (!this.#fh) throw new Error('journal is not open');
    await this.#fh.truncate(0);
    await this.#fh.datasync();
    this.#size = 0;
    this.#count = 0;
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }
}
