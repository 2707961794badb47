// The register CLI against a real hub over HTTP, as the README walks through it: each command asks
// for a challenge bound to its own operation (and parameters), so every one of them still works, and
// the hub would refuse any of its proofs elsewhere.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportPkcs8, toPem } from '../../provisioning/test-ca/ca.ts';
import { issue, startTestHub, type TestHub } from '../helpers/hub.ts';

const test = suite<{ h: TestHub }>('register CLI', {} as never);

test.before(async (ctx) => {
  ctx.h = await startTestHub();
  await ctx.h.hub.start();
});
test.after(async (ctx) => ctx.h.close());

function cli(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'provisioning/register-cli.ts', ...args], { cwd: process.cwd() }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

test('register, status, change-id, carry-over and invalidate each work with a proof for that operation', async ({ h }) => {
  const hub = h.hub.addresses.http!;
  const files = async (name: string) => {
    const c = await issue(h.ca);
    writeFileSync(join(h.dir, `${name}.cert.pem`), toPem(c.certDer, 'CERTIFICATE'));
    writeFileSync(join(h.dir, `${name}.key.pem`), toPem(await exportPkcs8(c.keyPair.privateKey), 'PRIVATE KEY'));
    return ['--cert', join(h.dir, `${name}.cert.pem`), '--key', join(h.dir, `${name}.key.pem`)];
  };
  const me = await files('me');
  const reg = await cli(['register', '--hub', hub, ...me]);
  assert.is(reg.code, 0, reg.out);
  assert.match(reg.out, '(created)');
  const st = await cli(['status', '--hub', hub, ...me]);
  assert.is(st.code, 0, st.out);
  assert.match(st.out, 'status: active');
  const ch = await cli(['change-id', '--hub', hub, ...me, '--mykey-id', 'c8pr-5myz']);
  assert.is(ch.code, 0, ch.out);
  assert.match(ch.out, 'MyKey ID: C8PR-5MYZ');
  const renewed = await files('renewed');
  const co = await cli(['carry-over', '--hub', hub, ...renewed, '--previous-cert', me[1], '--previous-key', me[3]]);
  assert.is(co.code, 0, co.out);
  assert.match(co.out, 'MyKey ID: C8PR-5MYZ');
  const inv = await cli(['invalidate', '--hub', hub, ...renewed]);
  assert.is(inv.code, 0, inv.out);
  assert.match(inv.out, 'status: invalidated');
});

test('a PIN on the command line is refused before anything else (ps shows arguments to every user)', async ({ h }) => {
  const r = await cli(['register', '--hub', h.hub.addresses.http!, '--reader', 'any', '--pin', '1234']);
  assert.is.not(r.code, 0);
  assert.match(r.out, /--pin is not accepted/);
  assert.not.ok(r.out.includes('touch the card'), 'no reader was opened');
});

test.run();
