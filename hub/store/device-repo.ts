// Repository of enrolled edge devices: their current device certificate, revocation, and what their
// last status said (online, last seen, applied sequence, version, health, lag). Lag samples feed the
// console's chart and are capped per edge. Nothing here records touches or usage.
import type { Db } from './db.ts';
import { sqlOf, type Sql } from './sql.ts';
import { LAG_SAMPLES_PER_EDGE } from './schema/devices.ts';

export type DeviceStatus = 'active' | 'revoked';

export interface DeviceRow {
  edge_id: string;
  service_id: string;
  cert_serial: string;
  cert_fingerprint: string;
  not_after: number;
  status: DeviceStatus;
  revoked_at: number | null;
  revoked_reason: string | null;
  enrolled_at: number;
  last_seen_at: number | null;
  version: string | null;
  applied_seq: number;
  health: string | null;
  online: number;
  lag: number | null;
  /** Who revoked it (an operator's name, `api`), when revoked from the console or the API. */
  revoked_by: string | null;
  /** Derived (schema/devices.ts 201): revoked, offline, or the health the edge reports. */
  state: EdgeState;
}

/** The states an edge is listed and counted by: the edge's own health when online, else offline or revoked. */
export const EDGE_STATES = ['ok', 'degraded', 'stale', 'clock_unsure', 'reader_missing', 'offline', 'revoked'] as const;
export type EdgeState = (typeof EDGE_STATES)[number];

/** Sort keys of the edge list (whitelisted: they become SQL). */
export const EDGE_SORTS = { edge: 'edge_id', service: 'service_id', state: 'state', last_seen: 'last_seen_at', lag: 'lag', version: 'version' } as const;
export type EdgeSort = keyof typeof EDGE_SORTS;

export interface EdgeListQuery {
  serviceId?: string;
  /** One state, `outdated` (older than `latest`), or `all`; by default every edge that is not revoked. */
  state?: EdgeState | 'outdated' | 'all';
  version?: string;
  /** A part of the edge id. */
  search?: string;
  sort?: EdgeSort;
  desc?: boolean;
  limit?: number;
  offset?: number;
  /** The newest version in the fleet (for `outdated`). */
  latest?: string;
}

/** Compares dotted versions numerically part by part ("1.10.0" > "1.9.2"); non-numeric parts as text. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/);
  const pb = b.split(/[.+-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    const c = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x < y ? -1 : x > y ? 1 : 0;
    if (c !== 0) return Math.sign(c);
  }
  return 0;
}

export interface LagSample {
  at: number;
  applied_seq: number;
  lag: number;
}

/** A device certificate as the repo records it. */
export interface DeviceCertRecord {
  edgeId: string;
  serviceId: string;
  /** Serial as lowercase hex. */
  certSerial: string;
  /** SHA-256 of the certificate DER, lowercase hex. */
  certFingerprint: string;
  notAfter: number;
}

/** What an edge's status message says, as recorded. */
export interface DeviceStatusUpdate {
  online: boolean;
  appliedSeq: number;
  version: string;
  health: string;
  lag: number;
  at: number;
}

/** Why an enrollment of an edge id for a service is refused (see `enrollConflict`). */
export type EnrollConflict = 'edge_enrolled_elsewhere' | 'edge_service_move' | 'device_reenroll_revoked';

/**
 * Whether enrolling `serviceId`'s device under an edge id that already has a device row is allowed.
 * An edge belongs to one service: a live device of another service is never taken over (that would
 * cut it off and replace its certificate), and a revoked device comes back, in its own service or in
 * another, only with a platform operator's explicit permission (`allowRevoked`). Re-enrolling a live
 * device of the same service (a replaced SD card, a new key) supersedes its certificate as before.
 */
export function enrollConflict(prev: Pick<DeviceRow, 'service_id' | 'status'> | undefined, serviceId: string, allowRevoked = false): EnrollConflict | undefined {
  if (!prev) return undefined;
  if (prev.status === 'active') return prev.service_id === serviceId ? undefined : 'edge_enrolled_elsewhere';
  if (allowRevoked) return undefined;
  return prev.service_id === serviceId ? 'device_reenroll_revoked' : 'edge_service_move';
}

