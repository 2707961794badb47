// Bulk import of a service's existing service IDs (library card numbers, point card numbers) for
// holders who already have a MyKey ID: each CSV row becomes one call of the service API
// POST /v1/services/{serviceId}/links, a bounded number at a time, retried when the hub is busy.
// Rows that cannot be linked are collected with their line, values and error code.
import { isErrorCode, MyKeyError } from '../../shared/errors.ts';
import { isServiceId, normalizeMyKeyId, SERVICE_USER_ID_PATTERN } from '../../shared/ids.ts';
import { csvField, parseCsv } from './csv.ts';

export const HEADER = ['mykey_id', 'service_user_id'] as const;
const SERVICE_USER_RE = new RegExp(SERVICE_USER_ID_PATTERN);

export interface LinkRow {
  /** Line of the file where the row starts (what an editor shows). */
  line: number;
  mykeyId: string;
  serviceUserId: string;
}

export interface Rejection {
  line: number;
  mykeyId: string;
  serviceUserId: string;
  code: string;
  message: string;
}

/** Reads and checks the rows; problems found without asking the hub are rejections already. */
export function readLinkRows(text: string): { rows: LinkRow[]; rejected: Rejection[] } {
  const { records, problems } = parseCsv(text);
  const rejected: Rejection[] = problems.map((p) => ({ line: p.line, mykeyId: '', serviceUserId: '', code: 'bad_request', message: p.message }));
  const head = records.shift();
  const names = head?.fields.map((f) => f.trim().toLowerCase()) ?? [];
  const iId = names.indexOf(HEADER[0]);
  const iUser = names.indexOf(HEADER[1]);
  if (iId < 0 || iUser < 0) {
    throw new MyKeyError('validation_failed', `the first line must be the header ${HEADER.join(',')} (found: ${names.join(',').slice(0, 80) || 'nothing'})`);
  }
  const rows: LinkRow[] = [];
  const seen = new Map<string, number>();
  for (const r of records) {
    const rawId = (r.fields[iId] ?? '').trim();
    const user = (r.fields[iUser] ?? '').trim();
    const reject = (code: string, message: string) => rejected.push({ line: r.line, mykeyId: rawId, serviceUserId: user, code, message });
    if (r.fields.length < names.length) {
      reject('bad_request', `${r.fields.length} field(s) where the header has ${names.length}`);
      continue;
    }
    const id = normalizeMyKeyId(rawId);
    if (!id) {
      reject('mykey_id_malformed', 'not a MyKey ID (8 characters of 2-9 and A-Z without I, L, O)');
      continue;
    }
    if (!SERVICE_USER_RE.test(user)) {
      reject('validation_failed', 'a service ID is 1-64 printable ASCII characters without spaces');
      continue;
    }
    const first = seen.get(id);
    if (first !== undefined) {
      // Linking again replaces (the hub's semantics): a second row for the same holder is a mistake.
      reject('conflict', `the MyKey ID appears again (first on line ${first})`);
      continue;
    }
    seen.set(id, r.line);
    rows.push({ line: r.line, mykeyId: id, serviceUserId: user });
  }
  return { rows, rejected };
}

export interface ImportProgress {
  done: number;
  total: number;
  linked: number;
  replaced: number;
  unchanged: number;
  rejected: number;
}

export interface ImportOptions {
  hubUrl: string;
  serviceId: string;
  token: string;
  rows: LinkRow[];
  /** Calls in flight at once (default 4). */
  concurrency?: number;
  /** Attempts per row when the hub is busy or unreachable (default 4). */
  attempts?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
  onProgress?: (p: ImportProgress) => void;
  sleep?: (ms: number) => Promise<void>;
}

export interface ImportSummary extends ImportProgress {
  rejections: Rejection[];
  /** Rows not decided because the import stopped (a token or service problem). */
  notAttempted: number;
  /** Why the import stopped early. */
  aborted?: string;
}

const RETRY_STATUS = new Set([429, 502, 503, 504]);
// Codes that no row can get past: stop instead of rejecting every row the same way.
const FATAL_CODES = new Set(['unauthorized', 'forbidden', 'not_found']);

