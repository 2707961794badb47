// JPKI-verified registrations per second over HTTP (register_per_s).
//
// The hub runs in its own process, as in production, with the production defaults for checks:
// chain to the trust anchor, validity, key usage, policy, revocation against a loaded CRL of 100,000
// entries (requireRevocationStatus on), and the card's signature over a one-time challenge. Each
// registration is a distinct certificate, so the hub creates a new MyKey ID and commits it each time.
//
// Challenges are fetched and signed before the clock starts: on a real card the signing happens on
// the card, and a load generator that signed on this 2-core machine would measure its own RSA signing
// (~0.4 ms each) rather than the hub. Challenge issuance is measured separately (challenge_per_s).
import { spawn, type ChildProcess } from 'node:child_process';
import { KeyObject, sign as cryptoSign } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateRsaKeyPair, issueUserAuthCert, toPem, type IssuedCert } from '../provisioning/test-ca/ca.ts';
import { initCaDir } from '../provisioning/test-ca/store.ts';
import { benchMain, progress, round } from './lib.ts';
import { jsonPost, runLoad } from './http-load.ts';

const N = Number(process.env.BENCH_REGISTER_N ?? 8000);
const CONCURRENCY = Number(process.env.BENCH_REGISTER_CONCURRENCY ?? 48);

function startHub(configPath: string): Promise<{ proc: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const extra = (process.env.BENCH_HUB_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const proc = spawn(process.execPath, [...extra, '--import', 'tsx', 'hub/main.ts', '--config', configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, MYKEY_LOG_LEVEL: 'info', MYKEY_LOG_FORMAT: 'pretty' },
    });
    let err = '';
    proc.stderr!.on('data', (d) => {
      err += d;
      const m = err.match(/hub listening \{"url":"http:\/\/127\.0\.0\.1:(\d+)"/);
      if (m) resolve({ proc, port: Number(m[1]) });
    });
    proc.once('exit', (code) => reject(new Error(`hub exited ${code}: ${err}`)));
  });
}

benchMain(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-bench-reg-'));
  let hub: { proc: ChildProcess; port: number } | undefined;
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

    const configPath = join(dir, 'hub.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        dataDir: join(dir, 'data'),
        http: { port: 0 },
        // One loopback client stands for N holders here: lift the per-client quota of outstanding challenges.
        jpki: { trustAnchors: [join(dir, 'anchor.pem')], crlSources: [crlUrl], challengeTtlSeconds: 3600, challengesPerClient: 100_000 },
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

    progress(`fetching ${N} challenges`);
    const ch = await runLoad(port, Array.from({ length: N }, () => jsonPost('/v1/challenges', '{"purpose":"register"}')), CONCURRENCY, { keepBodies: true });
    if (ch.statuses.some((s) => s !== 201)) throw new Error(`challenges failed: ${[...new Set(ch.statuses)].join(',')}`);
    const challenges = ch.bodies.map((b) => JSON.parse(b).challenge as string);
    const challengeMs = ch.ms;

    progress('signing them as the cards would');
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

    progress(`registering ${N} MyKey IDs over ${CONCURRENCY} connections`);
    const reg = await runLoad(port, requests, CONCURRENCY);
    const registerMs = reg.ms;
    const created = reg.statuses.filter((s) => s === 201).length;
    if (created !== N) throw new Error(`only ${created} of ${N} registrations were created: ${[...new Set(reg.statuses)].join(',')}`);
    const perS = N / (registerMs / 1000);
    progress(`register: ${round(perS, 0)}/s over ${N} in ${round(registerMs, 0)} ms; challenges: ${round(N / (challengeMs / 1000), 0)}/s`);
    return {
      register_per_s: { value: round(perS, 0), unit: 'registrations/s' },
      challenge_per_s: { value: round(N / (challengeMs / 1000), 0), unit: 'challenges/s' },
    };
  } finally {
    if (hub) {
      // SIGINT lets a profiled hub write its profile; SIGKILL if it does not go.
      hub.proc.kill('SIGINT');
      await new Promise((r) => setTimeout(r, 1500));
      hub.proc.kill('SIGKILL');
    }
    crlServer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
