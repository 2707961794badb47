// A lowdb adapter (lowdb v7 `Adapter<T>`) for files that must survive a power cut at any moment:
// the whole file is written to a temporary file, fsynced, renamed over the old one, and the
// directory is fsynced so that the rename itself is durable (POSIX rename(2) is atomic; without
// the directory fsync, ext4 and F2FS on an SD card may forget it). lowdb's own JSONFile renames
// but never fsyncs.
//
// Every file carries a checksum in a first line, `MYKEY-STATE 1 <sha256 hex> <body bytes>`, so a
// file damaged by the card itself (not by a torn write, which the rename rules out) is detected on
// read instead of being half-believed.
import { createHash } from 'node:crypto';
import { open, readFile, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Adapter } from 'lowdb';
import { replaceFileAtomically } from '../../shared/atomic-file.ts';
import { MyKeyError } from '../../shared/errors.ts';

const MAGIC = 'MYKEY-STATE 1';

/** Writes `data` to `path` atomically and durably (temp file, fsync, rename, fsync of the directory). */
export async function writeFileDurably(path: string, data: string | Uint8Array): Promise<void> {
  await replaceFileAtomically(path, data, { tmp: join(dirname(path), `.${basename(path)}.${process.pid}.tmp`), mode: 0o600 });
  await syncDir(dirname(path));
}

/** fsync of a directory, so that entries created, renamed or removed in it are durable. */
export async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Removes a file if present. */
export async function removeIfPresent(path: string): Promise<void> {
  await unlink(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}

/** Wraps a body in the checksummed envelope. */
export function seal(body: string): string {
  const b = Buffer.from(body, 'utf8');
  return `${MAGIC} ${createHash('sha256').update(b).digest('hex')} ${b.length}\n${body}`;
}

/** Checks and strips the envelope; throws MyKeyError('state_corrupt') when anything is off. */
export function unseal(text: Buffer, what: string): string {
  const nl = text.indexOf(10);
  const head = nl < 0 ? '' : text.subarray(0, nl).toString('latin1');
  const m = /^MYKEY-STATE 1 ([0-9a-f]{64}) (\d+)$/.exec(head);
  if (!m) throw new MyKeyError('state_corrupt', `${what}: no valid header`);
  const body = text.subarray(nl + 1);
  if (body.length !== Number(m[2])) throw new MyKeyError('state_corrupt', `${what}: ${body.length} bytes where the header says ${m[2]}`);
  if (createHash('sha256').update(body).digest('hex') !== m[1]) throw new MyKeyError('state_corrupt', `${what}: checksum mismatch`);
  return body.toString('utf8');
}

/**
 * lowdb adapter for one JSON document in a checksummed, atomically replaced file. `read` gives null
 * when the file does not exist and throws MyKeyError('state_corrupt') when it cannot be trusted.
 */
export class DurableJsonFile<T> implements Adapter<T> {
  readonly path: string;
  readonly #check?: (v: unknown) => v is T;

  /** `check`: a guard run on what was read (schema check); a failing document counts as corrupt. */
  constructor(path: string, check?: (v: unknown) => v is T) {
    this.path = path;
    this.#check = check;
  }

  async read(): Promise<T | null> {
    let text: Buffer;
    try {
      text = await readFile(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new MyKeyError('state_corrupt', `${basename(this.path)}: unreadable`, { cause: e });
    }
    const body = unseal(text, basename(this.path));
    let v: unknown;
    try {
      v = JSON.parse(body);
    } catch (e) {
      throw new MyKeyError('state_corrupt', `${basename(this.path)}: not JSON`, { cause: e });
    }
    if (this.#check && !this.#check(v)) throw new MyKeyError('state_corrupt', `${basename(this.path)}: unexpected content`);
    return v as T;
  }

  async write(data: T): Promise<void> {
    await writeFileDurably(this.path, seal(JSON.stringify(data)));
  }
}
