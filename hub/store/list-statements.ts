// Statements over a list of any length (`x IN (?, ...)`, `VALUES (...), ...`) as a few texts of fixed
// sizes, each prepared once (SQLite caches statements by text, PostgreSQL prepares them by name), not
// one text per length. A slice shorter than its size is filled with NULLs, which match nothing: `x IN
// (..., NULL)` and a join on `x = NULL` are never true for them (SQL's three-valued logic), so a
// filled row is neither read, nor updated, nor returned.

/** Items per statement, smallest first. Rows of a few columns each stay far below SQLite's 32,766 and PostgreSQL's 65,535 bound parameters. */
const SIZES = [1, 4, 16, 64, 256, 1024] as const;

/** `n` copies of `one`, comma-separated: the placeholders of an IN list (`?`) or of VALUES rows (`(?, ?)`). */
export const repeated = (n: number, one = '?'): string => Array.from({ length: n }, () => one).join(', ');

/**
 * A statement over lists: `text(size)` writes its text for `size` items. `slices(items, row)` cuts a
 * list into statements, each with its text and the parameters of its items (`row(item)` each, in
 * order): slices of the largest size, the last one in the smallest size that holds it.
 */
export function listStatement(text: (size: number) => string, sizes: readonly number[] = SIZES) {
  const texts = new Map<number, string>();
  const largest = sizes[sizes.length - 1];
  return {
    *slices<T>(items: readonly T[], row: (item: T) => readonly unknown[]): Generator<{ text: string; params: unknown[] }> {
      for (let at = 0; at < items.length; at += largest) {
        const slice = items.slice(at, at + largest);
        const size = sizes.find((n) => n >= slice.length)!;
        const params: unknown[] = [];
        for (const item of slice) params.push(...row(item));
        const width = params.length / slice.length;
        for (let i = params.length; i < size * width; i++) params.push(null);
        let t = texts.get(size);
        if (t === undefined) {
          t = text(size);
          texts.set(size, t);
        }
        yield { text: t, params };
      }
    },
  };
}

/** The one parameter of an IN list's item. */
export const single = <T>(item: T): readonly [T] => [item];
