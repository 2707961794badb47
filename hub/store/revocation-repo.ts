// Repository of applied CRLs (one per issuer key: crl_state.issuer_key holds TrustAnchor.keyId) and of revocation runs (what each check found).
import type { Db } from './db.ts';

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

export function createRevocationRepo(db: Db) {
  const q = {
    state: db.prepare<[string], CrlStateRow>('SELECT * FROM crl_state WHERE issuer_key = ?'),
    allStates: db.prepare<[], CrlStateRow>('SELECT * FROM crl_state ORDER BY issuer_key'),
    upsert: db.prepare(`INSERT INTO crl_state (issuer_key, crl_number, this_update, next_update, entries, source, file, applied_at)
      VALUES (@issuer_key, @crl_number, @this_update, @next_update, @entries, @source, @file, @applied_at)
      ON CONFLICT (issuer_key) DO UPDATE SET crl_number = excluded.crl_number, this_update = excluded.this_update,
        next_update = excluded.next_update, entries = excluded.entries, source = excluded.source, file = excluded.file,
        applied_at = excluded.applied_at`),
    run: db.prepare(`INSERT INTO revocation_runs (source, started_at, finished_at, ok, crl_number, entries, matched, newly_suspended, duration_ms, error, code, warning)
      VALUES (@source, @started_at, @finished_at, @ok, @crl_number, @entries, @matched, @newly_suspended, @duration_ms, @error, @code, @warning)`),
    dropState: db.prepare('DELETE FROM crl_state WHERE issuer_key = ?'),
    mark: db.prepare<[string], CrlMatchMark>('SELECT * FROM crl_match_marks WHERE issuer_key = ?'),
    upsertMark: db.prepare(`INSERT INTO crl_match_marks (issuer_key, this_update, crl_number, binding_mark)
      VALUES (@issuer_key, @this_update, @crl_number, @binding_mark)
      ON CONFLICT (issuer_key) DO UPDATE SET this_update = excluded.this_update, crl_number = excluded.crl_number, binding_mark = excluded.binding_mark`),
    runs: db.prepare<[number], RevocationRunRow>('SELECT * FROM revocation_runs ORDER BY id DESC LIMIT ?'),
  };
  const saveApplied = db.transaction((state: CrlStateRow, mark: CrlMatchMark, dropIssuerKey?: string) => {
    if (dropIssuerKey !== undefined) q.dropState.run(dropIssuerKey);
    q.upsert.run(state);
    q.upsertMark.run(mark);
  });
  return {
    state: (issuerKey: string): CrlStateRow | undefined => q.state.get(issuerKey),
    states: (): CrlStateRow[] => q.allStates.all(),
    saveState: (row: CrlStateRow): void => void q.upsert.run(row),
    /** Forgets the state filed under a key (a row of an earlier version, filed under the issuer name hash). */
    dropState: (issuerKey: string): void => void q.dropState.run(issuerKey),
    /** The match mark of an issuer key (see CrlMatchMark). */
    mark: (issuerKey: string): CrlMatchMark | undefined => q.mark.get(issuerKey),
    /**
     * Records an applied CRL and its match mark in one write transaction (taken at once: BEGIN
     * IMMEDIATE, so it waits its turn rather than failing on a snapshot another process changed),
     * dropping a legacy row first when given.
     */
    saveApplied: (state: CrlStateRow, mark: CrlMatchMark, dropIssuerKey?: string): void => saveApplied.immediate(state, mark, dropIssuerKey),
    recordRun: (row: NewRevocationRun): number => Number(q.run.run({ ...row, code: row.code ?? null, warning: row.warning ?? null }).lastInsertRowid),
    recentRuns: (limit = 50): RevocationRunRow[] => q.runs.all(limit),
  };
}

export type RevocationRepo = ReturnType<typeof createRevocationRepo>;
