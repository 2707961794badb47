// One logger with named children, for the hub, the edge and the tools. Lines go to stderr as
// `time level name: message {fields}`; MYKEY_LOG_FORMAT=json gives JSON lines. Never log keys, PINs
// or identifiers: no MyKey ID, service ID or certificate serial, not even truncated (fields named
// after them are redacted anyway, REDACTED_FIELDS). test/privacy-logs.serial.test.ts searches every
// line of the demo's story for them.

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
  json?: boolean;
  write?: (line: string) => void;
}

/**
 * Field names whose values are personal identifiers: a MyKey ID, a service ID (the service's own
 * number of the holder), a certificate serial. Their values never reach a line, at any level: a
 * safety net under "no usage history" (MISSION.md), not a licence to pass them.
 */
export const REDACTED_FIELDS = /^(mykey_?ids?|service_?user_?ids?|serials?(_?hex)?|cert_?serials?)$/i;
const REDACTED = '[redacted]';

function render(v: unknown): unknown {
  if (v instanceof Error) return { error: v.message, code: (v as { code?: unknown }).code };
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

/** Creates a logger; the level comes from MYKEY_LOG_LEVEL when not given. */
export function createLogger(name: string, opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? ((process.env.MYKEY_LOG_LEVEL as LogLevel | undefined) ?? 'info');
  const json = opts.json ?? process.env.MYKEY_LOG_FORMAT === 'json';
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>) => {
    const pass = ORDER[lvl] >= ORDER[level];
    if (!pass && taps.size === 0) return;
    const f = fields ? Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, renderField(k, v)])) : undefined;
    const line = json
      ? JSON.stringify({ time: new Date().toISOString(), level: lvl, name, msg, ...f })
      : `${new Date().toISOString()} ${lvl.padEnd(5)} ${name}: ${msg}${f && Object.keys(f).length ? ' ' + JSON.stringify(f) : ''}`;
    if (pass) write(line);
    for (const t of taps) {
      try {
        t({ level: lvl, name, line });
      } catch {
        // a tap never breaks logging
      }
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (n) => createLogger(`${name}.${n}`, { level, json, write }),
  };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger('silent', { level: 'silent' });
