// The enrollment token goes only over TLS to the hub device CA pinned by its fingerprint: the attacks
// are a man in the middle with its own CA, one that also shows the real CA certificate in its chain
// (a CA certificate is public), and a plain http:// hub on the network. Each is refused with its own
// code and never receives a byte of the request; the token stays good for the real hub.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDeviceCa, createDeviceCsr, derToPem } from '../../../hub/pki/device-ca.ts';
import { normalizeFingerprint, redeemToken } from '../../../provisioning/enroll/hub-client.ts';
import { MyKeyError } from '../../../shared/errors.ts';
import { runEnrollCli, startEnrollHub, type EnrollHub } from './helpers/enroll-hub.ts';

interface Ctx {
  h: EnrollHub;
  root: string;
}
const test = suite<Ctx>('enrollment CA pinning', {} as Ctx);

test.before(async (ctx) => {
  ctx.h = await startEnrollHub();
  ctx.root = mkdtempSync(join(tmpdir(), 'mykey-pin-'));
});
test.after(async (ctx) => {
  await ctx.h.close();
  rmSync(ctx.root, { recursive: true, force: true });
});

const run = runEnrollCli;

/** A TLS server on 127.0.0.1 with the given chain; records every byte of application data it receives. */
async function mitm(keyPem: string, chainPem: string): Promise<{ url: string; received: Buffer[]; connections: () => number; close: () => Promise<void> }> {
  const received: Buffer[] = [];
  let connections = 0;
  const server: TlsServer = createTlsServer({ key: keyPem, cert: chainPem }, (s) => {
    s.on('data', (d: Buffer) => received.push(d));
    s.on('error', () => undefined);
  });
  server.on('connection', () => connections++);
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    connections: () => connections,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

test('a man in the middle with its own CA never receives the token (hub_ca_mismatch), and the token stays good', async (ctx) => {
  const evil = await openDeviceCa(join(ctx.root, 'evil-ca'));
  const creds = await evil.serverCredentials();
  const m = await mitm(creds.keyPem, `${creds.certPem.trim()}\n${evil.certPem.trim()}\n`);
  try {
    const token = await ctx.h.issueToken('lib-pin-1');
    const r = await run(['enroll', '--hub', m.url, '--ca-fingerprint', ctx.h.fingerprint, '--token', token, '--edge-id', 'lib-pin-1', '--state-dir', join(ctx.root, 'p1'), '--dry-run']);
    assert.is(r.code, 1, r.out);
    assert.match(r.out, /FAIL .*hub_ca_mismatch/);
    assert.match(r.out, /the token was not sent/);
    assert.match(r.out, /fix:\s+compare --ca-fingerprint/);
    assert.ok(m.connections() >= 1, 'the tool did reach the man in the middle');
    assert.is(Buffer.concat(m.received).length, 0, 'not one byte of the request reached it');
    // The real hub still takes the token.
    const ok = await run(['enroll', ...ctx.h.hubArgs, '--token', token, '--edge-id', 'lib-pin-1', '--state-dir', join(ctx.root, 'p1'), '--dry-run']);
    assert.is(ok.code, 0, ok.out);
  } finally {
    await m.close();
  }
});

test('a man in the middle that shows the real CA certificate in its chain is refused by the verified connection', async (ctx) => {
  const evil = await openDeviceCa(join(ctx.root, 'evil-ca-2'));
  const creds = await evil.serverCredentials();
  // Its own leaf, then the real hub's (public) CA certificate: the fingerprint is found, the signature is not.
  const m = await mitm(creds.keyPem, `${creds.certPem.trim()}\n${ctx.h.th.hub.deviceCa!.certPem.trim()}\n`);
  try {
    const csr = await createDeviceCsr('lib-pin-2');
    const token = await ctx.h.issueToken('lib-pin-2');
    const err = await redeemToken(m.url, { token, edgeId: 'lib-pin-2', csrPem: derToPem(csr.csrDer, 'CERTIFICATE REQUEST') }, { caFingerprint: ctx.h.fingerprint, timeoutMs: 5000 }).catch(
      (e: unknown) => e,
    );
    assert.instance(err, MyKeyError);
    assert.is((err as MyKeyError).code, 'hub_ca_mismatch', String(err));
    assert.is(Buffer.concat(m.received).length, 0, 'not one byte of the request reached it');
  } finally {
    await m.close();
  }
});

test('plain http:// to a host on the network is refused before any connection (insecure_transport); loopback is allowed', async (ctx) => {
  const realFetch = globalThis.fetch;
  let fetches = 0;
  globalThis.fetch = ((...a: Parameters<typeof fetch>) => {
    fetches++;
    return realFetch(...a);
  }) as typeof fetch;
  try {
    const token = await ctx.h.issueToken('lib-pin-3');
    for (const hub of ['http://hub.example:8080', 'http://10.0.0.5:8443', 'http://[2001:db8::1]:8080']) {
      const r = await run(['enroll', '--hub', hub, '--token', token, '--edge-id', 'lib-pin-3', '--state-dir', join(ctx.root, 'p3'), '--dry-run']);
      assert.is(r.code, 1, r.out);
      assert.match(r.out, /FAIL .*insecure_transport/, hub);
      assert.match(r.out, /fix:\s+pass the hub device API as --hub https:/);
      const direct = await redeemToken(hub, { token, edgeId: 'lib-pin-3', csrPem: 'x' }).catch((e: unknown) => e);
      assert.is((direct as MyKeyError).code, 'insecure_transport');
    }
    assert.is(fetches, 0, 'nothing was sent');
    // Loopback over http is a local tunnel or a development hub: allowed (here nothing listens).
    const local = await redeemToken('http://127.0.0.1:9', { token, edgeId: 'lib-pin-3', csrPem: 'x' }, { timeoutMs: 2000 }).catch((e: unknown) => e);
    assert.is((local as MyKeyError).code, 'unavailable');
  } finally {
    globalThis.fetch = realFetch;
  }
});

test('an https:// hub without --ca-fingerprint, or with a malformed one, is refused before the token is spent', async (ctx) => {
  const token = await ctx.h.issueToken('lib-pin-4');
  const none = await run(['enroll', '--hub', ctx.h.deviceApi, '--token', token, '--edge-id', 'lib-pin-4', '--state-dir', join(ctx.root, 'p4'), '--dry-run']);
  assert.is(none.code, 1);
  assert.match(none.out, /\[1\/7\][\s\S]*no --ca-fingerprint given/);
  const bad = await run(['enroll', '--hub', ctx.h.deviceApi, '--ca-fingerprint', 'AB:CD', '--token', token, '--edge-id', 'lib-pin-4', '--state-dir', join(ctx.root, 'p4'), '--dry-run']);
  assert.is(bad.code, 1);
  assert.match(bad.out, /validation_failed/);
  // Lower case without colons is the same fingerprint; the token was still unused.
  const plain = ctx.h.fingerprint.replace(/:/g, '').toLowerCase();
  const ok = await run(['enroll', '--hub', ctx.h.deviceApi, '--ca-fingerprint', plain, '--token', token, '--edge-id', 'lib-pin-4', '--state-dir', join(ctx.root, 'p4'), '--dry-run']);
  assert.is(ok.code, 0, ok.out);
});

test('fingerprints are accepted in node fingerprint256 form, lower case or bare hex', () => {
  const fp = 'AB:'.repeat(31) + 'CD';
  for (const v of [fp, fp.toLowerCase(), fp.replace(/:/g, ''), ` ${fp.replace(/:/g, '').toLowerCase()} `]) assert.is(normalizeFingerprint(v), fp);
  for (const v of ['', 'AB', fp + ':EF', 'ZZ'.repeat(32)]) assert.throws(() => normalizeFingerprint(v), /64 hex digits/);
});

test.run();
