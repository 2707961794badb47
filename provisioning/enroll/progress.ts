// Step-by-step progress for the technician: numbered steps, a line per finding, and on failure what
// went wrong (with its stable code) and what to do about it.
import { MyKeyError } from '../../shared/errors.ts';

/** A failure that says how to fix it. The fix is also read from MyKeyError details.fix. */
export function needsFix(code: ConstructorParameters<typeof MyKeyError>[0], message: string, fix: string, cause?: unknown): MyKeyError {
  return new MyKeyError(code, message, { cause, details: { fix } });
}

export function fixOf(e: unknown): string | undefined {
  const f = e instanceof MyKeyError ? e.details?.fix : undefined;
  return typeof f === 'string' ? f : undefined;
}

export interface StepContext {
  /** A finding that is fine. */
  ok(line: string): void;
  /** A neutral note. */
  note(line: string): void;
  /** Something to look at that does not stop the command. */
  warn(line: string): void;
}

export class StepFailed extends Error {
  constructor(
    readonly step: string,
    readonly error: unknown,
  ) {
    super(`${step}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Runs numbered steps; the first failure is printed with its fix and thrown as StepFailed. */
export function createSteps(write: (line: string) => void, total: number, hints: (e: unknown) => string | undefined = () => undefined) {
  let n = 0;
  const ctx: StepContext = {
    ok: (l) => write(`  ok    ${l}`),
    note: (l) => write(`        ${l}`),
    warn: (l) => write(`  warn  ${l}`),
  };
  return {
    ctx,
    async step<T>(title: string, fn: (c: StepContext) => Promise<T> | T): Promise<T> {
      n++;
      write(`[${n}/${total}] ${title}`);
      try {
        return await fn(ctx);
      } catch (e) {
        const code = e instanceof MyKeyError ? ` (${e.code})` : '';
        write(`  FAIL  ${e instanceof Error ? e.message : String(e)}${code}`);
        const fix = fixOf(e) ?? hints(e);
        if (fix) write(`  fix:  ${fix}`);
        throw new StepFailed(title, e);
      }
    },
  };
}
