// One logger with named children, for the hub, the edge and the tools, with pino underneath. Lines go
// to stderr: JSON lines in production (what journald, Loki or any collector parses), the human form
// `time level name: message {fields}` when stderr is a terminal or NODE_ENV=development.
// MYKEY_LOG_FORMAT=json or =pretty chooses either way. Never log keys, PINs or identifiers: no MyKey
// ID, service ID or certificate serial, not even truncated (fields named after them are redacted
// anyway: REDACTED_FIELDS at the top level, pino's redact paths one level down).
// test/privacy-logs.serial.test.ts searches every line of the demo's story for them.
import { pino, stdTimeFunctions, type Logger as PinoLogger } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

/** A named logger. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(name: string): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** JSON lines (true) or the human form (false); default: see logFormatIsJson. */
  json?: boolean;
  write?: (line: string) => void;
}

/**
 * Field names whose values are personal identifiers or secrets: a MyKey ID, a service ID (the
 * service's own number of the holder), a certificate serial, a PIN, a token, a password. Their
 * values never reach a line, at any level: a safety net under "no usage history" (MISSION.md), not a
 * licence to pass them.
 */
export const REDACTED_FIELDS = /^(mykey_?ids?|service_?user_?ids?|serials?(_?hex)?|cert_?serials?|pins?|tokens?|passwords?)$/i;
const REDACTED = '[redacted]';

/**
 * The same names as pino redact paths (a second net at the top level). One level down, inside an
 * object passed as a field, renderField redacts them: pino's wildcard paths (`*.mykeyId`) cost
 * seven times a plain line.
 */
export const REDACT_PATHS: readonly string[] = [
  'mykeyId',
  'mykey_id',
  'mykeyIds',
  'serviceUserId',
  'service_user_id',
  'serviceUserIds',
  'serial',
  'serialHex',
  'serial_hex',
  'certSerial',
  'cert_serial',
  'pin',
  'token',
  'password',
];

/**
 * The line format when none is given: MYKEY_LOG_FORMAT=json|pretty wins; otherwise the human form
 * on a terminal or in development, JSON lines everywhere else (a service under systemd).
 */
export function logFormatIsJson(env: NodeJS.ProcessEnv = process.env, tty = process.stderr.isTTY === true): boolean {
  const f = env.MYKEY_LOG_FORMAT;
  if (f === 'json') return true;
  if (f === 'pretty' || f === 'text') return false;
  if (env.NODE_ENV === 'development') return false;
  return !tty;
}

function render(v: unknown, depth = 0): unknown {
  if (v instanceof Error) return { error: v.message, code: (v as { code?: unknown }).code };
  if (depth === 0 && v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const o = v as Record<string, unknown>;
    if (Object.keys(o).some((k) => REDACTED_FIELDS.test(k)))
      return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, REDACTED_FIELDS.test(k) && x !== undefined && x !== null ? REDACTED : render(x, 1)]));
  }
  return v;
}

function renderField(k: string, v: unknown): unknown {
  return REDACTED_FIELDS.test(k) && v !== undefined && v !== null ? REDACTED : render(v);
}

/** One log record as every tap sees it. */
export interface LogRecord {
  level: Exclude<LogLevel, 'silent'>;
  name: string;
  line: string;
}
const taps = new Set<(r: LogRecord) => void>();

/**
 * Sees every record any logger makes, at every level, whether or not that logger's level lets it
 * through (tests that search all lines for identifiers). Returns the function that removes the tap.
 */
export function tapLogs(fn: (r: LogRecord) => void): () => void {
  taps.add(fn);
  return () => void taps.delete(fn);
}

/** The human form of one pino JSON line: `time level name: message {fields}`. */
function human(jsonLine: string): string {
  const { time, level, name, msg, ...rest } = JSON.parse(jsonLine) as Record<string, unknown>;
  const fields = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
  return `${String(time)} ${String(level).padEnd(5)} ${String(name)}: ${String(msg)}${fields}`;
}

// The default destination, stderr, gets the lines of one turn of the event loop in one write: a hub
// logs a line per request (the access log), and a write(2) per line, with the stream machinery
// around it, cost more than the rest of a registration's logging. Order is kept; pending lines are
// written at once past 64 KiB, and before the process exits ('exit' also follows an uncaught
// exception), so a line is delayed by at most one turn and never lost to a normal or failing exit.
let stderrPending = '';
let stderrScheduled = false;
let stderrExitHook = false;
function flushStderr(): void {
  stderrScheduled = false;
  if (stderrPending === '') return;
  const s = stderrPending;
  stderrPending = '';
  process.stderr.write(s);
}
function writeStderr(line: string): void {
  stderrPending += line + '\n';
  if (stderrPending.length >= 64 * 1024) return void flushStderr();
  if (stderrScheduled) return;
  stderrScheduled = true;
  // unref: pending lines never keep a process alive; the 'exit' hook writes them.
  setImmediate(flushStderr).unref();
  if (!stderrExitHook) {
    stderrExitHook = true;
    process.on('exit', flushStderr);
  }
}

/** Creates a logger; the level comes from MYKEY_LOG_LEVEL when not given. */
export function createLogger(name: string, opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? (process.env.MYKEY_LOG_LEVEL as LogLevel | undefined) ?? 'info';
  const json = opts.json ?? logFormatIsJson();
  const write = opts.write ?? writeStderr;
  // pino itself lets every level through: the level is applied below, so that a tap still sees the
  // records the level drops. pino writes to the destination synchronously, inside the call that
  // logs, so `pending` always belongs to the record being written.
  let pending: { lvl: Exclude<LogLevel, 'silent'>; pass: boolean; name: string } | undefined;
  const destination = {
    write(s: string) {
      const rec = pending;
      if (!rec) return;
      const jsonLine = s.endsWith('\n') ? s.slice(0, -1) : s;
      const line = json ? jsonLine : human(jsonLine);
      if (rec.pass) write(line);
      for (const t of taps) {
        try {
          t({ level: rec.lvl, name: rec.name, line });
        } catch {
          // a tap never breaks logging
        }
      }
    },
  };
  // One pino root per createLogger; named children are pino children binding their name.
  const root: PinoLogger = pino(
    {
      level: 'debug',
      base: undefined,
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    },
    destination,
  );
  const named = (n: string): Logger => {
    const p = root.child({ name: n });
    const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>) => {
      const pass = ORDER[lvl] >= ORDER[level];
      if (!pass && taps.size === 0) return;
      const f: Record<string, unknown> = {};
      if (fields) for (const k in fields) f[k] = renderField(k, fields[k]);
      pending = { lvl, pass, name: n };
      try {
        p[lvl](f, msg);
      } finally {
        pending = undefined;
      }
    };
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (c) => named(`${n}.${c}`),
    };
  };
  return named(name);
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger('silent', { level: 'silent' });
