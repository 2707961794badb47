// Validation of what arrives on the service log topic: one change-log entry (v1) or a batch of them
// (v2, shared/sync.ts), expanded to full entries. Size and JSON first (payloads.ts), then the schema.
// A batch's seqs are consecutive by construction (seq + index). Bad input is a Result with a stable
// code, never an exception.
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { fail, ok, type Result } from '../../shared/errors.ts';
import { entriesOf, LogMessage, type ChangeEntry } from '../../shared/sync.ts';
import { parseMqttJson } from './payloads.ts';

const check = TypeCompiler.Compile(LogMessage);

/** The entries of a log-topic payload, in order; anything off the schema is refused whole. */
export function checkLogPayload(payload: Uint8Array): Result<ChangeEntry[], 'payload_too_large' | 'validation_failed'> {
  const v = parseMqttJson(payload);
  if (!v.ok) return v;
  if (!check.Check(v.value)) {
    const first = check.Errors(v.value).First();
    return fail('validation_failed', `log message ${first ? `${first.path || '/'}: ${first.message}` : 'invalid'}`);
  }
  return ok(entriesOf(v.value));
}
