// The reader layer's logger: a small interface so the edge's one logger can be passed in. Messages
// never carry PINs, keys, certificates or full MyKey IDs.

/** What the reader layer logs through. */
export interface ReaderLog {
  debug(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
  error(msg: string, meta?: Record<string, unknown>): void;
}

/** Logs warnings and errors to stderr with a `[reader]` prefix; debug only when MYKEY_DEBUG is set. */
export const consoleReaderLog: ReaderLog = {
  debug: (msg, meta) => {
    if (process.env.MYKEY_DEBUG) console.error(`[reader] ${msg}`, meta ?? '');
  },
  warn: (msg, meta) => console.error(`[reader] warn: ${msg}`, meta ?? ''),
  error: (msg, meta) => console.error(`[reader] error: ${msg}`, meta ?? ''),
};

/** Logs nothing (tests that provoke errors on purpose). */
export const silentReaderLog: ReaderLog = { debug() {}, warn() {}, error() {} };
