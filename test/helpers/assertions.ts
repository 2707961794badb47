// Assertions the tests share beyond uvu's own.
import * as assert from 'uvu/assert';
import { MyKeyError } from '../../shared/errors.ts';

/** Awaits `p` and asserts it rejects with a MyKeyError of `code`; returns that error. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<MyKeyError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, MyKeyError);
    assert.is((e as MyKeyError).code, code, (e as Error).message);
    return e as MyKeyError;
  }
  throw new Error(`expected a rejection with ${code}`);
}

/** The MyKeyError code `p` rejects with, 'resolved', or what else it threw: for tables of refusals. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e instanceof MyKeyError ? e.code : `not a MyKeyError: ${String(e)}`;
  }
}

/** Asserts that the promise rejects with an error matching `m` (a pattern on its message, or a predicate). */
export async function rejects(p: Promise<unknown>, m: RegExp | ((e: { code?: string }) => boolean)): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (m instanceof RegExp) assert.match(String((e as Error).message), m);
    else assert.ok(m(e as { code?: string }), String(e));
    return;
  }
  assert.unreachable('expected a rejection');
}
