// A real hub for the provisioning tests (HTTP API, device API over mutual TLS with the enrollment
// route, MQTT over TLS) and a token issuer: the hub's own one-time tokens, as the console issues them.
import { main } from '../../../../provisioning/enroll/cli.ts';
import type { EnrollDeps } from '../../../../provisioning/enroll/enroll.ts';
import { startTestHub, type TestHub } from '../../../helpers/hub.ts';

export interface EnrollHub {
  th: TestHub;
  /** The public HTTP API. */
  http: string;
  /** The device API (https://), where tokens are redeemed. */
  deviceApi: string;
  /** The device CA fingerprint, as the console shows it beside a token. */
  fingerprint: string;
  /** `--hub <device API> --ca-fingerprint <fingerprint>` for the enroll command line. */
  hubArgs: string[];
  /** Issues a one-time enrollment token for `edgeId` of `serviceId`. */
  issueToken(edgeId: string, serviceId?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startEnrollHub(opts: { serviceId?: string; overrides?: Record<string, unknown> } = {}): Promise<EnrollHub> {
  const th = await startTestHub({
    overrides: {
      broker: { port: 0 },
      devices: { httpsPort: 0 },
      // Every test enrolls from 127.0.0.1, many times a second.
      enrollment: { rateLimit: { perSecond: 1000, burst: 1000 } },
      ...opts.overrides,
    },
  });
  const { url } = await th.hub.start();
  const serviceId = opts.serviceId ?? 'library';
  await th.hub.links.createService({ id: serviceId, name: 'Town library' });
  return {
    th,
    http: url,
    deviceApi: th.hub.addresses.deviceApi!,
    fingerprint: th.hub.deviceCaFingerprint!,
    hubArgs: ['--hub', th.hub.addresses.deviceApi!, '--ca-fingerprint', th.hub.deviceCaFingerprint!],
    issueToken: async (edgeId, sid = serviceId) => (await th.hub.enrollmentTokens.issue({ serviceId: sid, edgeId, by: 'test' })).token,
    close: () => th.close(),
  };
}

/**
 * Runs the enroll CLI in process (one reader, `Test Reader 00`; 5 s timeouts), collecting what it
 * writes; `extra` replaces any of its dependencies (exec, unit and rules directories...).
 */
export async function runEnrollCli(argv: string[], extra: Partial<EnrollDeps> = {}): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await main(argv, { write: (l) => lines.push(l), listReaders: async () => ['Test Reader 00'], timeoutMs: 5000, ...extra }, {});
  return { code, out: lines.join('\n') };
}
