// Online backup and restore of a hub's state: the SQLite database (through SQLite's online backup API,
// so the hub keeps serving while it is copied, page by page) and the files beside it that the database
// alone cannot rebuild: the device CA (its key signs every reader's certificate) and the CRLs last
// applied. A backup is a directory with a manifest that names every file with its size and SHA-256, so
// a restore refuses a backup that is incomplete or altered instead of starting a hub on it.
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { MyKeyError } from '../../shared/errors.ts';

/** Folders of the data directory that a backup carries besides the database. */
const STATE_DIRS = ['device-ca', 'crl'] as const;
const MANIFEST = 'manifest.json';
const DB_FILE = 'hub.sqlite';
const FORMAT = 'mykey-hub-backup/1';

export interface BackupManifest {
  format: typeof FORMAT;
  createdAt: string;
  hubVersion: string;
  /** Highest schema migration applied in the copied database. */
  schemaVersion: number;
  files: { path: string; bytes: number; sha256: string }[];
}

export type BackupProgress = (phase: 'database' | 'files' | 'verify', done: number, total: number) => void;

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else if (!name.endsWith('.tmp')) out.push(p);
  }
  return out;
}

/**
 * Writes a backup of the hub whose database is `dbPath` and data directory `dataDir` into `outDir`
 * (which must not exist). Safe while the hub runs: the database is copied with SQLite's online backup,
 * which restarts a step when the hub writes meanwhile and yields between steps.
 */
export async function backupHub(opts: { dbPath: string; dataDir: string; outDir: string; hubVersion: string; progress?: BackupProgress; now?: () => Date }): Promise<BackupManifest> {
  const { dbPath, dataDir, outDir, progress } = opts;
  if (!existsSync(dbPath)) throw new MyKeyError('not_found', `no hub database at ${dbPath}`);
  if (existsSync(outDir)) throw new MyKeyError('conflict', `${outDir} already exists; a backup goes into a new directory`);
  // Written under a temporary name and renamed at the end: a backup cut short never looks complete.
  const work = `${outDir}.partial`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true, mode: 0o700 });
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    await db.backup(join(work, DB_FILE), {
      progress: ({ totalPages, remainingPages }) => {
        progress?.('database', totalPages - remainingPages, totalPages);
        return 256; // pages per step: small steps keep the hub's writes flowing
      },
    });
  } finally {
    db.close();
  }
  progress?.('database', 1, 1);
  const copied = new Database(join(work, DB_FILE), { readonly: true });
  let schemaVersion = 0;
  try {
    schemaVersion = (copied.prepare('SELECT max(version) FROM schema_migrations').pluck().get() as number | null) ?? 0;
    const check = copied.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new MyKeyError('internal', `the copied database fails its integrity check: ${String(check)}`);
  } finally {
    copied.close();
  }
  const extra = STATE_DIRS.flatMap((d) => filesUnder(join(dataDir, d)));
  extra.forEach((src, i) => {
    const dst = join(work, relative(dataDir, src));
    mkdirSync(dirname(dst), { recursive: true, mode: 0o700 });
    cpSync(src, dst, { preserveTimestamps: true });
    chmodSync(dst, statSync(src).mode & 0o777);
    progress?.('files', i + 1, extra.length);
  });
  const files = [DB_FILE, ...extra.map((f) => relative(dataDir, f))].map((path) => {
    const p = join(work, path);
    return { path, bytes: statSync(p).size, sha256: sha256File(p) };
  });
  const manifest: BackupManifest = { format: FORMAT, createdAt: (opts.now?.() ?? new Date()).toISOString(), hubVersion: opts.hubVersion, schemaVersion, files };
  writeFileSync(join(work, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  renameSync(work, outDir);
  return manifest;
}

/** Reads and checks a backup's manifest and every file it names; throws with the first problem. */
export function verifyBackup(dir: string, progress?: BackupProgress): BackupManifest {
  const path = join(dir, MANIFEST);
  if (!existsSync(path)) throw new MyKeyError('not_found', `${dir} is not a hub backup (no ${MANIFEST}; an interrupted backup is left as <dir>.partial)`);
  let m: BackupManifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as BackupManifest;
  } catch (cause) {
    throw new MyKeyError('bad_request', `${path} is not valid JSON`, { cause });
  }
  if (m?.format !== FORMAT || !Array.isArray(m.files)) throw new MyKeyError('bad_request', `${path} is not a ${FORMAT} manifest`);
  if (!m.files.some((f) => f.path === DB_FILE)) throw new MyKeyError('bad_request', `the backup has no ${DB_FILE}`);
  m.files.forEach((f, i) => {
    if (typeof f.path !== 'string' || f.path.startsWith('/') || f.path.split(/[\\/]/).includes('..')) throw new MyKeyError('bad_request', `the manifest names an unsafe path: ${String(f.path)}`);
    const p = join(dir, f.path);
    if (!existsSync(p)) throw new MyKeyError('not_found', `the backup lacks ${f.path}`);
    if (statSync(p).size !== f.bytes || sha256File(p) !== f.sha256) throw new MyKeyError('bad_request', `${f.path} does not match the manifest (altered or truncated)`);
    progress?.('verify', i + 1, m.files.length);
  });
  return m;
}

/**
 * Restores a verified backup into `dataDir` with the database at `dbPath`. Refuses to overwrite an
 * existing database unless `force`; the hub must not be running on that data directory.
 */
export function restoreHub(opts: { backupDir: string; dbPath: string; dataDir: string; force?: boolean; progress?: BackupProgress }): BackupManifest {
  const { backupDir, dbPath, dataDir, force, progress } = opts;
  const m = verifyBackup(backupDir, progress);
  if (existsSync(dbPath) && !force) throw new MyKeyError('conflict', `${dbPath} exists; restore into a new data directory, or pass --force with the hub stopped`);
  mkdirSync(dataDir, { recursive: true });
  for (const d of STATE_DIRS) if (force) rmSync(join(dataDir, d), { recursive: true, force: true });
  // A WAL or shared-memory file left from an earlier database would be replayed over the restored one.
  for (const suffix of ['-wal', '-shm']) rmSync(`${dbPath}${suffix}`, { force: true });
  m.files.forEach((f, i) => {
    const src = join(backupDir, f.path);
    const dst = f.path === DB_FILE ? dbPath : join(dataDir, f.path);
    mkdirSync(dirname(dst), { recursive: true, mode: 0o700 });
    // Copied beside and renamed: a restore cut short leaves no half-written database.
    cpSync(src, `${dst}.tmp`);
    chmodSync(`${dst}.tmp`, statSync(src).mode & 0o777);
    renameSync(`${dst}.tmp`, dst);
    progress?.('files', i + 1, m.files.length);
  });
  return m;
}
