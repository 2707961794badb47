// The fleet's health in counts: edges by state (what each edge's retained status says, or offline,
// or revoked) and how many run a version older than the newest one in the fleet.
import { EDGE_STATES, type DeviceRepo, type EdgeState } from '../../../store/device-repo.ts';

export interface FleetHealth {
  states: Record<EdgeState, number>;
  /** Active edges on an older version than `latest`. */
  outdated: number;
  latest?: string;
  /** Edges not revoked. */
  inService: number;
  /** Connected edges behind their service's change log, and the largest lag among them. */
  lag: { behind: number; max: number };
}

/** Which badge colour a state gets. */
export const STATE_KIND: Record<EdgeState | 'outdated', 'ok' | 'warn' | 'bad' | 'off'> = {
  ok: 'ok',
  degraded: 'warn',
  stale: 'warn',
  clock_unsure: 'warn',
  reader_missing: 'bad',
  offline: 'off',
  revoked: 'bad',
  outdated: 'warn',
};

export async function fleetHealth(devices: DeviceRepo, serviceId?: string): Promise<FleetHealth> {
  const states = await devices.stateCounts(serviceId);
  const versions = await devices.versions(serviceId);
  const latest = versions[0]?.version;
  const outdated = versions.slice(1).reduce((a, row) => a + row.n, 0);
  const inService = EDGE_STATES.filter((s) => s !== 'revoked').reduce((a, s) => a + states[s], 0);
  return { states, outdated, latest, inService, lag: await devices.lagSummary(serviceId) };
}
