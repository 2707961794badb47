// Request body validation at the HTTP boundary: content type, size (bodyLimit runs before), JSON
// syntax, then the schema, with every schema error reported at once.
import type { Context, MiddlewareHandler } from 'hono';
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { MyKeyError } from '../../shared/errors.ts';
import { problem } from './problem.ts';

const compiled = new WeakMap<TSchema, ReturnType<typeof TypeCompiler.Compile>>();

function checkerFor(schema: TSchema) {
  let c = compiled.get(schema);
  if (!c) {
    c = TypeCompiler.Compile(schema);
    compiled.set(schema, c);
  }
  return c;
}

/** Validates a value against a schema; returns the per-field errors (empty when valid). */
export function schemaErrors(schema: TSchema, value: unknown): { path: string; message: string }[] {
  const checker = checkerFor(schema);
  if (checker.Check(value)) return [];
  return [...checker.Errors(value)].slice(0, 20).map((e) => ({ path: e.path || '/', message: e.message }));
}

/** Middleware: parses and validates the JSON body; handlers read it with `c.get('body')`. */
export function jsonBody<S extends TSchema>(schema: S): MiddlewareHandler<{ Variables: { body: Static<S> } }> {
  return async (c, next) => {
    const type = c.req.header('content-type') ?? '';
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      return problem(c, 'unsupported_media_type', `send application/json, not ${type || 'no content type'}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(await c.req.text());
    } catch {
      return problem(c, 'bad_request', 'the body is not valid JSON');
    }
    const errors = schemaErrors(schema, value);
    if (errors.length) return problem(c, 'validation_failed', errors.map((e) => `${e.path}: ${e.message}`).join('; '), { errors });
    c.set('body', value as Static<S>);
    await next();
  };
}

/** Throws a MyKeyError('validation_failed') when `value` does not match (for non-HTTP boundaries). */
export function assertSchema<S extends TSchema>(schema: S, value: unknown, what: string): Static<S> {
  const errors = schemaErrors(schema, value);
  if (errors.length) throw new MyKeyError('validation_failed', `${what}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
  return value as Static<S>;
}

export type { Context };
