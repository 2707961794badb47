import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MyKeyError } from '../../shared/errors.ts';
import { loadEdgeConfig, readerFilter } from '../../edge/config.ts';
import { createEdgeAgent } from '../../edge/main.ts';
import { silentLogger } from '../../shared/log.ts';

const dir = mkdtempSync(join(tmpdir(), 'mykey-edge-config-'));
const minimal = {
  edgeId: 'lib-counter-1',
  serviceId: 'library',
  hub: { url: 'https://hub.example:8443' },
  broker: { url: 'mqtts://hub.example:8883' },
  tls: { cert: join(dir, 'device.pem'), key: join(dir, 'device.key'), ca: join(dir, 'ca.pem') },
};

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.instance(e, MyKeyError);
    assert.is((e as MyKeyError).code, 'config_invalid');
    return ((e as MyKeyError).details?.errors as string[]) ?? [];
  }
  assert.unreachable('expected config_invalid');
  return [];
}

test('fills every default from a minimal file', () => {
  const file = join(dir, 'edge.json');
  writeFileSync(file, JSON.stringify(minimal));
  const c = loadEdgeConfig({ file, env: {} });
  assert.is(c.staleness.policy, 'refuse');
  assert.is(c.staleness.maxSeconds, 86_400);
  assert.is(c.kiosk.language, 'ja');
  assert.is(c.kiosk.host, '127.0.0.1');
  assert.equal(c.handoff.targets, []); // no usage history: stdout (the journal under systemd) is opt-in
  assert.equal(c.readers.include, []);
});

test('takes environment overrides over the file', () => {
  const c = loadEdgeConfig({
    overrides: minimal,
    env: { MYKEY_EDGE_KIOSK_LANGUAGE: 'en', MYKEY_EDGE_STALENESS_POLICY: 'answer-with-warning', MYKEY_EDGE_READERS_INCLUDE: 'ACS ACR1252*, Sony*' },
  });
  assert.is(c.kiosk.language, 'en');
  assert.is(c.staleness.policy, 'answer-with-warning');
  assert.equal(c.readers.include, ['ACS ACR1252*', 'Sony*']);
});

test('reports every problem at once', () => {
  const p = problems(() =>
    loadEdgeConfig({
      env: { MYKEY_EDGE_KIOSK_PORT: 'eighty' },
      overrides: {
        ...minimal,
        edgeId: 'Not An Id',
        broker: { url: 'http://nope' },
        staleness: { maxSeconds: 1, policy: 'guess' },
        handoff: { targets: [{ type: 'webhook', url: 'https://b.example/x', timeoutMs: 1 }] },
      },
    }),
  );
  const text = p.join('\n');
  for (const where of ['MYKEY_EDGE_KIOSK_PORT', '/edgeId', '/broker/url', '/staleness/maxSeconds', '/staleness/policy', '/handoff/targets/0/timeoutMs'])
    assert.ok(text.includes(where), `mentions ${where}`);
});

test('says what is wrong inside a hand-off target, by its type', () => {
  const p = problems(() => loadEdgeConfig({ env: {}, overrides: { ...minimal, handoff: { targets: [{ type: 'socket' }, { type: 'fax' }, { type: 'webhook', url: 'ftp://x' }] } } }));
  assert.ok(p.includes('/handoff/targets/0/path: Expected required property'), p.join('\n'));
  assert.ok(
    p.some((x) => x.startsWith('/handoff/targets/1/type: one of webhook, stdout, socket')),
    p.join('\n'),
  ); // more target types may follow
  assert.ok(p.some((x) => x.startsWith('/handoff/targets/2/url:')));
});

test('refuses to build an agent whose certificate files cannot be read, naming each', () => {
  const c = loadEdgeConfig({ overrides: minimal, env: {} });
  const p = problems(() => createEdgeAgent(c, { log: silentLogger }));
  assert.is(p.length, 3);
  assert.ok(p.some((x) => x.startsWith('/tls/key')));
});

test('matches reader names by patterns, or takes every reader without any', () => {
  const all = readerFilter([]);
  assert.ok(all('anything'));
  const f = readerFilter(['Virtual PCD 00 0*', 'sony rc-s380*']);
  assert.ok(f('Virtual PCD 00 00'));
  assert.ok(f('SONY RC-S380/P 00 00'));
  assert.not.ok(f('ACS ACR122U 00 00'));
  assert.not.ok(readerFilter(['a.c'])('abc'), 'a dot is literal');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
