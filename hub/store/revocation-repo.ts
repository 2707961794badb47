// Repository of applied CRLs (one per issuer key: crl_state.issuer_key holds TrustAnchor.keyId) and of revocation runs (what each check found).
import type { Db } from './db.ts';
import { sqlOf, type Sql } from './sql.ts';

export interface CrlStateRow {
  issuer_key: string;
  crl_number: string | null;
  this_update: number;
  next_update: number | null;
  entries: number;
  source: string;
  file: string;
  applied_at: number;
}

export interface RevocationRunRow {
  id: number;
  source: string;
  started_at: number;
  finished_at: number;
  ok: number;
  crl_number: string | null;
  entries: number | null;
  matched: number | null;
  newly_suspended: number | null;
  duration_ms: number;
  error: string | null;
  /** The error code of a refused run (e.g. crl_scope_unsupported); null when it was applied. */
  code: string | null;
  /** Something an operator should know about an applied run (e.g. the CRL was already past nextUpdate). */
  warning: string | null;
}

/**
 * Per issuer key, the CRL that every binding up to `binding_mark` (a cert_bindings.id) has been
 * matched against (migration 20): the next CRL of that key needs matching, for those bindings, only
 * on its entries that were not on this one.
 */
export interface CrlMatchMark {
  issuer_key: string;
  this_update: number;
  crl_number: string | null;
  binding_mark: number;
}

/** What recordRun takes: a run row without its id; code and warning may be left out. */
export type NewRevocationRun = Omit<RevocationRunRow, 'id' | 'code' | 'warning'> & { code?: string | null; warning?: string | null };

const Q = {
  state: 'SELECT * FROM crl_state WHERE issuer_key = ?',
  allStates: 'SELECT * FROM crl_state ORDER BY issuer_key',
  upsert: `INSERT INTO crl_state (issuer_key, crl_number, this_update, next_update, entries, source, file, applied_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (issuer_key) DO UPDATE SET crl_number = excluded.crl_number, this_update = excluded.this_update,
      next_update = excluded.next_update, entries = excluded.entries, source = excluded.source, file = excluded.file,
      applied_at = excluded.applied_at`,
  run: `INSERT INTO revocation_runs (source, started_at, finished_at, ok, crl_number, entries, matched, newly_suspended, duration_ms, error, code, warning)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
  dropState: 'DELETE FROM crl_state WHERE issuer_key = ?',
  mark: 'SELECT * FROM crl_match_marks WHERE issuer_key = ?',
  upsertMark: `INSERT INTO crl_match_marks (issuer_key, this_update, crl_number, binding_mark) VALUES (?, ?, ?, ?)
    ON CONFLICT (issuer_key) DO UPDATE SET this_update = excluded.this_update, crl_number = excluded.crl_number, binding_mark = excluded.binding_mark`,
  runs: 'SELECT * FROM revocation_runs ORDER BY id DESC LIMIT ?',
};

const stateParams = (r: CrlStateRow) => [r.issuer_key, r.crl_number, r.this_update, r.next_update, r.entries, r.source, r.file, r.applied_at];

/** The repository over an executor (or a SQLite connection, through its executor). */
export function createRevocationRepo(target: Sql | Db) {
  const sql = sqlOf(target);
  return {
    state: (issuerKey: string): Promise<CrlStateRow | undefined> => sql.get<CrlStateRow>(Q.state, [issuerKey]),
    states: (): Promise<CrlStateRow[]> => sql.all<CrlStateRow>(Q.allStates),
    saveState: async (row: CrlStateRow): Promise<void> => void (await sql.run(Q.upsert, stateParams(row))),
    /** Forgets the state filed under a key (a row of an earlier version, filed under the issuer name hash). */
    dropState: async (issuerKey: string): Promise<void> => void (await sql.run(Q.dropState, [issuerKey])),
    /** The match mark of an issuer key (see CrlMatchMark). */
    mark: (issuerKey: string): Promise<CrlMatchMark | undefined> => sql.get<CrlMatchMark>(Q.mark, [issuerKey]),
    /**
     * Records an applied CRL and its match mark in one write transaction (taken at once on SQLite:
     * BEGIN IMMEDIATE, so it waits its turn rather than failing on a snapshot another process
     * changed), dropping a legacy row first when given.
     */
    saveApplied: (state: CrlStateRow, mark: CrlMatchMark, dropIssuerKey?: string): Promise<void> =>
      sql.tx(
        async () => {
          if (dropIssuerKey !== undefined) await sql.run(Q.dropState, [dropIssuerKey]);
          await sql.run(Q.upsert, stateParams(state));
          await sql.run(Q.upsertMark, [mark.issuer_key, mark.this_update, mark.crl_number, mark.binding_mark]);
        },
        { immediate: true },
      ),
    recordRun: async (row: NewRevocationRun): Promise<number> =>
      (await sql.get<{ id: number }>(Q.run, [
        row.source,
        row.started_at,
        row.finished_at,
        row.ok,
        row.crl_number,
        row.entries,
        row.matched,
        row.newly_suspended,
        row.duration_ms,
        row.error,
        row.code ?? null,
        row.warning ?? null,
      ]))!.id,
    recentRuns: (limit = 50): Promise<RevocationRunRow[]> => sql.all<RevocationRunRow>(Q.runs, [limit]),
  };
}

export type RevocationRepo = ReturnType<typeof createRevocationRepo>;
