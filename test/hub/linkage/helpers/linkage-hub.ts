// The stack the certificate linkage tests run through: a hub listening on real sockets, the
// operator route over HTTP, CRLs fetched over HTTP, an enrolled edge's device API over mutual TLS (its
// change log applied to the edge's own cache, touches looked up in it as the reader does), and the
// service's webhook receiver.
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IssuedCert } from '../../../../provisioning/test-ca/ca.ts';
import { initCaDir, type CaDir } from '../../../../provisioning/test-ca/store.ts';
import { generateLinkageSigner, writeLinkageFile, type Linkage } from '../../../../provisioning/test-ca/linkage-writer.ts';
import { createDeviceCsr } from '../../../../hub/pki/device-ca.ts';
import { EdgeCache } from '../../../../edge/cache/edge-cache.ts';
import { certFields } from '../../../../edge/lookup/cert-key.ts';
import type { ChangeEntry } from '../../../../shared/sync.ts';
import { startTestHub, type TestHub } from '../../../helpers/hub.ts';

export const ADMIN = 'linkage-operator-token';

export interface Ctx {
  dir: string;
  caDir: CaDir;
  h: TestHub;
  signer: ReturnType<typeof generateLinkageSigner>;
  ecSigner: ReturnType<typeof generateLinkageSigner>;
  crlServer: Server;
  crlUrl: string;
  hookServer: Server;
  notices: Array<{ type: string; serviceUserId: string; reason?: string }>;
  edge: { certPem: string; keyPem: string; caPem: string };
  cache: EdgeCache;
}
/** Sets up the hub, the CRL and webhook servers and an enrolled edge of the library service. */
export async function setUp(ctx: Ctx): Promise<void> {
  ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-linkage-'));
  ctx.caDir = await initCaDir(join(ctx.dir, 'ca'));
  ctx.signer = generateLinkageSigner('ed25519');
  ctx.ecSigner = generateLinkageSigner('p256');
  const signerFiles = [ctx.signer, ctx.ecSigner].map((s, i) => {
    const p = join(ctx.dir, `linkage-signer-${i}.pem`);
    writeFileSync(p, s.publicKeyPem);
    return p;
  });
  ctx.crlServer = createServer((_req, res) => void ctx.caDir.publishCrl().then((der) => res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(Buffer.from(der))));
  await new Promise<void>((r) => ctx.crlServer.listen(0, '127.0.0.1', r));
  ctx.crlUrl = `http://127.0.0.1:${(ctx.crlServer.address() as { port: number }).port}/crl`;
  ctx.notices = [];
  ctx.hookServer = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const b = JSON.parse(body);
      ctx.notices.push(...(b.type === 'notices' ? b.notices : [b]));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => ctx.hookServer.listen(0, '127.0.0.1', r));

  ctx.h = await startTestHub({
    ca: ctx.caDir.ca,
    overrides: {
      admin: { token: ADMIN },
      jpki: { requireRevocationStatus: true, linkageSigners: signerFiles, linkageMaxBytes: 65536 },
      webhooks: { allowPrivateTargets: true, allowHttp: true, baseDelayMs: 100 },
    },
  });
  await ctx.h.hub.start();
  await ctx.h.hub.crlManager.fetchAndApply(ctx.crlUrl); // a first, empty CRL: revocation status known
  // Possession only at the counter (the service's choice): links by the card's certificate.
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library', requireHolderProof: false, webhookUrl: `http://127.0.0.1:${(ctx.hookServer.address() as { port: number }).port}/n` });
  const csr = await createDeviceCsr('lib-counter-1');
  const enrolled = await ctx.h.hub.enrollment!.enroll(csr.csrDer, { edgeId: 'lib-counter-1', serviceId: 'library', validityDays: 30 });
  if (!enrolled.ok) throw new Error(enrolled.message);
  ctx.edge = { certPem: enrolled.value.certPem, keyPem: csr.keyPem, caPem: enrolled.value.caPem };
  const cfg = await deviceCall(ctx, 'GET', '/v1/device/config');
  ctx.cache = new EdgeCache({ secret: new Uint8Array(Buffer.from(cfg.body.syncSecret, 'base64url')) });
}

export async function tearDown(ctx: Ctx): Promise<void> {
  await ctx.h.close();
  ctx.crlServer.close();
  ctx.hookServer.close();
  rmSync(ctx.dir, { recursive: true, force: true });
}

export function deviceCall(ctx: Ctx, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const url = new URL(path, ctx.h.hub.addresses.deviceApi);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, ca: ctx.edge.caPem, cert: ctx.edge.certPem, key: ctx.edge.keyPem, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

/** A call to the hub's public listener over a real socket. */
export async function http(ctx: Ctx, path: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(new URL(path, ctx.h.hub.addresses.http), init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

export async function register(ctx: Ctx, cert: IssuedCert): Promise<{ status: number; body: any }> {
  return http(ctx, '/v1/mykey-ids', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ proof: await ctx.h.proof(cert) }) });
}

/** The operator imports a linkage file over HTTP: the body as signed, the signature in its header. */
export function importFile(ctx: Ctx, bytes: Uint8Array, signature?: string) {
  return http(ctx, '/v1/admin/linkage-imports', {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/x-ndjson', ...(signature === undefined ? {} : { 'mykey-linkage-signature': signature }) },
    body: Buffer.from(bytes),
  });
}

/** The edge catches up over the device API and applies the change log to its cache, as its sync does. */
export async function sync(ctx: Ctx): Promise<ChangeEntry[]> {
  const r = await deviceCall(ctx, 'GET', `/v1/device/changes?after=${ctx.cache.appliedSeq}`);
  assert.is(r.status, 200, JSON.stringify(r.body));
  for (const e of r.body.entries as ChangeEntry[]) assert.is(ctx.cache.apply(e).result, 'applied');
  return r.body.entries;
}

/** A touch of a card in certificate mode: the edge reads the certificate and looks it up locally. */
export function touch(ctx: Ctx, cert: IssuedCert): string | undefined {
  const f = certFields(cert.certDer);
  if (!f.ok) throw new Error(f.message);
  return ctx.cache.lookupCert(f.value.issuerKey, f.value.serialHex, f.value.aki);
}

/** A registered card linked at the counter to a library card number. */
export async function holder(ctx: Ctx, serviceUserId: string): Promise<{ cert: IssuedCert; mykeyId: string }> {
  const cert = await ctx.caDir.issue();
  const reg = await register(ctx, cert);
  assert.is(reg.status, 201, JSON.stringify(reg.body));
  const linked = await deviceCall(ctx, 'POST', '/v1/device/links', { identity: { certificate: Buffer.from(cert.certDer).toString('base64') }, serviceUserId });
  assert.is(linked.status, 201, JSON.stringify(linked.body));
  return { cert, mykeyId: reg.body.mykeyId };
}

export const statusOf = (ctx: Ctx, id: string) => ctx.h.hub.db.prepare('SELECT status, status_reason FROM mykey_ids WHERE id = ?').get(id) as { status: string; status_reason: string | null };
export const eventsOf = (ctx: Ctx, id: string) => ctx.h.hub.db.prepare('SELECT kind FROM mykey_events WHERE mykey_id = ? ORDER BY seq').pluck().all(id) as string[];
export const signed = (ctx: Ctx, records: Linkage[], signer = ctx.signer) => writeLinkageFile({ issuer: ctx.caDir.ca, records, signer: signer.privateKey });
