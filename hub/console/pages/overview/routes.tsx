// Overview: MyKey IDs, links per service, the fleet's health by state (each count links to the
// filtered edge list), and the revocation status.
import type { ConsoleApp, ConsoleContext } from '../../context.tsx';
import type { RevocationRunRow } from '../../../store/revocation-repo.ts';
import { fleetHealth } from '../edges/health.ts';
import { OverviewPage, type OverviewData } from './view.tsx';

export function mountOverviewRoutes(r: ConsoleApp, x: ConsoleContext): void {
  const { deps } = x;
  r.get('/', async (c) => {
    const own = c.get('session').operator.serviceId;
    const counts = await deps.linkRepo.linkCounts();
    const services = (await deps.linkRepo.services())
      .filter((s) => own === undefined || s.id === own)
      .map((s) => ({
        id: s.id,
        name: s.name,
        active: counts.find((n) => n.service_id === s.id && n.state === 'active')?.n ?? 0,
        suspended: counts.find((n) => n.service_id === s.id && n.state === 'suspended')?.n ?? 0,
      }));
    const d: OverviewData = { services, edges: deps.devices ? await fleetHealth(deps.devices, own) : undefined };
    if (own === undefined) {
      d.mykeyIds = await deps.mykeys.counts();
      const seen = new Set<string>();
      d.lastRuns = (await deps.revocations.recentRuns(500)).filter((run: RevocationRunRow) => !seen.has(run.source) && seen.add(run.source));
      d.crls = await deps.revocations.states();
    }
    return x.html(c, <OverviewPage v={x.view(c)} d={d} />);
  });
}
