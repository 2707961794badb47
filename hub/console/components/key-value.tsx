// A block of labelled values (an edge's status, its certificate).
import type { Child } from 'hono/jsx';

export function KeyValue({ rows, testid }: { rows: [label: string, value: Child][]; testid?: string }) {
  return (
    <table class="kv" data-testid={testid}>
      <tbody>
        {rows.map(([k, val]) => (
          <tr>
            <th>{k}</th>
            <td>{val}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
