// Revocation runs: platform-wide, operators only.
import type { ConsoleApp, ConsoleContext } from '../../context.tsx';
import { RevocationsPage } from './view.tsx';

export function mountRevocationRoutes(r: ConsoleApp, x: ConsoleContext): void {
  r.get('/revocations', async (c) => {
    if (!x.isOperator(c)) return x.forbidden(c, 'revocations.view');
    return x.html(c, <RevocationsPage v={x.view(c)} runs={await x.deps.revocations.recentRuns(200)} crls={await x.deps.revocations.states()} imports={await x.deps.linkageImports?.()} />);
  });
}
