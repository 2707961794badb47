// Request body validation at the HTTP boundary: content type, size (bodyLimit runs before), JSON
// syntax, then the schema, with every schema error reported at once.
import type { Context, MiddlewareHandler } from 'hono';
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { problem } from './problem.ts';
import type { HubEnv } from './router.ts';

/** The body limit when the hub's config does not set one (http.maxBodyBytes). */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

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

/** The node-server request behind a context, when there is one (not in-process `app.request()`). */
function incomingOf(env: unknown): HubEnv['Bindings']['incoming'] {
  return env !== null && typeof env === 'object' && 'incoming' in env ? (env as HubEnv['Bindings']).incoming : undefined;
}

/** Thrown by readBodyText when a body is larger than allowed. */
class BodyTooLarge extends Error {}

/**
 * The request body as text, at most `maxBytes`. Under @hono/node-server it reads the Node request
 * stream directly: building a WHATWG Request and its body stream (what `c.req.text()` does) costs more
 * than the rest of a registration's HTTP handling. Elsewhere (in-process `app.request()`) it reads the
 * Request. Either way the limit holds with or without Content-Length.
 */
export async function readBodyText(c: Pick<Context, 'env' | 'req'>, maxBytes: number): Promise<string> {
  const declared = c.req.header('content-length');
  if (declared !== undefined && Number(declared) > maxBytes) throw new BodyTooLarge();
  const incoming = incomingOf(c.env);
  if (incoming && !incoming.readableEnded && incoming.readableFlowing === null) return readIncoming(incoming, maxBytes);
  const source = (c.req.raw.body as unknown as AsyncIterable<Uint8Array> | null) ?? null;
  if (!source) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of source) {
    size += chunk.length;
    if (size > maxBytes) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/**
 * The Node request's body, from its 'data' and 'end' events: one promise per body, where an async
 * iterator over the stream makes one per chunk and more (a registration's body is one chunk). Too
 * large, the request is destroyed, as leaving a for-await loop over it would.
 */
function readIncoming(incoming: NonNullable<HubEnv['Bindings']['incoming']>, maxBytes: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (e?: Error) => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('close', onClose);
      if (e) reject(e);
      else resolve(Buffer.concat(chunks, size).toString('utf8'));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        settle(new BodyTooLarge());
        incoming.destroy();
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => settle();
    const onError = (e: Error) => settle(e);
    // 'close' before 'end': the client went away mid-body.
    const onClose = () => settle(new Error('the request closed before its body ended'));
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
    incoming.on('close', onClose);
  });
}

/** Middleware: parses and validates the JSON body; handlers read it with `c.get('body')`. */
export function jsonBody<S extends TSchema>(
  schema: S,
  { maxBytes = DEFAULT_MAX_BODY_BYTES }: { maxBytes?: number } = {},
): MiddlewareHandler<{ Bindings: HubEnv['Bindings']; Variables: { body: Static<S> } }> {
  return async (c, next) => {
    const type = c.req.header('content-type') ?? '';
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      return problem(c, 'unsupported_media_type', `send application/json, not ${type || 'no content type'}`);
    }
    const limit = maxBytes;
    let text: string;
    try {
      text = await readBodyText(c, limit);
    } catch (e) {
      if (e instanceof BodyTooLarge) return problem(c, 'payload_too_large', `the body is larger than ${limit} bytes`);
      return problem(c, 'bad_request', 'the body could not be read');
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return problem(c, 'bad_request', 'the body is not valid JSON');
    }
    const errors = schemaErrors(schema, value);
    if (errors.length) return problem(c, 'validation_failed', errors.map((e) => `${e.path}: ${e.message}`).join('; '), { errors });
    c.set('body', value as Static<S>);
    await next();
  };
}

export type { Context };
