// Operator passwords (scrypt) and the operator command line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import Database from 'better-sqlite3';
import { runConsoleCli } from '../../../hub/console/cli.ts';
import { LagChart, lagPoints } from '../../../hub/console/lag-chart.tsx';
import { hashPassword, passwordProblem, verifyPassword } from '../../../hub/console/password.ts';
import { createConsoleRepo } from '../../../hub/store/console-repo.ts';
import { LINK_MIGRATIONS } from '../../../hub/store/schema/links.ts';

test('a password hash is scrypt with N = 2^15 and a per-user salt, and verifies only the right password', async () => {
  const a = await hashPassword('a long enough password');
  const b = await hashPassword('a long enough password');
  assert.match(a, /^scrypt\$15\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
  assert.is.not(a, b); // salted
  assert.ok(await verifyPassword('a long enough password', a));
  assert.not.ok(await verifyPassword('a long enough passworD', a));
  assert.not.ok(await verifyPassword('a long enough password', 'plain'));
  assert.not.ok(await verifyPassword('a long enough password', a.replace('$15$', '$30$')));
});

test('short and trivial passwords are refused', () => {
  assert.ok(passwordProblem('short'));
  assert.ok(passwordProblem('aaaaaaaaaaaaaaaa'));
  assert.is(passwordProblem('correct horse battery staple'), undefined);
});

function db() {
  const d = new Database(':memory:');
  for (const m of LINK_MIGRATIONS) d.exec(m.sql);
  d.prepare("INSERT INTO services (id, name, status, sync_secret, created_at) VALUES ('library', 'Library', 'active', x'00', 0)").run();
  return d;
}

async function cli(d: Database.Database, argv: string[], password = 'correct horse battery staple') {
  const out: string[] = [];
  const code = await runConsoleCli(argv, d, { out: (l) => out.push(l), readPassword: async () => password });
  return { code, out: out.join('\n') };
}

test('the CLI adds operators with a role, and refuses what is incomplete', async () => {
  const d = db();
  assert.is((await cli(d, ['add-operator', 'ops'])).code, 2);
  assert.match((await cli(d, ['add-operator', 'ops', '--role', 'admin'])).out, '--role must be');
  assert.match((await cli(d, ['add-operator', 'lib', '--role', 'service-admin'])).out, 'needs --service');
  assert.match((await cli(d, ['add-operator', 'lib', '--role', 'service-admin', '--service', 'museum'])).out, 'no service museum');
  assert.match((await cli(d, ['add-operator', 'ops', '--role', 'operator', '--service', 'library'])).out, 'only for');
  assert.match((await cli(d, ['add-operator', 'ops', '--role', 'operator'], 'short')).out, 'at least 12');
  assert.match((await cli(d, ['add-operator', 'Bad Name', '--role', 'operator'])).out, 'operator name');
  assert.is((await cli(d, ['add-operator', 'ops', '--role', 'operator'])).code, 0);
  assert.is((await cli(d, ['add-operator', 'lib', '--role', 'service-admin', '--service', 'library'])).code, 0);
  assert.match((await cli(d, ['add-operator', 'ops', '--role', 'operator'])).out, 'exists');
  assert.is((await cli(d, ['list-operators'])).out, 'lib\tservice_admin\tlibrary\nops\toperator');
  const repo = createConsoleRepo(d);
  assert.ok(await verifyPassword('correct horse battery staple', (await repo.operator('ops'))!.password_hash));
  assert.is((await cli(d, ['set-password', 'ops'], 'another fine passphrase')).code, 0);
  assert.ok(await verifyPassword('another fine passphrase', (await repo.operator('ops'))!.password_hash));
  assert.is((await cli(d, ['disable-operator', 'lib'])).code, 0);
  assert.is((await repo.operator('lib'))!.disabled, 1);
  assert.equal(
    (await repo.auditLog()).map((a) => `${a.actor} ${a.action} ${a.target}`),
    ['cli operator.disable lib', 'cli operator.set_password ops', 'cli operator.add lib', 'cli operator.add ops'],
  );
  d.close();
});

test('lag chart points scale time to x and lag to y, the newest at the right edge', () => {
  const pts = lagPoints(
    [
      { at: 0, applied_seq: 1, lag: 0 },
      { at: 50, applied_seq: 1, lag: 10 },
      { at: 100, applied_seq: 11, lag: 5 },
    ],
    { x: 0, y: 0, w: 100, h: 10 },
  );
  assert.equal(pts, [
    { x: 0, y: 10 },
    { x: 50, y: 0 },
    { x: 100, y: 5 },
  ]);
  assert.equal(lagPoints([], { x: 0, y: 0, w: 1, h: 1 }), []);
});

test('the lag chart renders an SVG with a line and labelled gridlines', async () => {
  const svg = String(
    await LagChart({
      samples: [
        { at: 0, applied_seq: 1, lag: 3 },
        { at: 60_000, applied_seq: 4, lag: 0 },
      ],
    }),
  );
  assert.match(svg, /^<svg class="chart"/);
  assert.match(svg, /<path class="line" d="M/);
  assert.match(svg, />5<\/text>/); // the nice axis bound above 3
});

test.run();
