// The console's form and query schemas (TypeBox): one place says what each form accepts, the routes
// validate against them, and every error comes back at once, per field, in the operator's language
// (i18n.ts `fields` and `invalid`). The HTML inputs repeat the same limits for the browser's help.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { EDGE_ID_PATTERN, SERVICE_ID_PATTERN } from '../../shared/ids.ts';
import { schemaErrors } from '../http/validate.ts';

const Text = (max: number, min = 0) => Type.String({ minLength: min, maxLength: max });
const HttpUrl = Type.Union([Type.Literal(''), Type.String({ pattern: '^https?://\\S{1,2000}$', maxLength: 2008 })]);

export const ServiceForm = Type.Object({ id: Type.String({ pattern: SERVICE_ID_PATTERN }), name: Text(100, 1), webhookUrl: HttpUrl });
export const CredentialForm = Type.Object({ label: Text(64, 1) });
export const WebhookForm = Type.Object({ url: HttpUrl });
export const HolderProofForm = Type.Object({ required: Type.Union([Type.Literal('0'), Type.Literal('1')]) });
/** PIN-checked touch (#14): what a touch at the service's readers proves. */
export const TouchAssuranceForm = Type.Object({ level: Type.Union([Type.Literal('possession'), Type.Literal('pin')]) });
export const EnrollmentForm = Type.Object({
  serviceId: Type.String({ pattern: SERVICE_ID_PATTERN }),
  edgeId: Type.String({ pattern: EDGE_ID_PATTERN }),
  hours: Type.String({ pattern: '^(?:[1-9]|[1-9][0-9]|1[0-5][0-9]|16[0-8])$' }),
  allowRevoked: Type.Union([Type.Literal(''), Type.Literal('1')]),
});
/** Every irreversible action says why (kept in the audit log and on the record). */
export const ReasonForm = Type.Object({ reason: Text(200, 3) });

export const EdgeQuery = Type.Object({
  service: Type.Union([Type.Literal(''), Type.String({ pattern: SERVICE_ID_PATTERN })]),
  state: Type.Union(['', 'all', 'outdated', 'ok', 'degraded', 'stale', 'clock_unsure', 'reader_missing', 'offline', 'revoked'].map((s) => Type.Literal(s))),
  version: Text(64),
  q: Type.String({ maxLength: 64, pattern: '^[a-z0-9-]*$' }),
  sort: Type.Union(['', 'edge', 'service', 'state', 'last_seen', 'lag', 'version'].map((s) => Type.Literal(s))),
  dir: Type.Union([Type.Literal(''), Type.Literal('asc'), Type.Literal('desc')]),
  page: Type.String({ pattern: '^[0-9]{0,6}$' }),
});

export const AuditQuery = Type.Object({
  actor: Text(64),
  action: Type.String({ maxLength: 64, pattern: '^[a-z_.]*$' }),
  service: Type.Union([Type.Literal(''), Type.String({ pattern: SERVICE_ID_PATTERN })]),
  from: Type.String({ pattern: '^(\\d{4}-\\d{2}-\\d{2})?$' }),
  to: Type.String({ pattern: '^(\\d{4}-\\d{2}-\\d{2})?$' }),
  before: Type.String({ pattern: '^[0-9]{0,15}$' }),
});

export type FieldErrors = Record<string, true>;
export type Parsed<S extends TSchema> = { ok: true; value: Static<S>; raw: Record<string, string> } | { ok: false; errors: FieldErrors; raw: Record<string, string> };

/**
 * Reads the schema's fields from a form or a query (absent ones as ''), trims them, and validates.
 * `raw` is what was typed, for the form to show again on an error.
 */
export function parseFields<S extends TSchema & { properties: Record<string, TSchema> }>(schema: S, get: (name: string) => string | null | undefined): Parsed<S> {
  const raw: Record<string, string> = {};
  for (const k of Object.keys(schema.properties)) raw[k] = (get(k) ?? '').trim().slice(0, 4096);
  const errs = schemaErrors(schema, raw);
  if (errs.length === 0) return { ok: true, value: raw as Static<S>, raw };
  const errors: FieldErrors = {};
  for (const e of errs) errors[e.path.split('/')[1] || '_'] = true;
  return { ok: false, errors, raw };
}
