// A write acknowledged over HTTP survives kill -9 of the hub: a burst of registrations, the hub
// killed in the middle, restarted, and every acknowledged registration still there. On both stores:
// the SQLite file (WAL, synchronous NORMAL) and PostgreSQL (a fresh database on a throwaway cluster).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, signLikeCard, toPem, type IssuedCert } from '../../../provisioning/test-ca/ca.ts';
import { issue } from '../../helpers/hub.ts';
import { freshPgDatabase, havePostgres } from '../../helpers/pg.ts';

const dir = mkdtempSync(join(tmpdir(), 'mykey-kill-'));
let child: ChildProcess | undefined;

function startHub(configPath: string): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', 'hub/main.ts', '--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MYKEY_LOG_FORMAT: 'pretty' } });
    let err = '';
    const timer = setTimeout(() => reject(new Error(`hub did not start: ${err}`)), 20_000);
    proc.stderr!.on('data', (d) => {
      err += d;
      const m = err.match(/hub listening \{"url":"([^"]+)"/);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1] });
      }
    });
    proc.once('exit', (code) => reject(new Error(`hub exited with ${code}: ${err}`)));
  });
}

async function post(url: string, body: unknown) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
}

async function proofFor(url: string, cert: IssuedCert) {
  const { body } = await post(`${url}/v1/challenges`, { purpose: 'register' });
  const sig = await signLikeCard(cert.keyPair.privateKey, new Uint8Array(Buffer.from(body.challenge, 'base64url')));
  return { challenge: body.challenge, certificate: Buffer.from(cert.certDer).toString('base64'), signature: Buffer.from(sig).toString('base64') };
}

async function killMidBurst(store: 'sqlite' | 'postgres') {
  const ca = await createTestCa();
  writeFileSync(join(dir, `anchor-${store}.pem`), toPem(ca.certDer, 'CERTIFICATE'));
  const configPath = join(dir, `hub-${store}.json`);
  writeFileSync(
    configPath,
    JSON.stringify({
      dataDir: join(dir, `data-${store}`),
      ...(store === 'postgres' ? { store: { url: await freshPgDatabase() } } : {}),
      // Every listener on a free port: another hub on this machine may hold the defaults.
      http: { port: 0 },
      broker: { port: 0 },
      devices: { httpsPort: 0 },
      // One client stands for 400 holders here: lift the per-client quota of outstanding challenges.
      jpki: { trustAnchors: [join(dir, `anchor-${store}.pem`)], requireRevocationStatus: false, challengeTtlSeconds: 600, challengesPerClient: 1000 },
      rateLimits: { challenge: { perSecond: 100000, burst: 100000 }, register: { perSecond: 100000, burst: 100000 } },
    }),
  );
  const certs: IssuedCert[] = [];
  for (let i = 0; i < 400; i++) certs.push(await issue(ca));

  let hub = await startHub(configPath);
  child = hub.proc;
  const proofs: Awaited<ReturnType<typeof proofFor>>[] = [];
  for (const c of certs) proofs.push(await proofFor(hub.url, c));

  const acknowledged = new Map<number, string>();
  let next = 0;
  let killed = false;
  const worker = async () => {
    while (next < certs.length) {
      const i = next++;
      try {
        const r = await post(`${hub.url}/v1/mykey-ids`, { proof: proofs[i] });
        if (r.status === 201) acknowledged.set(i, r.body.mykeyId);
        if (acknowledged.size >= 150 && !killed) {
          killed = true;
          hub.proc.kill('SIGKILL');
        }
      } catch {
        // connection refused or reset after the kill: not acknowledged
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  assert.ok(killed, 'the hub was killed mid-burst');
  assert.ok(acknowledged.size >= 150, `acknowledged ${acknowledged.size}`);
  assert.ok(acknowledged.size < certs.length, 'some registrations were cut off by the kill');
  if (hub.proc.exitCode === null && hub.proc.signalCode === null) await new Promise((r) => hub.proc.once('exit', r));

  hub = await startHub(configPath);
  child = hub.proc;
  let found = 0;
  for (const [i, mykeyId] of acknowledged) {
    const r = await post(`${hub.url}/v1/mykey-ids`, { proof: await proofFor(hub.url, certs[i]) });
    assert.is(r.status, 200, `registration ${i} was acknowledged but is gone: ${JSON.stringify(r.body)}`);
    assert.is(r.body.mykeyId, mykeyId);
    found++;
  }
  assert.is(found, acknowledged.size);
  hub.proc.kill('SIGKILL');
}

test('every registration acknowledged before kill -9 is there after a restart (SQLite)', () => killMidBurst('sqlite'));
if (havePostgres) test('every registration acknowledged before kill -9 is there after a restart (PostgreSQL)', () => killMidBurst('postgres'));
else console.log('skipped (PostgreSQL 15 not installed): the kill -9 test on PostgreSQL');

test.after(() => {
  child?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test.run();
