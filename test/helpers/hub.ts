// Test helpers for the hub: a temporary hub with a JPKI-like test CA, and proofs made the way a card
// makes them (SIGN over DigestInfo(SHA-256(challenge))).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, generateRsaKeyPair, issueUserAuthCert, signLikeCard, toPem, type CryptoKeyPair, type IssuedCert, type TestCa } from '../../provisioning/test-ca/ca.ts';
import { loadHubConfig } from '../../hub/config.ts';
import { createHub, type Hub } from '../../hub/main.ts';
import { silentLogger } from '../../shared/log.ts';
import type { ChallengeRequest, Proof } from '../../shared/messages.ts';
import { freshPgDatabase, testStore } from './pg.ts';

export interface TestHub {
  hub: Hub;
  ca: TestCa;
  dir: string;
  request(path: string, body?: unknown, init?: RequestInit): Promise<Response>;
  /** A proof for one operation: its challenge request, or just the operation when it takes no parameters. */
  proof(cert: IssuedCert, purpose?: ChallengeRequest | ChallengeRequest['purpose']): Promise<Proof>;
  close(): Promise<void>;
}

/**
 * Makes a hub over a temp directory that trusts a fresh test CA (or the ones given). Its store is a
 * SQLite file there, or, with MYKEY_TEST_STORE=pg (test/run.ts's PostgreSQL pass), a fresh database
 * on the run's PostgreSQL cluster (test/helpers/pg.ts).
 */
export async function startTestHub(opts: { ca?: TestCa; extraCas?: TestCa[]; overrides?: Record<string, unknown>; now?: () => Date } = {}): Promise<TestHub> {
  const ca = opts.ca ?? (await createTestCa());
  const dir = mkdtempSync(join(tmpdir(), 'mykey-hub-'));
  const anchorFiles = [ca, ...(opts.extraCas ?? [])].map((c, i) => {
    const p = join(dir, `anchor-${i}.pem`);
    writeFileSync(p, toPem(c.certDer, 'CERTIFICATE'));
    return p;
  });
  const config = loadHubConfig({
    env: {},
    overrides: merge(
      {
        dataDir: dir,
        // Every listener on a free port: other hubs (other tests, a developer's npm start) may hold the defaults.
        http: { port: 0 },
        broker: { port: 0 },
        devices: { httpsPort: 0 },
        jpki: { trustAnchors: anchorFiles, requireRevocationStatus: false },
        rateLimits: { challenge: { perSecond: 10_000, burst: 10_000 }, register: { perSecond: 10_000, burst: 10_000 } },
        ...(testStore === 'pg' ? { store: { url: await freshPgDatabase(), poolSize: 4 } } : {}),
      },
      opts.overrides ?? {},
    ),
  });
  const hub = await createHub(config, { log: silentLogger, now: opts.now });
  const request = (path: string, body?: unknown, init: RequestInit = {}) =>
    Promise.resolve(
      hub.app.request(path, {
        method: body === undefined ? 'GET' : 'POST',
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
        ...init,
      }),
    );
  return {
    hub,
    ca,
    dir,
    request,
    async proof(cert, purpose = 'register') {
      const res = await request('/v1/challenges', typeof purpose === 'string' ? { purpose } : purpose);
      if (res.status !== 201) throw new Error(`challenge: ${res.status} ${await res.text()}`);
      const { challenge } = (await res.json()) as { challenge: string };
      const sig = await signLikeCard(cert.keyPair.privateKey, new Uint8Array(Buffer.from(challenge, 'base64url')));
      return { challenge, certificate: Buffer.from(cert.certDer).toString('base64'), signature: Buffer.from(sig).toString('base64') };
    },
    async close() {
      await hub.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Deep merge of plain objects (arrays and scalars in `b` replace), as hub config overrides are layered. */
export function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = cur && v && typeof cur === 'object' && typeof v === 'object' && !Array.isArray(v) ? merge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

let sharedKeys: CryptoKeyPair | undefined;
/** One RSA key pair reused across certificates where the key itself is not what a test is about. */
export async function sharedKeyPair(): Promise<CryptoKeyPair> {
  sharedKeys ??= await generateRsaKeyPair();
  return sharedKeys;
}

/** Issues a user-authentication certificate with the shared key pair. */
export async function issue(ca: TestCa, opts: Parameters<typeof issueUserAuthCert>[1] = {}): Promise<IssuedCert> {
  return issueUserAuthCert(ca, { keyPair: await sharedKeyPair(), ...opts });
}

/** Registers the holder of `cert` (a fresh certificate of the hub's CA when absent); throws unless the hub answers 201. */
export async function registerHolder(h: TestHub, cert?: IssuedCert): Promise<{ cert: IssuedCert; mykeyId: string }> {
  const c = cert ?? (await issue(h.ca));
  const reg = await h.request('/v1/mykey-ids', { proof: await h.proof(c) });
  if (reg.status !== 201) throw new Error(`register: ${reg.status} ${await reg.text()}`);
  return { cert: c, mykeyId: ((await reg.json()) as { mykeyId: string }).mykeyId };
}

/** A CRL of `ca` (number 1, valid for a day from now) revoking `serials` for keyCompromise. */
export async function crlRevoking(ca: TestCa, serials: bigint[]): Promise<Uint8Array> {
  const { writeCrl } = await import('../../provisioning/test-ca/crl-writer.ts');
  return writeCrl({
    issuerNameDer: ca.nameDer,
    signingKey: ca.keyPair.privateKey,
    thisUpdate: new Date(),
    nextUpdate: new Date(Date.now() + 86_400_000),
    crlNumber: 1n,
    entries: serials.map((serial) => ({ serial, revokedAt: new Date(), reason: 'keyCompromise' as const })),
  });
}

/** The members of hub replies that tests read (problem JSON or a challenge). */
export interface HubReply {
  code?: string;
  detail?: string;
  reason?: string;
  ocsp?: string;
  challenge?: string;
}
