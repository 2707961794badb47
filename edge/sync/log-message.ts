// Validation of what arrives on the service log topic: one change-log entry (v1) or a batch of them
// (v2, or the compact v3, shared/sync.ts), expanded to full entries. Size and JSON first
// (payloads.ts), then the schema of the form the `v` tag names (a message without one is a v1 entry).
// A batch's seqs are consecutive by construction (seq + index); a v3 batch's count must be its number
// of entries. Bad input is a Result with a stable code, never an exception.
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { fail, ok, type Result } from '../../shared/errors.ts';
import { ChangeBatch, ChangeEntry, CHANGE_BATCH_VERSION, CompactBatch, COMPACT_BATCH_VERSION, entriesOf, type LogMessage } from '../../shared/sync.ts';
import { parseMqttJson } from './payloads.ts';

const checks = { entry: TypeCompiler.Compile(ChangeEntry), batch: TypeCompiler.Compile(ChangeBatch), compact: TypeCompiler.Compile(CompactBatch) };

type Code = 'payload_too_large' | 'validation_failed' | 'log_batch_miscounted';

type Check = { Check(v: unknown): boolean; Errors(v: unknown): { First(): { path: string; message: string } | undefined } };

function refused(c: Check, v: unknown): Result<never, Code> {
  const first = c.Errors(v).First();
  return fail('validation_failed', `log message ${first ? `${first.path || '/'}: ${first.message}` : 'invalid'}`);
}

/** The entries of a log-topic payload, in order; anything off the schema is refused whole. */
export function checkLogPayload(payload: Uint8Array): Result<ChangeEntry[], Code> {
  const parsed = parseMqttJson(payload);
  if (!parsed.ok) return parsed;
  const v = parsed.value;
  const tag = typeof v === 'object' && v !== null && 'v' in v ? (v as { v: unknown }).v : undefined;
  // One schema per form, chosen by the tag: a v3 batch of a thousand entries is not tried as v1 and v2 first.
  const c: Check = tag === COMPACT_BATCH_VERSION ? checks.compact : tag === CHANGE_BATCH_VERSION ? checks.batch : checks.entry;
  if (!c.Check(v)) return refused(c, v);
  const m = v as LogMessage;
  if ('n' in m && m.n !== m.entries.length) return fail('log_batch_miscounted', `n is ${m.n}, the batch holds ${m.entries.length} entries`);
  return ok(entriesOf(m));
}
