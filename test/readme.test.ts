// The README is the newcomer's map: it must name every configuration key and the commands that exist.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { describeConfig } from '../shared/config.ts';
import { HubConfigSchema } from '../hub/config.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };

test('the README documents every hub configuration key and its environment variable', () => {
  for (const k of describeConfig(HubConfigSchema, 'MYKEY_HUB')) {
    assert.ok(readme.includes(`\`${k.path}\``), `README lacks ${k.path}`);
    assert.ok(readme.includes(`\`${k.env}\``), `README lacks ${k.env}`);
  }
});

test('the README commands exist', () => {
  for (const script of ['start', 'test', 'bench']) {
    assert.ok(pkg.scripts[script], script);
    assert.ok(readme.includes(`npm ${script === 'start' || script === 'test' ? script : `run ${script}`}`), script);
  }
  assert.ok(readme.includes('bash .ci/run'));
});

test.run();