type Outcome = { kind: 'linked' | 'replaced' | 'unchanged' } | { kind: 'rejected'; code: string; message: string } | { kind: 'fatal'; message: string };

/** Sends the rows; resolves with the counts and the rejected rows (in file order). */
export async function importLinks(o: ImportOptions): Promise<ImportSummary> {
  if (!isServiceId(o.serviceId)) throw new MyKeyError('validation_failed', `"${o.serviceId}" is not a service id`);
  const doFetch = o.fetch ?? fetch;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const url = new URL(`/v1/services/${o.serviceId}/links`, o.hubUrl).toString();
  const attempts = o.attempts ?? 4;
  const p: ImportProgress = { done: 0, total: o.rows.length, linked: 0, replaced: 0, unchanged: 0, rejected: 0 };
  const rejections: Rejection[] = [];
  let aborted: string | undefined;
  let next = 0;
  let sent = 0;

  async function one(row: LinkRow): Promise<Outcome> {
    let last = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let res: Response;
      try {
        res = await doFetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${o.token}` },
          body: JSON.stringify({ mykeyId: row.mykeyId, serviceUserId: row.serviceUserId }),
          signal: AbortSignal.timeout(o.timeoutMs ?? 15_000),
        });
      } catch (e) {
        last = `cannot reach the hub (${(e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message})`;
        if (attempt < attempts) await sleep(250 * 2 ** (attempt - 1));
        continue;
      }
      const text = await res.text();
      if (res.status === 201 || res.status === 200) {
        let replaced = false;
        try {
          replaced = typeof (JSON.parse(text) as { replaced?: unknown }).replaced === 'string';
        } catch {
          // The link is made; the body is only for counting.
        }
        return { kind: res.status === 200 ? 'unchanged' : replaced ? 'replaced' : 'linked' };
      }
      let code = `http_${res.status}`;
      let message = text.slice(0, 200);
      try {
        const pj = JSON.parse(text) as { code?: unknown; detail?: unknown; title?: unknown };
        if (isErrorCode(pj.code)) code = pj.code;
        message = String(pj.detail ?? pj.title ?? '');
      } catch {
        // Not problem JSON: keep the status.
      }
      if (RETRY_STATUS.has(res.status) && attempt < attempts) {
        const after = Number(res.headers.get('retry-after'));
        await sleep(Number.isFinite(after) && after > 0 ? Math.min(after, 30) * 1000 : 250 * 2 ** (attempt - 1));
        last = `${code}: ${message}`;
        continue;
      }
      if (FATAL_CODES.has(code)) return { kind: 'fatal', message: `${code}: ${message}` };
      return { kind: 'rejected', code, message };
    }
    return { kind: 'rejected', code: 'unavailable', message: `gave up after ${attempts} attempts: ${last}` };
  }

  async function worker(): Promise<void> {
    while (!aborted && next < o.rows.length) {
      const row = o.rows[next++];
      sent++;
      const r = await one(row);
      if (r.kind === 'fatal') {
        aborted ??= r.message;
        sent--; // this row was not decided either
        continue;
      }
      if (r.kind === 'rejected') {
        p.rejected++;
        rejections.push({ line: row.line, mykeyId: row.mykeyId, serviceUserId: row.serviceUserId, code: r.code, message: r.message });
      } else p[r.kind]++;
      p.done++;
      o.onProgress?.({ ...p });
    }
  }

  const n = Math.max(1, Math.min(o.concurrency ?? 4, 32));
  await Promise.all(Array.from({ length: n }, worker));
  rejections.sort((a, b) => a.line - b.line);
  return { ...p, rejections, notAttempted: o.rows.length - sent, ...(aborted ? { aborted } : {}) };
}

/** The rejection report as CSV: line,mykey_id,service_user_id,code,message. */
export function rejectionReport(rows: Rejection[]): string {
  const lines = ['line,mykey_id,service_user_id,code,message'];
  for (const r of rows) lines.push([String(r.line), r.mykeyId, r.serviceUserId, r.code, r.message].map(csvField).join(','));
  return lines.join('\r\n') + '\r\n';
}
