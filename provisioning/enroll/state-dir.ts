// The edge's state directory as enrollment leaves it. Keys are 0600, the directories 0700; every
// file is written atomically (temporary file, fsync, rename, fsync of the directory), so a power cut
// on a Raspberry Pi leaves either the old file or the new one, never half of one.
//
//   <dir>/edge.json                 the edge agent's config (edge/config.ts schema)
//   <dir>/enrollment.json           what was enrolled, where and until when (written last: the commit)
//   <dir>/tls/device-key.pem        the device private key (PKCS#8, 0600)
//   <dir>/tls/device-cert.pem       the device certificate from the hub's device CA
//   <dir>/tls/ca.pem                the device CA certificate (trust anchor for the broker and device API)
//   <dir>/tls/pending-key.pem       a key whose CSR was sent but not yet answered (0600; reused on a retry)
//   <dir>/data/                     the agent's own state (cache checkpoint, journal)
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { EDGE_ID_PATTERN, SERVICE_ID_PATTERN } from '../../shared/ids.ts';

export const KEY_MODE = 0o600;
export const FILE_MODE = 0o644;
export const DIR_MODE = 0o700;

/** Paths inside a state directory. */
export function stateLayout(stateDir: string) {
  const dir = resolve(stateDir);
  const tls = join(dir, 'tls');
  return {
    dir,
    tls,
    config: join(dir, 'edge.json'),
    enrollment: join(dir, 'enrollment.json'),
    key: join(tls, 'device-key.pem'),
    cert: join(tls, 'device-cert.pem'),
    ca: join(tls, 'ca.pem'),
    pendingKey: join(tls, 'pending-key.pem'),
    previous: join(tls, 'previous'),
    data: join(dir, 'data'),
  };
}
export type StateLayout = ReturnType<typeof stateLayout>;

/** What enrollment.json records (no secrets). */
export const EnrollmentRecord = Type.Object(
  {
    version: Type.Literal(1),
    edgeId: Type.String({ pattern: EDGE_ID_PATTERN }),
    serviceId: Type.String({ pattern: SERVICE_ID_PATTERN }),
    hubUrl: Type.String(),
    deviceApiUrl: Type.String(),
    brokerUrl: Type.String(),
    /** The other nodes of a broker cluster, as the hub told them (edge config broker.urls). */
    brokerUrls: Type.Optional(Type.Array(Type.String())),
    enrolledAt: Type.String(),
    notAfter: Type.String(),
    certFingerprint: Type.String(),
  },
  { additionalProperties: false },
);
export type EnrollmentRecord = Static<typeof EnrollmentRecord>;

/** Creates a directory (and parents) and sets it to 0700. */
export function ensureDir(path: string, mode = DIR_MODE): void {
  mkdirSync(path, { recursive: true, mode });
  chmodSync(path, mode);
}

function fsyncDir(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Writes a file atomically with the given mode; the mode is set before any byte is written. */
export function writeFileAtomic(path: string, content: string | Uint8Array, mode = FILE_MODE): void {
  const tmp = join(dirname(path), `.${Date.now().toString(36)}-${process.pid}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const buf = typeof content === 'string' ? Buffer.from(content) : content;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  chmodSync(tmp, mode); // openSync's mode is filtered by the umask
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

/** Reads a file as text, or undefined when it does not exist. */
export function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** The enrollment record, or undefined when absent or not a record (an unfinished enrollment). */
export function readEnrollmentRecord(layout: StateLayout): EnrollmentRecord | undefined {
  const text = readIfExists(layout.enrollment);
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return Value.Check(EnrollmentRecord, v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Permission bits of a file (tests and the status command). */
export function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

/** Removes a file if it exists. */
export function removeIfExists(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** True when the path exists. */
export const exists = (path: string): boolean => existsSync(path);
