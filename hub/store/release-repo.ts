// Repository of signed releases, rollouts and each edge's update state (schema/releases.ts).
import type { Db } from './db.ts';
import { sqlOf, type Sql } from './sql.ts';

export interface ReleaseRow {
  version: string;
  signed: string;
  key_id: string;
  digest: string;
  size: number;
  services: string;
  bundle_ready: number;
  uploaded_at: number;
}

export type RolloutState = 'active' | 'halted' | 'completed';

export interface RolloutRow {
  id: number;
  version: string;
  service_id: string | null;
  percent: number;
  edges: string | null;
  max_failures: number;
  state: RolloutState;
  halted_reason: string | null;
  created_at: number;
  updated_at: number;
}

export interface EdgeUpdateRow {
  edge_id: string;
  running: string;
  version: string | null;
  rollout_id: number | null;
  state: string;
  code: string | null;
  reason: string | null;
  updated_at: number;
}

/** The states that count against a rollout's abort criteria. */
export const FAILURE_STATES = ['refused', 'failed', 'rolled_back'] as const;

const Q = {
  insertRelease: `INSERT INTO releases (version, signed, key_id, digest, size, services, bundle_ready, uploaded_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)
    ON CONFLICT (version) DO NOTHING`,
  release: 'SELECT * FROM releases WHERE version = ?',
  releases: 'SELECT * FROM releases ORDER BY uploaded_at DESC LIMIT ?',
  bundleReady: 'UPDATE releases SET bundle_ready = 1 WHERE version = ?',
  insertRollout: `INSERT INTO rollouts (version, service_id, percent, edges, max_failures, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)
    RETURNING id`,
  rollout: 'SELECT * FROM rollouts WHERE id = ?',
  rollouts: 'SELECT * FROM rollouts ORDER BY id DESC LIMIT ?',
  activeRollouts: "SELECT * FROM rollouts WHERE state = 'active' ORDER BY id DESC",
  setRolloutState: 'UPDATE rollouts SET state = ?, halted_reason = ?, updated_at = ? WHERE id = ? AND state = ?',
  upsertEdge: `INSERT INTO edge_updates (edge_id, running, version, rollout_id, state, code, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (edge_id) DO UPDATE SET running = excluded.running, version = excluded.version, rollout_id = excluded.rollout_id, state = excluded.state, code = excluded.code, reason = excluded.reason, updated_at = excluded.updated_at`,
  edge: 'SELECT * FROM edge_updates WHERE edge_id = ?',
  edgesOfRollout: 'SELECT * FROM edge_updates WHERE rollout_id = ? ORDER BY edge_id',
  allEdges: 'SELECT * FROM edge_updates ORDER BY edge_id LIMIT ?',
  failures: `SELECT COUNT(*) AS n FROM edge_updates WHERE rollout_id = ? AND state IN (${FAILURE_STATES.map(() => '?').join(', ')})`,
};

/** The repository over an executor (or a SQLite connection, through its executor). */
export function createReleaseRepo(target: Sql | Db) {
  const sql = sqlOf(target);
  return {
    /** Stores a release; false when the version exists. */
    async insertRelease(r: Omit<ReleaseRow, 'bundle_ready'>): Promise<boolean> {
      return (await sql.run(Q.insertRelease, [r.version, r.signed, r.key_id, r.digest, r.size, r.services, r.uploaded_at])).changes === 1;
    },
    release: (version: string) => sql.get<ReleaseRow>(Q.release, [version]),
    releases: (limit = 100) => sql.all<ReleaseRow>(Q.releases, [limit]),
    markBundleReady: async (version: string): Promise<void> => void (await sql.run(Q.bundleReady, [version])),
    async insertRollout(r: { version: string; service_id: string | null; percent: number; edges: string | null; max_failures: number; now: number }): Promise<number> {
      return (await sql.get<{ id: number }>(Q.insertRollout, [r.version, r.service_id, r.percent, r.edges, r.max_failures, r.now, r.now]))!.id;
    },
    rollout: (id: number) => sql.get<RolloutRow>(Q.rollout, [id]),
    rollouts: (limit = 50) => sql.all<RolloutRow>(Q.rollouts, [limit]),
    activeRollouts: () => sql.all<RolloutRow>(Q.activeRollouts),
    /** Moves a rollout from one state to another; false when it was not in `from`. */
    async setRolloutState(id: number, from: RolloutState, to: RolloutState, reason: string | null, now: number): Promise<boolean> {
      return (await sql.run(Q.setRolloutState, [to, reason, now, id, from])).changes === 1;
    },
    upsertEdge: async (r: EdgeUpdateRow): Promise<void> => void (await sql.run(Q.upsertEdge, [r.edge_id, r.running, r.version, r.rollout_id, r.state, r.code, r.reason, r.updated_at])),
    edge: (edgeId: string) => sql.get<EdgeUpdateRow>(Q.edge, [edgeId]),
    edgesOfRollout: (id: number) => sql.all<EdgeUpdateRow>(Q.edgesOfRollout, [id]),
    edges: (limit = 1000) => sql.all<EdgeUpdateRow>(Q.allEdges, [limit]),
    failures: async (rolloutId: number): Promise<number> => (await sql.get<{ n: number }>(Q.failures, [rolloutId, ...FAILURE_STATES]))!.n,
  };
}

export type ReleaseRepo = ReturnType<typeof createReleaseRepo>;
