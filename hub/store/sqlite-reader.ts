// A read-only SQLite connection on a worker thread of its own (hub/store/snapshot-repo.ts): a read of
// hundreds of thousands of rows (a national service's snapshot) runs there, beside the event loop, so
// the hub's requests are answered meanwhile and two such connections read two halves at once.
//
// The worker is plain JavaScript given as source (`eval`): it needs nothing but better-sqlite3, whose
// path is resolved here, so it runs the same from the TypeScript sources and from the esbuild bundle
// (scripts/build.ts), which has no file for it. It only prepares and runs the statements it is sent
// (statements cached by text) on a connection opened read-only; every SQL text is in the caller.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How the worker answers a statement: rows as objects, rows as arrays, one row, or no rows. */
type Mode = 'all' | 'raw' | 'get' | 'run';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
db.pragma('cache_size = -32768');
db.pragma('mmap_size = 1073741824');
const statements = new Map();
parentPort.on('message', (m) => {
  if (m.close) { db.close(); parentPort.close(); return; }
  try {
    let st = statements.get(m.sql);
    if (!st) { st = db.prepare(m.sql); statements.set(m.sql, st); }
    let result;
    if (m.mode === 'run') { st.run(...m.params); result = null; }
    else if (m.mode === 'raw') result = st.raw(true).all(...m.params);
    else if (m.mode === 'get') result = st.raw(false).get(...m.params);
    else result = st.raw(false).all(...m.params);
    // Blobs (a page of JSON) move to the other thread instead of being copied, when they own their memory.
    const transfer = [];
    const rows = Array.isArray(result) ? result : [result];
    for (const row of rows) if (row && typeof row === 'object') for (const v of Object.values(row))
      if (Buffer.isBuffer(v) && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength && !transfer.includes(v.buffer)) transfer.push(v.buffer);
    parentPort.postMessage({ id: m.id, result }, transfer);
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: { message: String((e && e.message) || e), code: e && e.code } });
  }
});
`;

/** An error of the reader's statement, with SQLite's code. */
class ReaderError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Blobs arrive as Uint8Array (structured clone): made Buffers again, on the same memory. */
function buffers(v: unknown): unknown {
  if (v instanceof Uint8Array && !Buffer.isBuffer(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = buffers(v[i]);
    return v;
  }
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = buffers(o[k]);
  }
  return v;
}

export interface SqliteReader {
  /** Rows as objects. */
  all<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Rows as arrays of values (no object per row). */
  raw<T extends unknown[]>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined>;
  /** A statement without rows (BEGIN, ROLLBACK). */
  run(sql: string, params?: readonly unknown[]): Promise<void>;
  /** Closes the connection and ends the worker. */
  close(): Promise<void>;
}

/** Opens `file` read-only on a new worker thread (which does not keep the process alive). */
export function openSqliteReader(file: string): SqliteReader {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, file } });
  worker.unref();
  let next = 0;
  let dead: Error | undefined;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const fail = (e: Error) => {
    dead = e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  worker.on('message', (m: { id: number; result?: unknown; error?: { message: string; code?: string } }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new ReaderError(m.error.message, m.error.code));
    else p.resolve(buffers(m.result));
  });
  worker.on('error', (e) => fail(e));
  worker.on('exit', (code) => fail(new Error(`the SQLite reader thread exited (${code})`)));

  function call(mode: Mode, sql: string, params: readonly unknown[] = []): Promise<unknown> {
    if (dead) return Promise.reject(dead);
    const id = next++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, mode, sql, params });
    });
  }

  return {
    all: <T>(sql: string, params?: readonly unknown[]) => call('all', sql, params) as Promise<T[]>,
    raw: <T extends unknown[]>(sql: string, params?: readonly unknown[]) => call('raw', sql, params) as Promise<T[]>,
    get: async <T>(sql: string, params?: readonly unknown[]) => ((await call('get', sql, params)) ?? undefined) as T | undefined,
    run: async (sql: string, params?: readonly unknown[]) => void (await call('run', sql, params)),
    async close() {
      if (dead) return;
      const exited = new Promise<void>((r) => worker.once('exit', () => r()));
      worker.postMessage({ close: true });
      // A worker that does not end by itself (a statement still running) is ended.
      const timer = setTimeout(() => void worker.terminate(), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}
