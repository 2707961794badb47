// Hub replicas for tests: two (or more) hubs in this process on one fresh PostgreSQL database (a
// throwaway cluster, test/helpers/pg.ts), each with its own listeners on free ports, sharing one data
// folder (the device CA, as replicas behind one load balancer share it). They are started one after
// the other, so the first creates the device CA and the others load it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHubConfig } from '../../../../hub/config.ts';
import { createHub, type Hub } from '../../../../hub/main.ts';
import { createTestCa, toPem, type TestCa } from '../../../../provisioning/test-ca/ca.ts';
import { createLogger } from '../../../../shared/log.ts';
import { freshPgDatabase } from '../../../helpers/pg.ts';

export interface Replicas {
  hubs: Hub[];
  urls: string[];
  ca: TestCa;
  dir: string;
  dbUrl: string;
  /** The replicas' warnings and errors (replica i's lines start with `[i]`), for failure messages. */
  logs: string[];
  close(): Promise<void>;
}

export async function startReplicas(n = 2, overrides: Record<string, unknown> = {}): Promise<Replicas> {
  const ca = await createTestCa();
  const dir = mkdtempSync(join(tmpdir(), 'mykey-replicas-'));
  const anchor = join(dir, 'anchor.pem');
  writeFileSync(anchor, toPem(ca.certDer, 'CERTIFICATE'));
  const dbUrl = await freshPgDatabase('mykey_replicas');
  const hubs: Hub[] = [];
  const urls: string[] = [];
  const logs: string[] = [];
  for (let i = 0; i < n; i++) {
    const config = loadHubConfig({
      env: {},
      overrides: {
        dataDir: dir,
        store: { url: dbUrl, poolSize: 4 },
        http: { port: 0 },
        broker: { port: 0 },
        devices: { httpsPort: 0 },
        jpki: { trustAnchors: [anchor], requireRevocationStatus: false },
        rateLimits: { challenge: { perSecond: 10_000, burst: 10_000 }, register: { perSecond: 10_000, burst: 10_000 } },
        replicas: { lockRetryMs: 200 },
        ...overrides,
      },
    });
    const log = createLogger(`replica-${i}`, { level: 'warn', json: false, write: (line) => void logs.push(`[${i}] ${line}`) });
    const hub = await createHub(config, { log });
    hubs.push(hub);
    urls.push((await hub.start()).url);
  }
  return {
    hubs,
    urls,
    ca,
    dir,
    dbUrl,
    logs,
    async close() {
      for (const h of hubs) await h.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A request to a hub's device listener (mutual TLS; no client certificate for enrollment redemption). */
export function deviceCall(hub: Hub, method: string, path: string, creds: { caPem: string; certPem?: string; keyPem?: string }, body?: unknown): Promise<{ status: number; body: any }> {
  const url = new URL(path, hub.addresses.deviceApi);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
    const req = httpsRequest(url, { method, ca: creds.caPem, cert: creds.certPem, key: creds.keyPem, headers }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: the assertion shows it
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    // A bound on the whole exchange: a replica that never answers fails the test, it does not hang it.
    req.setTimeout(30_000, () => req.destroy(new Error(`no answer from ${method} ${url.pathname} within 30 s`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
