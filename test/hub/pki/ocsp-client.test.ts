// The OCSP client against the test CA's responder on loopback: what it logs when it refuses an
// answer (the code and why, never a serial), and responders that are down, failing or too talkative.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { createTestCa, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { startOcspResponder, type OcspForgery, type OcspResponder } from '../../../provisioning/test-ca/ocsp-responder.ts';
import { createOcspQuery } from '../../../hub/pki/ocsp-client.ts';
import { trustAnchorFromDer } from '../../../hub/pki/trust-anchors.ts';
import { checkUserCertificate, type CheckedCertificate } from '../../../hub/pki/user-cert.ts';
import type { Logger } from '../../../shared/log.ts';
import { issue } from '../../helpers/hub.ts';

interface Ctx {
  ca: TestCa;
  cert: IssuedCert;
  checked: CheckedCertificate;
  forge?: OcspForgery;
  ocsp: OcspResponder;
}
const test = suite<Ctx>('OCSP client', {} as Ctx);

function capturingLogger(lines: { level: string; msg: string; fields?: Record<string, unknown> }[]): Logger {
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  const l: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => l };
  return l;
}

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.cert = await issue(ctx.ca);
  const checked = checkUserCertificate(ctx.cert.certDer, [trustAnchorFromDer(ctx.ca.certDer, 'ca')], { now: new Date() });
  assert.ok(checked.ok);
  if (checked.ok) ctx.checked = checked.value;
  ctx.ocsp = await startOcspResponder({ ca: ctx.ca, status: () => undefined, forge: () => ctx.forge });
});
test.after(async (ctx) => {
  await ctx.ocsp?.close();
});

test('a refused answer is logged with its code and why, and no serial at info level or above', async (ctx) => {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const query = createOcspQuery({ url: ctx.ocsp.url, log: capturingLogger(lines) });
  ctx.forge = { certId: { issuerKeyHash: new Uint8Array(20) } };
  const v = await query(ctx.checked, new Date());
  assert.is(v.status, 'unknown');
  assert.is(v.ocspCode, 'ocsp_certid_mismatch');
  const warn = lines.find((l) => l.level === 'warn');
  assert.ok(warn, 'a warning was logged');
  assert.is(warn!.fields?.code, 'ocsp_certid_mismatch');
  const text = JSON.stringify(lines) + (v.detail ?? '');
  for (const s of [ctx.cert.serialHex, ctx.cert.serial.toString(), ctx.cert.serial.toString(16)]) assert.not.ok(text.includes(s), 'a serial was logged');
  ctx.forge = undefined;
  assert.equal(await query(ctx.checked, new Date()), { status: 'good', source: 'ocsp' });
});

test('a responder that is down, answers HTTP 500 or too many bytes is ocsp_unavailable or ocsp_malformed', async (ctx) => {
  const servers: Server[] = [];
  const serve = async (handler: Parameters<typeof createServer>[1]) => {
    const s = createServer(handler);
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(s.address() as { port: number }).port}/ocsp`;
  };
  try {
    const failing = await serve((_q, res) => void res.writeHead(500).end('down'));
    const big = await serve((_q, res) => void res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(Buffer.alloc(200_000)));
    const chunked = await serve((_q, res) => {
      // No content-length: the client must stop reading by itself.
      res.writeHead(200, { 'content-type': 'application/ocsp-response' });
      for (let i = 0; i < 50; i++) res.write(Buffer.alloc(4096));
      res.end();
    });
    const garbage = await serve((_q, res) => void res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(Buffer.from([0x30, 0x03, 0x0a, 0x01])));
    const closed = await serve(() => undefined);
    servers.at(-1)!.close();
    servers.at(-1)!.closeAllConnections();
    for (const [url, code] of [
      [failing, 'ocsp_unavailable'],
      [big, 'ocsp_malformed'],
      [chunked, 'ocsp_malformed'],
      [garbage, 'ocsp_malformed'],
      [closed, 'ocsp_unavailable'],
    ] as const) {
      const v = await createOcspQuery({ url, timeoutMs: 2000 })(ctx.checked, new Date());
      assert.is(v.status, 'unknown', url);
      assert.is(v.ocspCode, code, `${url}: ${v.detail}`);
    }
  } finally {
    for (const s of servers) s.close();
  }
});

test('without nextUpdate, the configured maximum age decides', async (ctx) => {
  ctx.forge = { thisUpdate: new Date(Date.now() - 20 * 60_000), nextUpdate: null };
  assert.is((await createOcspQuery({ url: ctx.ocsp.url, maxAgeMs: 30 * 60_000 })(ctx.checked, new Date())).status, 'good');
  const v = await createOcspQuery({ url: ctx.ocsp.url, maxAgeMs: 10 * 60_000 })(ctx.checked, new Date());
  assert.is(v.ocspCode, 'ocsp_stale');
});

test.run();
