// The edge list as CSV (RFC 4180: CRLF line ends, fields with a comma, quote or line end quoted and
// their quotes doubled). A cell that a spreadsheet would read as a formula is prefixed with '.
import type { DeviceRow } from '../../../store/device-repo.ts';
import { compareVersions } from '../../../store/device-repo.ts';

function cell(v: string | number | null): string {
  if (v === null) return '';
  let s = String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export function edgesCsv(rows: DeviceRow[], latest?: string): string {
  const head = ['edge_id', 'service_id', 'state', 'outdated', 'version', 'applied_seq', 'lag', 'last_seen_at', 'enrolled_at', 'cert_not_after', 'revoked_at', 'revoked_by', 'revoked_reason'];
  const lines = [head.join(',')];
  for (const d of rows) {
    const outdated = d.status === 'active' && latest !== undefined && d.version !== null && compareVersions(d.version, latest) < 0;
    lines.push(
      [
        d.edge_id,
        d.service_id,
        d.state,
        outdated ? 'yes' : 'no',
        d.version,
        d.applied_seq,
        d.lag,
        iso(d.last_seen_at),
        iso(d.enrolled_at),
        iso(d.not_after),
        iso(d.revoked_at),
        d.revoked_by,
        d.revoked_reason,
      ]
        .map(cell)
        .join(','),
    );
  }
  return `${lines.join('\r\n')}\r\n`;
}
