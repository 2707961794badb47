// JPKI-verified registrations per second over HTTP: with revocation from the CRL alone
// (register_per_s), and with OCSP on as well (register_ocsp_per_s), in the same run.
//
// The hub runs in its own process, as in production, with the production defaults for checks:
// chain to the trust anchor, validity, key usage, policy, revocation against a loaded CRL of 100,000
// entries (requireRevocationStatus on), and the card's signature over a one-time challenge. Each
// registration is a distinct certificate, so the hub creates a new MyKey ID and commits it each time.
//
// Challenges are fetched and signed before the clock starts: on a real card the signing happens on
// the card, and a load generator that signed on this 2-core machine would measure its own RSA signing
// (~0.4 ms each) rather than the hub. Challenge issuance is measured separately (challenge_per_s).
//
// With OCSP on, the test CA's responder (provisioning/test-ca/ocsp-responder.ts) runs in its own
// process and a second hub (fresh data directory, same certificates) asks it about every
// certificate on top of the CRL check: each registration is a certificate the hub has never asked
// about, so the hub's answer cache never hits and every registration costs one OCSP round trip. The
// responder signs with the CA's RSA-2048 key (register_ocsp_per_s), then, in a third phase, with a
// delegated ECDSA P-256 responder certificate (register_ocsp_ec_responder_per_s). CPU time per
// registration of the hub and of the responder is reported beside them: on this shared 2-core
// machine they say more than the rates, which move with everyone else's load.
//
//   npm run bench -- register                                     all three phases, N = 8000
//   BENCH_REGISTER_PHASES=ocsp-ca BENCH_REGISTER_N=3000 npx tsx bench/register.bench.ts
//                                                                  only the phases named (crl, ocsp-ca,
//                                                                  ocsp-delegated-ec); metrics of the others are left out
//   BENCH_HUB_NODE_ARGS=--cpu-prof                                 profiles each hub (written in its cwd on SIGINT)
import { spawn, type ChildProcess } from 'node:child_process';
import { nodeArgsFrom, startHubProcess, stopHubProcess as stopHub, type HubProcess } from './hub-process.ts';
import { KeyObject, sign as cryptoSign } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateRsaKeyPair, issueUserAuthCert, toPem, type IssuedCert } from '../provisioning/test-ca/ca.ts';
import { initCaDir } from '../provisioning/test-ca/store.ts';
import { benchMain, progress, round } from './lib.ts';
import { jsonPost, runLoad } from './http-load.ts';

const N = Number(process.env.BENCH_REGISTER_N ?? 8000);
const CONCURRENCY = Number(process.env.BENCH_REGISTER_CONCURRENCY ?? 48);
const PHASES = (process.env.BENCH_REGISTER_PHASES ?? 'crl,ocsp-ca,ocsp-delegated-ec').split(',').map((p) => p.trim());

function startResponder(caDir: string, mode: 'ca' | 'delegated-ec'): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', 'bench/ocsp-responder-child.ts', caDir, mode], {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    let out = '';
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(/OCSP_URL (\S+)/);
      if (m) resolve({ proc, url: m[1] });
    });
    proc.once('exit', (code) => reject(new Error(`OCSP responder exited ${code}`)));
  });
}

function answeredBy(proc: ChildProcess): Promise<{ answered: number; cpuUs: number }> {
  return new Promise((resolve) => {
    proc.once('message', (m) => resolve(m as { answered: number; cpuUs: number }));
    proc.send('count');
  });
}

/** CPU time (user + system, microseconds) a process has used so far, from /proc (Linux). */
function cpuUsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of proc(5) (utime, stime) in clock ticks, 100 per second on Linux.
    return (Number(f[11]) + Number(f[12])) * 10_000;
  } catch {
    return NaN;
  }
}

function startHub(configPath: string): Promise<HubProcess> {
  return startHubProcess(configPath, { nodeArgs: nodeArgsFrom(process.env.BENCH_HUB_NODE_ARGS) });
}

