// Config loading shared by the hub and the edge: defaults from the schema, a JSON file, environment
// overrides derived from the schema (PREFIX_SECTION_KEY), and validation with every error at once.
import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import type { Static, TSchema } from '@sinclair/typebox';
import { MyKeyError } from './errors.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (!isObject(base) || !isObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
  return out;
}

/** Environment variable name for a config path: ['http', 'port'] -> MYKEY_HUB_HTTP_PORT. */
export function envName(prefix: string, path: string[]): string {
  return [prefix, ...path.map((p) => p.replace(/([a-z])([A-Z])/g, '$1_$2'))].join('_').toUpperCase();
}

/** Walks the schema's leaves and reads the matching environment variables. */
function envOverrides(schema: TSchema, prefix: string, env: NodeJS.ProcessEnv, path: string[] = []): { value: Record<string, unknown>; errors: string[] } {
  const value: Record<string, unknown> = {};
  const errors: string[] = [];
  const props = (schema as { properties?: Record<string, TSchema> }).properties ?? {};
  for (const [key, sub] of Object.entries(props)) {
    const p = [...path, key];
    if ((sub as { type?: string }).type === 'object' && (sub as { properties?: unknown }).properties) {
      const nested = envOverrides(sub, prefix, env, p);
      if (Object.keys(nested.value).length) value[key] = nested.value;
      errors.push(...nested.errors);
      continue;
    }
    const name = envName(prefix, p);
    const raw = env[name];
    if (raw === undefined) continue;
    const type = (sub as { type?: string }).type;
    if (type === 'integer' || type === 'number') {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) errors.push(`${name}: expected a number, got "${raw}"`);
      else value[key] = n;
    } else if (type === 'boolean') {
      if (!/^(true|false|1|0)$/i.test(raw)) errors.push(`${name}: expected true or false, got "${raw}"`);
      else value[key] = /^(true|1)$/i.test(raw);
    } else if (type === 'array') {
      value[key] = raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    } else value[key] = raw;
  }
  return { value, errors };
}

export interface LoadConfigOptions {
  /** Path of a JSON config file (optional). */
  file?: string;
  /** Values that win over the file (from command-line flags, tests). */
  overrides?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Environment prefix, e.g. MYKEY_HUB. */
  envPrefix: string;
}

/**
 * Loads a config: schema defaults < file < environment < overrides. Every problem is reported at once
 * in one MyKeyError('config_invalid') whose message lists them, one per line.
 */
export function loadConfig<S extends TSchema>(schema: S, opts: LoadConfigOptions): Static<S> {
  const errors: string[] = [];
  let fromFile: unknown = {};
  if (opts.file) {
    try {
      fromFile = JSON.parse(readFileSync(opts.file, 'utf8')) as Json;
    } catch (e) {
      errors.push(`${opts.file}: ${(e as Error).message}`);
    }
  }
  const env = envOverrides(schema, opts.envPrefix, opts.env ?? process.env);
  errors.push(...env.errors);
  let merged = deepMerge(deepMerge(fromFile, env.value), opts.overrides ?? {});
  merged = Value.Default(schema, Value.Clone(merged));
  for (const e of Value.Errors(schema, merged)) errors.push(`${e.path || '/'}: ${e.message}${e.value !== undefined && typeof e.value !== 'object' ? ` (got ${JSON.stringify(e.value)})` : ''}`);
  if (errors.length) {
    throw new MyKeyError('config_invalid', `invalid configuration:\n  - ${errors.join('\n  - ')}`, { details: { errors } });
  }
  return merged as Static<S>;
}

/** One documented config key. */
export interface ConfigKey {
  path: string;
  env: string;
  type: string;
  default: unknown;
  description: string;
}

/** Every leaf of a config schema with its env variable, default and description (for docs). */
export function describeConfig(schema: TSchema, prefix: string, path: string[] = []): ConfigKey[] {
  const out: ConfigKey[] = [];
  const props = (schema as { properties?: Record<string, TSchema> }).properties ?? {};
  for (const [key, sub] of Object.entries(props)) {
    const p = [...path, key];
    const s = sub as { type?: string; properties?: unknown; default?: unknown; description?: string; anyOf?: { const?: unknown }[] };
    if (s.type === 'object' && s.properties) {
      out.push(...describeConfig(sub, prefix, p));
      continue;
    }
    const type = s.anyOf ? s.anyOf.map((a) => JSON.stringify(a.const)).join(' | ') : s.type === 'array' ? 'list' : (s.type ?? 'value');
    out.push({ path: p.join('.'), env: envName(prefix, p), type, default: s.default, description: s.description ?? '' });
  }
  return out;
}
