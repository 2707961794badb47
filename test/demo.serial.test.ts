// CI runs the demo so it cannot rot: the whole story through the real stacks, exit code 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { requirePcscd } from './helpers/pcsc.ts';

test('npm run demo tells the whole story and exits 0', async () => {
  await requirePcscd();
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'provisioning/demo/run.ts', '--quiet'], { encoding: 'utf8', timeout: 240_000 });
  assert.is(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /All 9 steps worked/);
  assert.not.match(r.stdout, /✗/);
});

test.run();
