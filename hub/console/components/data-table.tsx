// The console's one table: headers, rows, an empty state that says what to do next. On a phone the
// rows become stacked cards (console.css), each cell labelled by its header through data-label.
import type { Child } from 'hono/jsx';

export interface Column<T> {
  label: string;
  cell: (row: T) => Child;
  /** Right-aligned numbers. */
  num?: boolean;
  mono?: boolean;
  /** Muted small text (an error code, a warning). */
  note?: boolean;
}

export function DataTable<T>({ rows, columns, empty, testid, rowAttrs }: { rows: T[]; columns: Column<T>[]; empty: Child; testid?: string; rowAttrs?: (row: T) => Record<string, string> }) {
  if (rows.length === 0) return <p class="empty">{empty}</p>;
  return (
    <div class="table-wrap">
      <table data-testid={testid} class="stack">
        <thead>
          <tr>
            {columns.map((col) => (
              <th class={col.num ? 'num' : undefined}>{col.label}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr {...(rowAttrs?.(r) ?? {})}>
              {columns.map((col) => (
                <td data-label={col.label} class={[col.num ? 'num' : '', col.mono ? 'mono' : '', col.note ? 'note' : ''].join(' ').trim() || undefined}>
                  {col.cell(r)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
