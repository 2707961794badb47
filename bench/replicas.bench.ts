// JPKI-verified registrations per second with two hub replicas on one PostgreSQL database
// (register_per_s_pg), beside one hub on its SQLite file in the same run (register_per_s_sqlite_1hub).
//
// Each hub runs in its own process with the same checks (chain, validity, key usage, policy, the
// card's signature over a one-time challenge; revocation status not required, so no CRL is loaded:
// what differs is the store). With replicas, every challenge is issued by one replica and its proof
// registered at the other, as a load balancer would spread a holder's two requests: the challenge
// store is the shared one. Challenges are fetched and signed before the clock starts (the card signs,
// not the hub). The PostgreSQL server is a throwaway cluster on this machine (test/helpers/pg.ts), so
// on the shared 2-core machine it competes with the hubs for the same cores.
import type { ChildProcess } from 'node:child_process';
import { KeyObject, sign as cryptoSign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, generateRsaKeyPair, issueUserAuthCert, toPem, type IssuedCert } from '../provisioning/test-ca/ca.ts';
import { startHubProcess as startHub } from './hub-process.ts';
import { startPgCluster, type PgCluster } from '../test/helpers/pg.ts';
import { jsonPost, runLoad } from './http-load.ts';
import { benchMain, progress, round } from './lib.ts';
import pg from 'pg';

const N = Number(process.env.BENCH_REPLICAS_N ?? 3000);
const CONCURRENCY = Number(process.env.BENCH_REPLICAS_CONCURRENCY ?? 32);

benchMain(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-bench-replicas-'));
  const hubs: ChildProcess[] = [];
  let cluster: PgCluster | undefined;
  try {
    const ca = await createTestCa();
    writeFileSync(join(dir, 'anchor.pem'), toPem(ca.certDer, 'CERTIFICATE'));
    progress(`issuing ${2 * N} user-authentication certificates`);
    const keys = await Promise.all(Array.from({ length: 16 }, () => generateRsaKeyPair()));
    const certs: IssuedCert[] = [];
    for (let i = 0; i < 2 * N; i++) certs.push(await issueUserAuthCert(ca, { keyPair: keys[i % keys.length] }));
    const privateKeys = keys.map((k) => KeyObject.from(k.privateKey));
    progress('starting a throwaway PostgreSQL cluster');
    cluster = await startPgCluster();
    const admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    await admin.query('CREATE DATABASE mykey_bench');
    await admin.end();
    const dbUrl = cluster.url.replace(/\/postgres$/, '/mykey_bench');

    const configOf = (name: string, store: Record<string, unknown>) => {
      const p = join(dir, `${name}.json`);
      writeFileSync(
        p,
        JSON.stringify({
          // Replicas share the data folder (device CA); the SQLite hub has its own.
          dataDir: join(dir, name === 'sqlite' ? 'data-sqlite' : 'data-pg'),
          store,
          http: { port: 0 },
          broker: { port: 0 },
          devices: { httpsPort: 0 },
          jpki: { trustAnchors: [join(dir, 'anchor.pem')], requireRevocationStatus: false, challengeTtlSeconds: 3600, challengesPerClient: 100_000 },
          rateLimits: { challenge: { perSecond: 1e6, burst: 1e6 }, register: { perSecond: 1e6, burst: 1e6 } },
        }),
      );
      return p;
    };

    /** Challenges from `issuers` (round robin), signed; registrations sent to `registrars` (the next one along), all at once. */
    const phase = async (name: string, ports: number[], offset: number) => {
      const per = Math.ceil(N / ports.length);
      progress(`${name}: fetching ${N} challenges`);
      const fetched = await Promise.all(
        ports.map((port) =>
          runLoad(
            port,
            Array.from({ length: per }, () => jsonPost('/v1/challenges', '{"purpose":"register"}')),
            CONCURRENCY,
            { keepBodies: true },
          ),
        ),
      );
      const requests: Buffer[][] = ports.map(() => []);
      fetched.forEach((f, p) => {
        if (f.statuses.some((s) => s !== 201)) throw new Error(`${name}: challenges failed: ${[...new Set(f.statuses)].join(',')}`);
        f.bodies.forEach((b, j) => {
          const i = offset + p * per + j;
          const c = JSON.parse(b).challenge as string;
          const proof = {
            challenge: c,
            certificate: Buffer.from(certs[i]!.certDer).toString('base64'),
            signature: cryptoSign('sha256', Buffer.from(c, 'base64url'), privateKeys[i % privateKeys.length]!).toString('base64'),
          };
          // Registered at the next replica along (the same hub when there is one).
          requests[(p + 1) % ports.length]!.push(jsonPost('/v1/mykey-ids', JSON.stringify({ proof })));
        });
      });
      progress(`${name}: registering ${per * ports.length} MyKey IDs over ${CONCURRENCY} connections`);
      const t0 = performance.now();
      const done = await Promise.all(ports.map((port, p) => runLoad(port, requests[p]!, Math.ceil(CONCURRENCY / ports.length), { keepBodies: true })));
      const ms = performance.now() - t0;
      const statuses = done.flatMap((d) => d.statuses);
      const created = statuses.filter((s) => s === 201).length;
      if (created !== statuses.length)
        throw new Error(`${name}: only ${created} of ${statuses.length} created: ${[...new Set(statuses)].join(',')}; ${done.flatMap((d) => d.bodies).find((b) => !b.includes('mykeyId'))}`);
      const perS = created / (ms / 1000);
      progress(`${name}: ${round(perS, 0)} registrations/s (${created} in ${round(ms, 0)} ms)`);
      return perS;
    };

    const sqlite = await startHub(configOf('sqlite', {}));
    hubs.push(sqlite.proc);
    const sqlitePerS = await phase('SQLite, one hub', [sqlite.port], 0);
    sqlite.proc.kill('SIGKILL');

    const a = await startHub(configOf('a', { url: dbUrl, poolSize: 10 }));
    hubs.push(a.proc);
    const b = await startHub(configOf('b', { url: dbUrl, poolSize: 10 }));
    hubs.push(b.proc);
    const pgPerS = await phase('PostgreSQL, two replicas', [a.port, b.port], N);
    return {
      register_per_s_pg: { value: round(pgPerS, 0), unit: 'registrations/s' },
      register_per_s_sqlite_1hub: { value: round(sqlitePerS, 0), unit: 'registrations/s' },
    };
  } finally {
    for (const h of hubs) h.kill('SIGKILL');
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
