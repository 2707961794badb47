// Repository of signed releases, rollouts and each edge's update state (schema/releases.ts).
import type { Db } from './db.ts';

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

export function createReleaseRepo(db: Db) {
  const q = {
    insertRelease: db.prepare(
      'INSERT INTO releases (version, signed, key_id, digest, size, services, bundle_ready, uploaded_at) VALUES (@version, @signed, @key_id, @digest, @size, @services, 0, @uploaded_at) ON CONFLICT (version) DO NOTHING',
    ),
    release: db.prepare('SELECT * FROM releases WHERE version = ?'),
    releases: db.prepare('SELECT * FROM releases ORDER BY uploaded_at DESC LIMIT ?'),
    bundleReady: db.prepare('UPDATE releases SET bundle_ready = 1 WHERE version = ?'),
    insertRollout: db.prepare(
      "INSERT INTO rollouts (version, service_id, percent, edges, max_failures, state, created_at, updated_at) VALUES (@version, @service_id, @percent, @edges, @max_failures, 'active', @now, @now)",
    ),
    rollout: db.prepare('SELECT * FROM rollouts WHERE id = ?'),
    rollouts: db.prepare('SELECT * FROM rollouts ORDER BY id DESC LIMIT ?'),
    activeRollouts: db.prepare("SELECT * FROM rollouts WHERE state = 'active' ORDER BY id DESC"),
    setRolloutState: db.prepare('UPDATE rollouts SET state = ?, halted_reason = ?, updated_at = ? WHERE id = ? AND state = ?'),
    upsertEdge: db.prepare(
      `INSERT INTO edge_updates (edge_id, running, version, rollout_id, state, code, reason, updated_at) VALUES (@edge_id, @running, @version, @rollout_id, @state, @code, @reason, @updated_at)
       ON CONFLICT (edge_id) DO UPDATE SET running = excluded.running, version = excluded.version, rollout_id = excluded.rollout_id, state = excluded.state, code = excluded.code, reason = excluded.reason, updated_at = excluded.updated_at`,
    ),
    edge: db.prepare('SELECT * FROM edge_updates WHERE edge_id = ?'),
    edgesOfRollout: db.prepare('SELECT * FROM edge_updates WHERE rollout_id = ? ORDER BY edge_id'),
    allEdges: db.prepare('SELECT * FROM edge_updates ORDER BY edge_id LIMIT ?'),
    failures: db.prepare(`SELECT COUNT(*) AS n FROM edge_updates WHERE rollout_id = ? AND state IN (${FAILURE_STATES.map(() => '?').join(', ')})`),
  };
  return {
    /** Stores a release; false when the version exists. */
    insertRelease(r: Omit<ReleaseRow, 'bundle_ready'>): boolean {
      return q.insertRelease.run(r).changes === 1;
    },
    release: (version: string) => q.release.get(version) as ReleaseRow | undefined,
    releases: (limit = 100) => q.releases.all(limit) as ReleaseRow[],
    markBundleReady: (version: string) => void q.bundleReady.run(version),
    insertRollout(r: { version: string; service_id: string | null; percent: number; edges: string | null; max_failures: number; now: number }): number {
      return Number(q.insertRollout.run(r).lastInsertRowid);
    },
    rollout: (id: number) => q.rollout.get(id) as RolloutRow | undefined,
    rollouts: (limit = 50) => q.rollouts.all(limit) as RolloutRow[],
    activeRollouts: () => q.activeRollouts.all() as RolloutRow[],
    /** Moves a rollout from one state to another; false when it was not in `from`. */
    setRolloutState(id: number, from: RolloutState, to: RolloutState, reason: string | null, now: number): boolean {
      return q.setRolloutState.run(to, reason, now, id, from).changes === 1;
    },
    upsertEdge: (r: EdgeUpdateRow) => void q.upsertEdge.run(r),
    edge: (edgeId: string) => q.edge.get(edgeId) as EdgeUpdateRow | undefined,
    edgesOfRollout: (id: number) => q.edgesOfRollout.all(id) as EdgeUpdateRow[],
    edges: (limit = 1000) => q.allEdges.all(limit) as EdgeUpdateRow[],
    failures: (rolloutId: number) => (q.failures.get(rolloutId, ...FAILURE_STATES) as { n: number }).n,
  };
}

export type ReleaseRepo = ReturnType<typeof createReleaseRepo>;
