// Enrollment gives the edge its release key: the one the hub is configured with (told in the
// enrollment answer), or the one the technician passes, which wins; a malformed key is refused.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEdgeConfig } from '../../../edge/config.ts';
import { main } from '../../../provisioning/enroll/cli.ts';
import { stateLayout } from '../../../provisioning/enroll/state-dir.ts';
import { generateReleaseKeys } from '../../../provisioning/release/sign.ts';
import { startEnrollHub, type EnrollHub } from '../enroll/helpers/enroll-hub.ts';

interface Ctx {
  h: EnrollHub;
  root: string;
  hubKey: string;
}
const test = suite<Ctx>('enrollment release key', {} as Ctx);

test.before(async (ctx) => {
  ctx.hubKey = generateReleaseKeys().publicKeyLine;
  ctx.h = await startEnrollHub({ overrides: { releases: { publicKeys: [ctx.hubKey] } } });
  ctx.root = mkdtempSync(join(tmpdir(), 'mykey-enroll-key-'));
});
test.after(async (ctx) => {
  await ctx.h.close();
  rmSync(ctx.root, { recursive: true, force: true });
});

async function enroll(ctx: Ctx, edgeId: string, extra: string[] = []) {
  const lines: string[] = [];
  const dir = join(ctx.root, edgeId);
  const code = await main(
    ['enroll', ...ctx.h.hubArgs, '--token', await ctx.h.issueToken(edgeId), '--edge-id', edgeId, '--state-dir', dir, '--dry-run', ...extra],
    { write: (l) => lines.push(l), listReaders: async () => ['Test Reader 00'], timeoutMs: 5000 },
    {},
  );
  return { code, out: lines.join('\n'), dir };
}

test("the hub's release key is written into the edge config", async (ctx) => {
  const r = await enroll(ctx, 'lib-key-1');
  assert.is(r.code, 0, r.out);
  assert.is(loadEdgeConfig({ file: stateLayout(r.dir).config, env: {} }).updates.releaseKey, ctx.hubKey);
});

test("the technician's --release-key wins; a malformed one is refused", async (ctx) => {
  const own = generateReleaseKeys().publicKeyLine;
  const r = await enroll(ctx, 'lib-key-2', ['--release-key', own]);
  assert.is(r.code, 0, r.out);
  assert.is(loadEdgeConfig({ file: stateLayout(r.dir).config, env: {} }).updates.releaseKey, own);
  const bad = await enroll(ctx, 'lib-key-3', ['--release-key', 'not-a-key']);
  assert.is.not(bad.code, 0);
  assert.match(bad.out, /release key is not an Ed25519 public key/);
});

test.run();
