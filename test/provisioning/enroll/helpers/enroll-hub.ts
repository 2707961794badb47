// A real hub for the provisioning tests (HTTP API, device API over mutual TLS, MQTT over TLS) with
// the enrollment route and a token issuer. Until hub/main.ts wires the route itself, it is mounted
// here the way the console tests do, over the hub's own device enrollment (so revocations disconnect).
import { createEnrollmentTokens } from '../../../../hub/console/enrollment-tokens.ts';
import { mountEnrollmentRoutes } from '../../../../hub/http/enrollment-routes.ts';
import { createOpenApi } from '../../../../hub/http/openapi.ts';
import { createConsoleRepo, migrateConsole } from '../../../../hub/store/console-repo.ts';
import { startTestHub, type TestHub } from '../../../helpers/hub.ts';

export interface EnrollHub {
  th: TestHub;
  http: string;
  /** Issues a one-time enrollment token for `edgeId` of `serviceId`. */
  issueToken(edgeId: string, serviceId?: string): string;
  close(): Promise<void>;
}

export async function startEnrollHub(opts: { serviceId?: string } = {}): Promise<EnrollHub> {
  const th = await startTestHub({ overrides: { broker: { port: 0 }, devices: { httpsPort: 0 } } });
  const { url } = await th.hub.start();
  const serviceId = opts.serviceId ?? 'library';
  th.hub.links.createService({ id: serviceId, name: 'Town library' });
  migrateConsole(th.hub.db);
  const repo = createConsoleRepo(th.hub.db);
  const tokens = createEnrollmentTokens({ repo });
  mountEnrollmentRoutes(th.hub.app, createOpenApi({ title: 'test', version: '0' }), {
    consoleRepo: repo,
    linkRepo: th.hub.linkRepo,
    enrollment: th.hub.enrollment,
    tokens,
    brokerUrl: th.hub.addresses.mqtts,
    hubUrl: th.hub.addresses.deviceApi,
    rateLimit: { perSecond: 1000, burst: 1000 },
  });
  return {
    th,
    http: url,
    issueToken: (edgeId, sid = serviceId) => tokens.issue({ serviceId: sid, edgeId, by: 'test' }).token,
    close: () => th.close(),
  };
}
