// The OpenAPI 3.1 document served at /openapi.json. Routes are declared once (hub/http/router.ts)
// and become both Hono handlers and entries here, so the document cannot drift from what the hub
// accepts.
import type { TSchema } from '@sinclair/typebox';
import { DEVICE_SCHEMAS } from '../../shared/device-api.ts';
import { ERROR_CODES, type ErrorCode } from '../../shared/errors.ts';
import { ProblemSchema, SCHEMAS } from '../../shared/messages.ts';

/** How a route appears in the document. */
export interface RouteDoc {
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  summary: string;
  tag: string;
  description?: string;
  request?: TSchema;
  responses: Record<number, { description: string; schema?: TSchema }>;
  /** Error codes this route can answer with (documented as problem JSON). */
  errors?: readonly ErrorCode[];
}

/** The named schemas of the public app's document (the device app names DEVICE_SCHEMAS). */
export const PUBLIC_SCHEMAS: Record<string, TSchema> = SCHEMAS;
export { DEVICE_SCHEMAS };

/** A document; `schemas` are the named components routes refer to (problem JSON is always there). */
export function createOpenApi(info: { title: string; version: string; description?: string }, schemas: Record<string, TSchema> = PUBLIC_SCHEMAS) {
  const specs: RouteDoc[] = [];
  const components: Record<string, TSchema> = { ...schemas, Problem: ProblemSchema };
  const nameOf = new Map<TSchema, string>(Object.entries(components).map(([k, v]) => [v, k]));
  const ref = (s: TSchema) => (nameOf.has(s) ? { $ref: `#/components/schemas/${nameOf.get(s)}` } : s);

  return {
    /** Adds a route to the document (hub/http/router.ts registers the handler). */
    add(doc: RouteDoc): void {
      specs.push(doc);
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
          schemas: components,
          'x-error-codes': Object.fromEntries(Object.entries(ERROR_CODES).map(([k, v]) => [k, v])),
        },
      };
    },
  };
}

export type OpenApi = ReturnType<typeof createOpenApi>;
