// Routes are declared once, with their schemas, and become both Hono handlers and the OpenAPI 3.1
// document served at /openapi.json, so the document cannot drift from what the hub accepts.
import type { Hono, MiddlewareHandler, Handler, Env } from 'hono';
import type { TSchema } from '@sinclair/typebox';
import { ERROR_CODES, type ErrorCode } from '../../shared/errors.ts';
import { SCHEMAS } from '../../shared/messages.ts';

export interface RouteSpec {
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  summary: string;
  tag: string;
  description?: string;
  request?: TSchema;
  responses: Record<number, { description: string; schema?: TSchema }>;
  /** Error codes this route can answer with (documented as problem JSON). */
  errors?: ErrorCode[];
}

export function createOpenApi(info: { title: string; version: string; description?: string }) {
  const specs: RouteSpec[] = [];
  const nameOf = new Map<TSchema, string>(Object.entries(SCHEMAS).map(([k, v]) => [v, k]));
  const ref = (s: TSchema) => (nameOf.has(s) ? { $ref: `#/components/schemas/${nameOf.get(s)}` } : s);

  return {
    /** Registers a route on the app and in the document. */
    route<E extends Env>(app: Hono<E>, spec: RouteSpec, ...handlers: (MiddlewareHandler<any> | Handler<any>)[]): void {
      specs.push(spec);
      const honoPath = spec.path.replace(/\{(\w+)\}/g, ':$1');
      (app as any)[spec.method](honoPath, ...handlers);
    },
    /** The OpenAPI 3.1 document. */
    document(): Record<string, unknown> {
      const paths: Record<string, Record<string, unknown>> = {};
      for (const s of specs) {
        const responses: Record<string, unknown> = {};
        for (const [status, r] of Object.entries(s.responses)) {
          responses[status] = { description: r.description, ...(r.schema ? { content: { 'application/json': { schema: ref(r.schema) } } } : {}) };
        }
        const byStatus = new Map<number, ErrorCode[]>();
        for (const code of s.errors ?? []) {
          const st = ERROR_CODES[code].status;
          byStatus.set(st, [...(byStatus.get(st) ?? []), code]);
        }
        for (const [st, codes] of byStatus) {
          responses[String(st)] = {
            description: codes.map((c) => `\`${c}\`: ${ERROR_CODES[c].title}`).join('; '),
            content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
          };
        }
        paths[s.path] ??= {};
        paths[s.path][s.method] = {
          summary: s.summary,
          tags: [s.tag],
          ...(s.description ? { description: s.description } : {}),
          ...(s.request ? { requestBody: { required: true, content: { 'application/json': { schema: ref(s.request) } } } } : {}),
          responses,
        };
      }
      return {
        openapi: '3.1.0',
        info,
        paths,
        components: {
          schemas: SCHEMAS,
          'x-error-codes': Object.fromEntries(Object.entries(ERROR_CODES).map(([k, v]) => [k, v])),
        },
      };
    },
  };
}

export type OpenApi = ReturnType<typeof createOpenApi>;
