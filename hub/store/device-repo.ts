// Repository of enrolled edge devices: their current device certificate, revocation, and what their
// last status said (online, last seen, applied sequence, version, health, lag). Lag samples feed the
// console's chart and are capped per edge. Nothing here records touches or usage.
import type { Db } from './db.ts';
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

export function createDeviceRepo(db: Db, opts: { lagSamplesPerEdge?: number } = {}) {
  const cap = opts.lagSamplesPerEdge ?? LAG_SAMPLES_PER_EDGE;
  const q = {
    get: db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE edge_id = ?'),
    byFingerprint: db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE cert_fingerprint = ?'),
    certRevoked: db.prepare<[string], number>('SELECT 1 FROM device_cert_revocations WHERE cert_fingerprint = ?').pluck(),
    insert: db.prepare(
      `INSERT INTO devices (edge_id, service_id, cert_serial, cert_fingerprint, not_after, status, enrolled_at)
       VALUES (?, ?, ?, ?, ?, 'active', ?)`,
    ),
    replaceCert: db.prepare(
      `UPDATE devices SET service_id = ?, cert_serial = ?, cert_fingerprint = ?, not_after = ?, status = 'active',
         revoked_at = NULL, revoked_reason = NULL, enrolled_at = ?, applied_seq = 0, lag = NULL WHERE edge_id = ?`,
    ),
    revokeCert: db.prepare(
      'INSERT OR IGNORE INTO device_cert_revocations (cert_fingerprint, cert_serial, edge_id, revoked_at, reason) VALUES (?, ?, ?, ?, ?)',
    ),
    // A revoked device has no lag (nothing is sent to it any more) and no live health.
    revoke: db.prepare("UPDATE devices SET status = 'revoked', revoked_at = ?, revoked_reason = ?, revoked_by = NULL, online = 0, lag = NULL WHERE edge_id = ? AND status = 'active'"),
    noteRevocation: db.prepare("UPDATE devices SET revoked_by = ?, revoked_reason = ? WHERE edge_id = ? AND status = 'revoked'"),
    // Only an active device's status is recorded: the will of a connection the hub cut off after a
    // revocation (and any status still in flight) must not make a revoked edge look seen and in sync.
    status: db.prepare("UPDATE devices SET online = ?, last_seen_at = ?, applied_seq = ?, version = ?, health = ?, lag = ? WHERE edge_id = ? AND status = 'active'"),
    seen: db.prepare("UPDATE devices SET online = 1, last_seen_at = ? WHERE edge_id = ? AND status = 'active'"),
    offline: db.prepare("UPDATE devices SET online = 0, last_seen_at = ? WHERE edge_id = ? AND online = 1 AND status = 'active'"),
    allOffline: db.prepare('UPDATE devices SET online = 0 WHERE online = 1'),
    list: db.prepare<[], DeviceRow>('SELECT * FROM devices ORDER BY service_id, edge_id'),
    listService: db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE service_id = ? ORDER BY edge_id'),
    addSample: db.prepare('INSERT INTO edge_lag_samples (edge_id, at, applied_seq, lag) VALUES (?, ?, ?, ?)'),
    trimSamples: db.prepare(
      `DELETE FROM edge_lag_samples WHERE edge_id = ? AND id <= (
         SELECT id FROM edge_lag_samples WHERE edge_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
    ),
    clearSamples: db.prepare('DELETE FROM edge_lag_samples WHERE edge_id = ?'),
    samples: db.prepare<[string], LagSample>('SELECT at, applied_seq, lag FROM edge_lag_samples WHERE edge_id = ? ORDER BY id'),
    counts: db.prepare<[], { status: DeviceStatus; online: number; n: number }>('SELECT status, online, COUNT(*) AS n FROM devices GROUP BY status, online'),
    stateCounts: db.prepare<[], { state: EdgeState; n: number }>('SELECT state, COUNT(*) AS n FROM devices GROUP BY state'),
    stateCountsOf: db.prepare<[string], { state: EdgeState; n: number }>('SELECT state, COUNT(*) AS n FROM devices WHERE service_id = ? GROUP BY state'),
    lag: db.prepare<[], { behind: number; max: number | null }>("SELECT COUNT(*) FILTER (WHERE lag > 0) AS behind, MAX(lag) AS max FROM devices WHERE state <> 'revoked' AND state <> 'offline'"),
    lagOf: db.prepare<[string], { behind: number; max: number | null }>(
      "SELECT COUNT(*) FILTER (WHERE lag > 0) AS behind, MAX(lag) AS max FROM devices WHERE service_id = ? AND state <> 'revoked' AND state <> 'offline'",
    ),
    versions: db.prepare<[], { version: string; n: number }>("SELECT version, COUNT(*) AS n FROM devices WHERE status = 'active' AND version IS NOT NULL GROUP BY version"),
    versionsOf: db.prepare<[string], { version: string; n: number }>(
      "SELECT version, COUNT(*) AS n FROM devices WHERE service_id = ? AND status = 'active' AND version IS NOT NULL GROUP BY version",
    ),
  };
  const listStatements = new Map<string, { rows: ReturnType<Db['prepare']>; count: ReturnType<Db['prepare']> }>();

  /** The WHERE of an edge list and its parameters (every piece fixed text; values bound). */
  function where(f: EdgeListQuery): { sql: string; params: Record<string, unknown> } {
    const parts: string[] = [];
    const params: Record<string, unknown> = {};
    if (f.serviceId !== undefined) {
      parts.push('service_id = @service');
      params.service = f.serviceId;
    }
    if (f.state === undefined) parts.push("state <> 'revoked'");
    else if (f.state === 'outdated') {
      parts.push("status = 'active' AND version IS NOT NULL AND version <> @latest");
      params.latest = f.latest ?? '';
    } else if (f.state !== 'all') {
      parts.push('state = @state');
      params.state = f.state;
    }
    if (f.version !== undefined) {
      parts.push('version = @version');
      params.version = f.version;
    }
    if (f.search) {
      parts.push("edge_id LIKE @search ESCAPE '\\'");
      params.search = `%${f.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    }
    return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
  }

  return {
    get: (edgeId: string): DeviceRow | undefined => q.get.get(edgeId),
    byFingerprint: (fingerprint: string): DeviceRow | undefined => q.byFingerprint.get(fingerprint),
    /** True when this certificate was revoked or superseded by a later enrollment. */
    isCertRevoked: (fingerprint: string): boolean => q.certRevoked.get(fingerprint) === 1,

    /**
     * Records a newly issued device certificate. A re-enrollment replaces the edge's certificate and
     * revokes the one it had (reason 'superseded'), so an old or stolen certificate stops working.
     * The service check (`enrollConflict`) runs inside the same transaction as the write, so two
     * redemptions racing for one edge id cannot slip past it; on a conflict nothing changes.
     */
    enroll: db.transaction((rec: DeviceCertRecord, at: number, opts: { allowRevoked?: boolean } = {}): EnrollConflict | undefined => {
      const prev = q.get.get(rec.edgeId);
      if (!prev) {
        q.insert.run(rec.edgeId, rec.serviceId, rec.certSerial, rec.certFingerprint, rec.notAfter, at);
        return undefined;
      }
      const conflict = enrollConflict(prev, rec.serviceId, opts.allowRevoked);
      if (conflict) return conflict;
      if (prev.cert_fingerprint !== rec.certFingerprint) q.revokeCert.run(prev.cert_fingerprint, prev.cert_serial, prev.edge_id, at, 'superseded');
      // A moved edge (an operator's permission) does not carry the old service's lag history along.
      if (prev.service_id !== rec.serviceId) q.clearSamples.run(rec.edgeId);
      q.replaceCert.run(rec.serviceId, rec.certSerial, rec.certFingerprint, rec.notAfter, at, rec.edgeId);
      return undefined;
    }),

    /** Revokes an edge's device (and its current certificate). False when unknown or already revoked. */
    revoke: db.transaction((edgeId: string, reason: string, at: number): boolean => {
      const row = q.get.get(edgeId);
      if (!row || row.status === 'revoked') return false;
      q.revoke.run(at, reason, edgeId);
      q.revokeCert.run(row.cert_fingerprint, row.cert_serial, edgeId, at, reason);
      return true;
    }),

    /** Records what an edge's status message said; with `sample`, also a lag sample (capped per edge). */
    recordStatus: db.transaction((edgeId: string, s: DeviceStatusUpdate, sample: boolean): void => {
      if (q.status.run(s.online ? 1 : 0, s.at, s.appliedSeq, s.version, s.health, s.lag, edgeId).changes === 0) return;
      if (sample) {
        q.addSample.run(edgeId, s.at, s.appliedSeq, s.lag);
        q.trimSamples.run(edgeId, edgeId, cap);
      }
    }),
    /** A connection of the edge was accepted. */
    markSeen: (edgeId: string, at: number): void => void q.seen.run(at, edgeId),
    /** The edge's connection ended (without a will, or before any status). */
    markOffline: (edgeId: string, at: number): void => void q.offline.run(at, edgeId),
    /** Nobody is connected when the broker starts. */
    markAllOffline: (): void => void q.allOffline.run(),

    /** Records who revoked a device and why, in full (the certificate revocation keeps a short reason). */
    noteRevocation: (edgeId: string, by: string, reason: string): void => void q.noteRevocation.run(by, reason, edgeId),

    list: (serviceId?: string): DeviceRow[] => (serviceId === undefined ? q.list.all() : q.listService.all(serviceId)),
    /** One page of the edge list, filtered and sorted in SQL (indexes in schema/devices.ts), and the total that matched. */
    page(f: EdgeListQuery): { rows: DeviceRow[]; total: number } {
      const w = where(f);
      const col = EDGE_SORTS[f.sort ?? 'edge'];
      const dir = f.desc ? 'DESC' : 'ASC';
      const order = col === 'edge_id' ? `edge_id ${dir}` : `${col} IS NULL, ${col} ${dir}, edge_id`;
      const key = `${w.sql}|${order}`;
      let st = listStatements.get(key);
      if (!st) {
        st = { rows: db.prepare(`SELECT * FROM devices ${w.sql} ORDER BY ${order} LIMIT @limit OFFSET @offset`), count: db.prepare(`SELECT COUNT(*) FROM devices ${w.sql}`).pluck() };
        if (listStatements.size > 200) listStatements.clear();
        listStatements.set(key, st);
      }
      const limit = Math.max(0, Math.min(f.limit ?? 50, 100_000));
      const offset = Math.max(0, f.offset ?? 0);
      return { rows: st.rows.all({ ...w.params, limit, offset }) as DeviceRow[], total: Number(st.count.get(w.params)) };
    },
    /** Edges by state (every state present, zeros included). */
    stateCounts(serviceId?: string): Record<EdgeState, number> {
      const out = Object.fromEntries(EDGE_STATES.map((s) => [s, 0])) as Record<EdgeState, number>;
      for (const r of serviceId === undefined ? q.stateCounts.all() : q.stateCountsOf.all(serviceId)) if (r.state in out) out[r.state] += r.n;
      return out;
    },
    /** Connected edges behind their service's change log, and the largest lag among them. */
    lagSummary(serviceId?: string): { behind: number; max: number } {
      const r = serviceId === undefined ? q.lag.get() : q.lagOf.get(serviceId);
      return { behind: r?.behind ?? 0, max: r?.max ?? 0 };
    },
    /** Versions that active edges report, newest first, with how many edges run each. */
    versions(serviceId?: string): { version: string; n: number }[] {
      const rows = serviceId === undefined ? q.versions.all() : q.versionsOf.all(serviceId);
      return rows.sort((a, b) => compareVersions(b.version, a.version));
    },
    lagHistory: (edgeId: string): LagSample[] => q.samples.all(edgeId),
    counts(): { active: number; revoked: number; online: number } {
      const out = { active: 0, revoked: 0, online: 0 };
      for (const r of q.counts.all()) {
        out[r.status] += r.n;
        if (r.online) out.online += r.n;
      }
      return out;
    },
  };
}

export type DeviceRepo = ReturnType<typeof createDeviceRepo>;