const Q = {
  get: 'SELECT * FROM devices WHERE edge_id = ?',
  byFingerprint: 'SELECT * FROM devices WHERE cert_fingerprint = ?',
  certRevoked: 'SELECT 1 AS revoked FROM device_cert_revocations WHERE cert_fingerprint = ?',
  insert: `INSERT INTO devices (edge_id, service_id, cert_serial, cert_fingerprint, not_after, status, enrolled_at)
     VALUES (?, ?, ?, ?, ?, 'active', ?)`,
  replaceCert: `UPDATE devices SET service_id = ?, cert_serial = ?, cert_fingerprint = ?, not_after = ?, status = 'active',
       revoked_at = NULL, revoked_reason = NULL, enrolled_at = ?, applied_seq = 0, lag = NULL WHERE edge_id = ?`,
  revokeCert: `INSERT INTO device_cert_revocations (cert_fingerprint, cert_serial, edge_id, revoked_at, reason) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT DO NOTHING`,
  // A revoked device has no lag (nothing is sent to it any more) and no live health.
  revoke: "UPDATE devices SET status = 'revoked', revoked_at = ?, revoked_reason = ?, revoked_by = NULL, online = 0, lag = NULL WHERE edge_id = ? AND status = 'active'",
  noteRevocation: "UPDATE devices SET revoked_by = ?, revoked_reason = ? WHERE edge_id = ? AND status = 'revoked'",
  // Only an active device's status is recorded: the will of a connection the hub cut off after a
  // revocation (and any status still in flight) must not make a revoked edge look seen and in sync.
  status: "UPDATE devices SET online = ?, last_seen_at = ?, applied_seq = ?, version = ?, health = ?, lag = ? WHERE edge_id = ? AND status = 'active'",
  seen: "UPDATE devices SET online = 1, last_seen_at = ? WHERE edge_id = ? AND status = 'active'",
  offline: "UPDATE devices SET online = 0, last_seen_at = ? WHERE edge_id = ? AND online = 1 AND status = 'active'",
  allOffline: 'UPDATE devices SET online = 0 WHERE online = 1',
  list: 'SELECT * FROM devices ORDER BY service_id, edge_id',
  listService: 'SELECT * FROM devices WHERE service_id = ? ORDER BY edge_id',
  addSample: 'INSERT INTO edge_lag_samples (edge_id, at, applied_seq, lag) VALUES (?, ?, ?, ?)',
  trimSamples: `DELETE FROM edge_lag_samples WHERE edge_id = ? AND id <= (
       SELECT id FROM edge_lag_samples WHERE edge_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
  clearSamples: 'DELETE FROM edge_lag_samples WHERE edge_id = ?',
  samples: 'SELECT at, applied_seq, lag FROM edge_lag_samples WHERE edge_id = ? ORDER BY id',
  counts: 'SELECT status, online, COUNT(*) AS n FROM devices GROUP BY status, online',
  stateCounts: 'SELECT state, COUNT(*) AS n FROM devices GROUP BY state',
  stateCountsOf: 'SELECT state, COUNT(*) AS n FROM devices WHERE service_id = ? GROUP BY state',
  lag: "SELECT COUNT(*) FILTER (WHERE lag > 0) AS behind, MAX(lag) AS max FROM devices WHERE state <> 'revoked' AND state <> 'offline'",
  lagOf: "SELECT COUNT(*) FILTER (WHERE lag > 0) AS behind, MAX(lag) AS max FROM devices WHERE service_id = ? AND state <> 'revoked' AND state <> 'offline'",
  versions: "SELECT version, COUNT(*) AS n FROM devices WHERE status = 'active' AND version IS NOT NULL GROUP BY version",
  versionsOf: "SELECT version, COUNT(*) AS n FROM devices WHERE service_id = ? AND status = 'active' AND version IS NOT NULL GROUP BY version",
};

/** The repository over an executor (or a SQLite connection, through its executor). */
export function createDeviceRepo(target: Sql | Db, opts: { lagSamplesPerEdge?: number } = {}) {
  const sql = sqlOf(target);
  const cap = opts.lagSamplesPerEdge ?? LAG_SAMPLES_PER_EDGE;
  const get = (edgeId: string) => sql.get<DeviceRow>(Q.get, [edgeId]);

  /** The WHERE of an edge list and its parameters in order (every piece fixed text; values bound). */
  function where(f: EdgeListQuery): { sql: string; params: unknown[] } {
    const parts: string[] = [];
    const params: unknown[] = [];
    if (f.serviceId !== undefined) {
      parts.push('service_id = ?');
      params.push(f.serviceId);
    }
    if (f.state === undefined) parts.push("state <> 'revoked'");
    else if (f.state === 'outdated') {
      parts.push("status = 'active' AND version IS NOT NULL AND version <> ?");
      params.push(f.latest ?? '');
    } else if (f.state !== 'all') {
      parts.push('state = ?');
      params.push(f.state);
    }
    if (f.version !== undefined) {
      parts.push('version = ?');
      params.push(f.version);
    }
    if (f.search) {
      parts.push("edge_id LIKE ? ESCAPE '\\'");
      params.push(`%${f.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    }
    return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
  }

  return {
    get: (edgeId: string): Promise<DeviceRow | undefined> => get(edgeId),
    byFingerprint: (fingerprint: string): Promise<DeviceRow | undefined> => sql.get<DeviceRow>(Q.byFingerprint, [fingerprint]),
    /** True when this certificate was revoked or superseded by a later enrollment. */
    isCertRevoked: async (fingerprint: string): Promise<boolean> => (await sql.get(Q.certRevoked, [fingerprint])) !== undefined,

    /**
     * Records a newly issued device certificate. A re-enrollment replaces the edge's certificate and
     * revokes the one it had (reason 'superseded'), so an old or stolen certificate stops working.
     * The service check (`enrollConflict`) runs inside the same transaction as the write, so two
     * redemptions racing for one edge id cannot slip past it; on a conflict nothing changes.
     */
    enroll: (rec: DeviceCertRecord, at: number, opts: { allowRevoked?: boolean } = {}): Promise<EnrollConflict | undefined> =>
      sql.tx(
        async () => {
          // PostgreSQL: the row is locked for the check, so a racing enrollment waits for this one.
          const prev = await sql.get<DeviceRow>(sql.dialect === 'postgres' ? `${Q.get} FOR UPDATE` : Q.get, [rec.edgeId]);
          if (!prev) {
            await sql.run(Q.insert, [rec.edgeId, rec.serviceId, rec.certSerial, rec.certFingerprint, rec.notAfter, at]);
            return undefined;
          }
          const conflict = enrollConflict(prev, rec.serviceId, opts.allowRevoked);
          if (conflict) return conflict;
          if (prev.cert_fingerprint !== rec.certFingerprint) await sql.run(Q.revokeCert, [prev.cert_fingerprint, prev.cert_serial, prev.edge_id, at, 'superseded']);
          // A moved edge (an operator's permission) does not carry the old service's lag history along.
          if (prev.service_id !== rec.serviceId) await sql.run(Q.clearSamples, [rec.edgeId]);
          await sql.run(Q.replaceCert, [rec.serviceId, rec.certSerial, rec.certFingerprint, rec.notAfter, at, rec.edgeId]);
          return undefined;
        },
        { immediate: true },
      ),

    /** Revokes an edge's device (and its current certificate). False when unknown or already revoked. */
    revoke: (edgeId: string, reason: string, at: number): Promise<boolean> =>
      sql.tx(
        async () => {
          const row = await get(edgeId);
          if (!row || row.status === 'revoked') return false;
          if ((await sql.run(Q.revoke, [at, reason, edgeId])).changes === 0) return false;
          await sql.run(Q.revokeCert, [row.cert_fingerprint, row.cert_serial, edgeId, at, reason]);
          return true;
        },
        { immediate: true },
      ),

    /** Records what an edge's status message said; with `sample`, also a lag sample (capped per edge). */
    recordStatus: (edgeId: string, s: DeviceStatusUpdate, sample: boolean): Promise<void> =>
      sql.tx(async () => {
        if ((await sql.run(Q.status, [s.online ? 1 : 0, s.at, s.appliedSeq, s.version, s.health, s.lag, edgeId])).changes === 0) return;
        if (sample) {
          await sql.run(Q.addSample, [edgeId, s.at, s.appliedSeq, s.lag]);
          await sql.run(Q.trimSamples, [edgeId, edgeId, cap]);
        }
      }),
    /** A connection of the edge was accepted. */
    markSeen: async (edgeId: string, at: number): Promise<void> => void (await sql.run(Q.seen, [at, edgeId])),
    /** The edge's connection ended (without a will, or before any status). */
    markOffline: async (edgeId: string, at: number): Promise<void> => void (await sql.run(Q.offline, [at, edgeId])),
    /** Nobody is connected when the broker starts. */
    markAllOffline: async (): Promise<void> => void (await sql.run(Q.allOffline)),

    /** Records who revoked a device and why, in full (the certificate revocation keeps a short reason). */
    noteRevocation: async (edgeId: string, by: string, reason: string): Promise<void> => void (await sql.run(Q.noteRevocation, [by, reason, edgeId])),

    list: (serviceId?: string): Promise<DeviceRow[]> => (serviceId === undefined ? sql.all<DeviceRow>(Q.list) : sql.all<DeviceRow>(Q.listService, [serviceId])),
    /** One page of the edge list, filtered and sorted in SQL (indexes in schema/devices.ts), and the total that matched. */
    async page(f: EdgeListQuery): Promise<{ rows: DeviceRow[]; total: number }> {
      const w = where(f);
      const col = EDGE_SORTS[f.sort ?? 'edge'];
      const dir = f.desc ? 'DESC' : 'ASC';
      const order = col === 'edge_id' ? `edge_id ${dir}` : `${col} IS NULL, ${col} ${dir}, edge_id`;
      const limit = Math.max(0, Math.min(f.limit ?? 50, 100_000));
      const offset = Math.max(0, f.offset ?? 0);
      const rows = await sql.all<DeviceRow>(`SELECT * FROM devices ${w.sql} ORDER BY ${order} LIMIT ? OFFSET ?`, [...w.params, limit, offset]);
      const total = (await sql.get<{ n: number }>(`SELECT COUNT(*) AS n FROM devices ${w.sql}`, w.params))?.n ?? 0;
      return { rows, total: Number(total) };
    },
    /** Edges by state (every state present, zeros included). */
    async stateCounts(serviceId?: string): Promise<Record<EdgeState, number>> {
      const out = Object.fromEntries(EDGE_STATES.map((s) => [s, 0])) as Record<EdgeState, number>;
      const rows = serviceId === undefined ? await sql.all<{ state: EdgeState; n: number }>(Q.stateCounts) : await sql.all<{ state: EdgeState; n: number }>(Q.stateCountsOf, [serviceId]);
      for (const r of rows) if (r.state in out) out[r.state] += r.n;
      return out;
    },
    /** Connected edges behind their service's change log, and the largest lag among them. */
    async lagSummary(serviceId?: string): Promise<{ behind: number; max: number }> {
      const r = serviceId === undefined ? await sql.get<{ behind: number; max: number | null }>(Q.lag) : await sql.get<{ behind: number; max: number | null }>(Q.lagOf, [serviceId]);
      return { behind: r?.behind ?? 0, max: r?.max ?? 0 };
    },
    /** Versions that active edges report, newest first, with how many edges run each. */
    async versions(serviceId?: string): Promise<{ version: string; n: number }[]> {
      const rows = serviceId === undefined ? await sql.all<{ version: string; n: number }>(Q.versions) : await sql.all<{ version: string; n: number }>(Q.versionsOf, [serviceId]);
      return rows.sort((a, b) => compareVersions(b.version, a.version));
    },
    lagHistory: (edgeId: string): Promise<LagSample[]> => sql.all<LagSample>(Q.samples, [edgeId]),
    async counts(): Promise<{ active: number; revoked: number; online: number }> {
      const out = { active: 0, revoked: 0, online: 0 };
      for (const r of await sql.all<{ status: DeviceStatus; online: number; n: number }>(Q.counts)) {
        out[r.status] += r.n;
        if (r.online) out.online += r.n;
      }
      return out;
    },
  };
}

export type DeviceRepo = ReturnType<typeof createDeviceRepo>;