benchMain(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-bench-reg-'));
  let hub: HubProcess | undefined;
  let responder: { proc: ChildProcess; url: string } | undefined;
  const crlServer = createServer();
  try {
    const caDir = await initCaDir(join(dir, 'ca'));
    const ca = caDir.ca;
    writeFileSync(join(dir, 'anchor.pem'), toPem(ca.certDer, 'CERTIFICATE'));
    progress(`publishing a CRL of 100,000 entries`);
    const crl = await caDir.publishCrl({ extraRandomEntries: 100_000 });
    crlServer.on('request', (_req, res) => res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(Buffer.from(crl)));
    await new Promise<void>((r) => crlServer.listen(0, '127.0.0.1', r));
    const crlUrl = `http://127.0.0.1:${(crlServer.address() as { port: number }).port}/crl`;

    // Distinct certificates; keys are shared among a few (issuing is cheap, RSA key generation is not).
    progress(`issuing ${N} user-authentication certificates`);
    const keys = await Promise.all(Array.from({ length: 16 }, () => generateRsaKeyPair()));
    const certs: IssuedCert[] = [];
    for (let i = 0; i < N; i++) {
      certs.push(await issueUserAuthCert(ca, { keyPair: keys[i % keys.length] }));
      if ((i + 1) % 2000 === 0) progress(`  ${i + 1}`);
    }
    const privateKeys = keys.map((k) => KeyObject.from(k.privateKey));

    // One registration phase: a hub with this config, N challenges, N signed proofs, N registrations.
    const phase = async (name: string, jpkiExtra: Record<string, unknown>) => {
      const configPath = join(dir, `${name}.json`);
      writeFileSync(
        configPath,
        JSON.stringify({
          dataDir: join(dir, `data-${name}`),
          http: { port: 0 },
          // Free ports for the broker and the device API: nothing else on the machine is disturbed.
          broker: { port: 0 },
          devices: { httpsPort: 0 },
          // One loopback client stands for N holders here: lift the per-client quota of outstanding challenges.
          jpki: { trustAnchors: [join(dir, 'anchor.pem')], crlSources: [crlUrl], challengeTtlSeconds: 3600, challengesPerClient: 100_000, ...jpkiExtra },
          rateLimits: { challenge: { perSecond: 1e6, burst: 1e6 }, register: { perSecond: 1e6, burst: 1e6 } },
        }),
      );
      hub = await startHub(configPath);
      const port = hub.port;
      // Wait until the hub has fetched and applied the CRL (registration needs revocation status).
      for (let i = 0; i < 100; i++) {
        const health = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { crls: number };
        if (health.crls >= 1) break;
        await new Promise((r) => setTimeout(r, 100));
      }

      progress(`${name}: fetching ${N} challenges`);
      const ch = await runLoad(
        port,
        Array.from({ length: N }, () => jsonPost('/v1/challenges', '{"purpose":"register"}')),
        CONCURRENCY,
        { keepBodies: true },
      );
      if (ch.statuses.some((s) => s !== 201)) throw new Error(`challenges failed: ${[...new Set(ch.statuses)].join(',')}`);
      const challenges = ch.bodies.map((b) => JSON.parse(b).challenge as string);

      progress(`${name}: signing them as the cards would`);
      const requests = challenges.map((c, i) =>
        jsonPost(
          '/v1/mykey-ids',
          JSON.stringify({
            proof: {
              challenge: c,
              certificate: Buffer.from(certs[i].certDer).toString('base64'),
              signature: cryptoSign('sha256', Buffer.from(c, 'base64url'), privateKeys[i % privateKeys.length]).toString('base64'),
            },
          }),
        ),
      );

      progress(`${name}: registering ${N} MyKey IDs over ${CONCURRENCY} connections`);
      const hubCpu0 = cpuUsOf(hub.proc.pid!);
      const responderCpu0 = responder ? (await answeredBy(responder.proc)).cpuUs : 0;
      const reg = await runLoad(port, requests, CONCURRENCY, { keepBodies: true });
      const hubCpuUs = (cpuUsOf(hub.proc.pid!) - hubCpu0) / N;
      const responderCpuUs = responder ? ((await answeredBy(responder.proc)).cpuUs - responderCpu0) / N : 0;
      const created = reg.statuses.filter((s) => s === 201).length;
      if (created !== N) {
        const bad = reg.statuses.findIndex((s) => s !== 201);
        throw new Error(`${name}: only ${created} of ${N} registrations were created: ${[...new Set(reg.statuses)].join(',')}; first refusal: ${reg.bodies[bad]}`);
      }
      await stopHub(hub);
      hub = undefined;
      const perS = N / (reg.ms / 1000);
      progress(`${name}: ${round(perS, 0)}/s over ${N} in ${round(reg.ms, 0)} ms; challenges: ${round(N / (ch.ms / 1000), 0)}/s`);
      progress(`${name}: CPU per registration: hub ${round(hubCpuUs, 0)} us${responder ? `, OCSP responder ${round(responderCpuUs, 0)} us` : ''}`);
      return { perS, challengePerS: N / (ch.ms / 1000), hubCpuUs, responderCpuUs };
    };

    const ocspPhase = async (mode: 'ca' | 'delegated-ec') => {
      responder = await startResponder(join(dir, 'ca'), mode);
      const r = await phase(`ocsp-${mode}`, { ocspUrl: responder.url });
      const { answered } = await answeredBy(responder.proc);
      // Every registration must have been answered by the responder, or the figure is not OCSP's.
      if (answered < N) throw new Error(`the OCSP responder answered ${answered} requests for ${N} registrations`);
      responder.proc.kill('SIGTERM');
      responder = undefined;
      return r;
    };
    const metrics: Record<string, { value: number; unit: string }> = {};
    if (PHASES.includes('crl')) {
      const plain = await phase('crl', {});
      metrics.register_per_s = { value: round(plain.perS, 0), unit: 'registrations/s' };
      // CPU per registration: what the figures above would be per core on an idle machine.
      metrics.register_hub_cpu_us = { value: round(plain.hubCpuUs, 0), unit: 'us' };
      metrics.challenge_per_s = { value: round(plain.challengePerS, 0), unit: 'challenges/s' };
    }
    if (PHASES.includes('ocsp-ca')) {
      const withOcsp = await ocspPhase('ca');
      metrics.register_ocsp_per_s = { value: round(withOcsp.perS, 0), unit: 'registrations/s' };
      metrics.register_ocsp_hub_cpu_us = { value: round(withOcsp.hubCpuUs, 0), unit: 'us' };
      metrics.register_ocsp_responder_cpu_us = { value: round(withOcsp.responderCpuUs, 0), unit: 'us' };
    }
    if (PHASES.includes('ocsp-delegated-ec')) {
      // The same with a delegated responder signing with ECDSA P-256: the hub's cost when RSA signing
      // at the responder is not what limits.
      const withEcResponder = await ocspPhase('delegated-ec');
      metrics.register_ocsp_ec_responder_per_s = { value: round(withEcResponder.perS, 0), unit: 'registrations/s' };
      metrics.register_ocsp_ec_responder_hub_cpu_us = { value: round(withEcResponder.hubCpuUs, 0), unit: 'us' };
      metrics.register_ocsp_ec_responder_cpu_us = { value: round(withEcResponder.responderCpuUs, 0), unit: 'us' };
    }
    return metrics;
  } finally {
    if (hub) await stopHub(hub);
    responder?.proc.kill('SIGTERM');
    crlServer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
