// Statements over a list of any length (`x IN (?, ...)`, `VALUES (...), ...`) as a few texts of fixed
// sizes, each prepared once (SQLite caches statements by text, PostgreSQL prepares them by name), not
// one text per length. A slice shorter than its size repeats its last item: an IN list, and an
// UPDATE ... FROM joined with it, give the same rows with an item twice (an UPDATE changes a row once,
// whatever the number of rows it joins: https://sqlite.org/lang_update.html#update_from, and
// PostgreSQL's UPDATE, "FROM").

/** Items per statement, smallest first. Rows of a few columns each stay far below SQLite's 32,766 and PostgreSQL's 65,535 bound parameters. */
const SIZES = [1, 4, 16, 64, 256, 1024] as const;

/** `n` copies of `one`, comma-separated: the placeholders of an IN list (`?`) or of VALUES rows (`(?, ?)`). */
export const repeated = (n: number, one = '?'): string => Array.from({ length: n }, () => one).join(', ');

/**
 * A statement over lists: `text(size)` writes its text for `size` items. `slices(items)` cuts a list
 * into statements: slices of the largest size, the last one in the smallest size that holds it.
 */
export function listStatement(text: (size: number) => string, sizes: readonly number[] = SIZES) {
  const texts = new Map<number, string>();
  const largest = sizes[sizes.length - 1];
  return {
    *slices<T>(items: readonly T[]): Generator<{ text: string; items: T[] }> {
      for (let at = 0; at < items.length; at += largest) {
        const slice = items.slice(at, at + largest);
        const size = sizes.find((n) => n >= slice.length)!;
        while (slice.length < size) slice.push(slice[slice.length - 1]);
        let t = texts.get(size);
        if (t === undefined) {
          t = text(size);
          texts.set(size, t);
        }
        yield { text: t, items: slice };
      }
    },
  };
}
