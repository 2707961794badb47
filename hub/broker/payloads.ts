// Validation of what edges publish, at the broker boundary: size, JSON, schema, and that the
// status speaks for the edge that sent it.
import { FormatRegistry } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { fail, ok, type Result } from '../../shared/errors.ts';
import { EdgeStatus, MAX_SYNC_PAYLOAD_BYTES } from '../../shared/sync.ts';
import type { EdgeIdentity } from './identity.ts';

// RFC 3339 5.6 date-time, as the sync schemas declare it (TypeBox checks formats only once registered).
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => DATE_TIME.test(v) && Number.isFinite(Date.parse(v)));

const statusChecker = TypeCompiler.Compile(EdgeStatus);

function json(payload: Buffer | Uint8Array): Result<unknown, 'payload_too_large' | 'validation_failed'> {
  if (payload.byteLength > MAX_SYNC_PAYLOAD_BYTES) return fail('payload_too_large', `payload of ${payload.byteLength} bytes`);
  try {
    return ok(JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')));
  } catch {
    return fail('validation_failed', 'payload is not JSON');
  }
}

/** An edge's status payload: valid EdgeStatus whose edgeId and serviceId are the sender's own. */
export function checkStatusPayload(id: EdgeIdentity, payload: Buffer | Uint8Array): Result<EdgeStatus, 'payload_too_large' | 'validation_failed' | 'device_id_mismatch'> {
  const v = json(payload);
  if (!v.ok) return v;
  if (!statusChecker.Check(v.value)) {
    const first = statusChecker.Errors(v.value).First();
    return fail('validation_failed', `status ${first ? `${first.path || '/'}: ${first.message}` : 'invalid'}`);
  }
  const s = v.value;
  if (s.edgeId !== id.edgeId || s.serviceId !== id.serviceId) return fail('device_id_mismatch', 'the status speaks for another edge or service');
  return ok(s);
}

/** A command reply: a JSON object in the reply envelope of shared/errors.ts (`ok`, optional `transaction`). */
export function checkReplyPayload(payload: Buffer | Uint8Array): Result<true, 'payload_too_large' | 'validation_failed'> {
  const v = json(payload);
  if (!v.ok) return v;
  const r = v.value as { ok?: unknown; transaction?: unknown } | null;
  if (typeof r !== 'object' || r === null || Array.isArray(r) || typeof r.ok !== 'boolean') return fail('validation_failed', 'reply is not an envelope');
  if (r.transaction !== undefined && (typeof r.transaction !== 'string' || r.transaction.length > 64)) return fail('validation_failed', 'reply transaction');
  return ok(true);
}
