// One logger with named children, for the hub, the edge and the tools. Lines go to stderr as
// `time level name: message {fields}`; MYKEY_LOG_FORMAT=json gives JSON lines. Never log keys, PINs
// or full identifiers: pass what is safe (a MyKey ID's first characters, a serial's hash).

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

function render(v: unknown): unknown {
  if (v instanceof Error) return { error: v.message, code: (v as { code?: unknown }).code };
  return v;
}

/** Creates a logger; the level comes from MYKEY_LOG_LEVEL when not given. */
export function createLogger(name: string, opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? ((process.env.MYKEY_LOG_LEVEL as LogLevel | undefined) ?? 'info');
  const json = opts.json ?? process.env.MYKEY_LOG_FORMAT === 'json';
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < ORDER[level]) return;
    const f = fields ? Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, render(v)])) : undefined;
    if (json) write(JSON.stringify({ time: new Date().toISOString(), level: lvl, name, msg, ...f }));
    else write(`${new Date().toISOString()} ${lvl.padEnd(5)} ${name}: ${msg}${f && Object.keys(f).length ? ' ' + JSON.stringify(f) : ''}`);
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
