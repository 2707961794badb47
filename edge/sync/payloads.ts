// Validation of everything the edge receives from the hub, compiled once: MQTT payloads (size,
// JSON, schema) and the snapshot body of the device HTTP API (the other bodies are checked by the
// shared hub client against shared/device-api.ts). Bad input is a Result with a stable code, never
// an exception, so one bad message cannot stop the session.
import { FormatRegistry, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { fail, ok, type Result } from '../../shared/errors.ts';
import { ChangeEntry, EdgeCommand, MAX_SYNC_PAYLOAD_BYTES, Snapshot } from '../../shared/sync.ts';

// RFC 3339 5.6 date-time, as the sync schemas declare it (TypeBox checks formats only once registered).
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => DATE_TIME.test(v) && Number.isFinite(Date.parse(v)));

type Code = 'payload_too_large' | 'validation_failed';

function compiled<T extends TSchema>(schema: T): TypeCheck<T> {
  return TypeCompiler.Compile(schema);
}

const checks = {
  entry: compiled(ChangeEntry),
  command: compiled(EdgeCommand),
  snapshot: compiled(Snapshot),
};

function checked<T extends TSchema>(c: TypeCheck<T>, v: unknown, what: string): Result<Static<T>, Code> {
  if (c.Check(v)) return ok(v);
  const first = c.Errors(v).First();
  return fail('validation_failed', `${what} ${first ? `${first.path || '/'}: ${first.message}` : 'invalid'}`);
}

/** Parses an MQTT payload as JSON, refusing anything above MAX_SYNC_PAYLOAD_BYTES. */
export function parseMqttJson(payload: Uint8Array): Result<unknown, Code> {
  if (payload.byteLength > MAX_SYNC_PAYLOAD_BYTES) return fail('payload_too_large', `payload of ${payload.byteLength} bytes`);
  try {
    return ok(JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')));
  } catch {
    return fail('validation_failed', 'payload is not JSON');
  }
}

/** A change-log entry from the service log topic. */
export function checkEntryPayload(payload: Uint8Array): Result<ChangeEntry, Code> {
  const v = parseMqttJson(payload);
  return v.ok ? checked(checks.entry, v.value, 'entry') : v;
}

/** A command from the edge's command topic. */
export function checkCommandPayload(payload: Uint8Array): Result<EdgeCommand, Code> {
  const v = parseMqttJson(payload);
  return v.ok ? checked(checks.command, v.value, 'command') : v;
}

/** Already-parsed bodies of the device HTTP API. */
export const checkEntry = (v: unknown) => checked(checks.entry, v, 'entry');
export const checkSnapshot = (v: unknown) => checked(checks.snapshot, v, 'snapshot');
