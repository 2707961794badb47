// CSV import against a real hub listening on loopback: good rows are linked (and a second import
// finds them unchanged), bad rows end in the report with their codes, the call count in flight stays
// bounded, a busy hub is retried, and a wrong token stops the import instead of rejecting every row.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../provisioning/import/cli.ts';
import { importLinks, readLinkRows } from '../../../provisioning/import/import-links.ts';
import { issue, startTestHub, type TestHub } from '../../helpers/hub.ts';

interface Ctx {
  h: TestHub;
  url: string;
  token: string;
  ids: string[];
  dir: string;
}
const test = suite<Ctx>('import links', {} as Ctx);

test.before(async (ctx) => {
  ctx.h = await startTestHub();
  ctx.url = (await ctx.h.hub.start()).url;
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library' });
  await ctx.h.hub.links.createService({ id: 'museum', name: 'Museum' });
  ctx.token = (await ctx.h.hub.links.issueCredential('library', 'import')).token;
  ctx.ids = [];
  for (let i = 0; i < 4; i++) {
    const res = await ctx.h.request('/v1/mykey-ids', { proof: await ctx.h.proof(await issue(ctx.h.ca)) });
    assert.is(res.status, 201);
    ctx.ids.push(((await res.json()) as { mykeyId: string }).mykeyId);
  }
  ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-import-'));
});
test.after(async (ctx) => {
  await ctx.h.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

async function run(ctx: Ctx, args: string[], extra: { fetch?: typeof fetch; env?: NodeJS.ProcessEnv } = {}) {
  const lines: string[] = [];
  const code = await main(['import-links', '--hub', ctx.url, '--service', 'library', ...args], { err: (l) => lines.push(l), tty: false, env: extra.env ?? {}, fetch: extra.fetch });
  return { code, out: lines.join('\n') };
}

test('links the good rows and reports the bad ones by line, value and code; exit code 1', async (ctx) => {
  const [a, b, c] = ctx.ids;
  const unregistered = 'ZZZZ2222';
  const csv = join(ctx.dir, 'members.csv');
  writeFileSync(
    csv,
    '\ufeffmykey_id,service_user_id\r\n' +
      `${a},L-0001\r\n` +
      '\r\n' +
      `"${b.slice(0, 4)}-${b.slice(4)}","L,0002"\r\n` +
      `${c},L-0003\r\n` +
      `${unregistered},L-0004\r\n` +
      'NOT-AN-ID,L-0005\r\n' +
      `${a},L-0006\r\n`,
  );
  const r = await run(ctx, ['--token', ctx.token, '--csv', csv, '--concurrency', '2']);
  assert.is(r.code, 1, r.out);
  assert.match(r.out, /4 row\(s\) to link, 2 rejected while reading/);
  assert.match(r.out, /4\/4 rows: 3 linked, 0 replaced, 0 unchanged, 1 rejected/);
  assert.match(r.out, /rejected 3 row\(s\): /);
  const report = readFileSync(join(ctx.dir, 'members.rejected.csv'), 'utf8').trim().split('\r\n');
  assert.equal(report, [
    'line,mykey_id,service_user_id,code,message',
    `6,${unregistered},L-0004,mykey_id_not_found,${report[1].split(',').slice(4).join(',')}`,
    `7,NOT-AN-ID,L-0005,mykey_id_malformed,"not a MyKey ID (8 characters of 2-9 and A-Z without I, L, O)"`,
    `8,${a},L-0006,conflict,the MyKey ID appears again (first on line 2)`,
  ]);
  assert.is((await ctx.h.hub.links.linksOf(b)).find((l) => l.serviceId === 'library')?.serviceUserId, 'L,0002');
});

test('a second import of the same good rows finds them unchanged and exits 0', async (ctx) => {
  const [a, b, c] = ctx.ids;
  const csv = join(ctx.dir, 'again.csv');
  writeFileSync(csv, `mykey_id,service_user_id\n${a},L-0001\n${b},"L,0002"\n${c},L-0003\n`);
  const r = await run(ctx, ['--csv', csv], { env: { MYKEY_SERVICE_TOKEN: ctx.token } });
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /3\/3 rows: 0 linked, 0 replaced, 3 unchanged, 0 rejected/);
  assert.not.ok(existsSync(join(ctx.dir, 'again.rejected.csv')));
});

test('calls in flight stay within the bound, and a busy hub (429) is retried', async (ctx) => {
  const d = ctx.ids[3];
  const rows = readLinkRows(`mykey_id,service_user_id\n${ctx.ids.map((id, i) => `${id},M-${i}`).join('\n')}\n`).rows;
  let inFlight = 0;
  let max = 0;
  let busyOnce = true;
  const counting: typeof fetch = async (input, init) => {
    inFlight++;
    max = Math.max(max, inFlight);
    try {
      if (busyOnce && String(init?.body).includes(d)) {
        busyOnce = false;
        return new Response(JSON.stringify({ code: 'rate_limited' }), { status: 429, headers: { 'retry-after': '0' } });
      }
      return await fetch(input, init);
    } finally {
      inFlight--;
    }
  };
  const s = await importLinks({ hubUrl: ctx.url, serviceId: 'library', token: ctx.token, rows, concurrency: 2, fetch: counting, sleep: async () => {} });
  assert.ok(max <= 2, `max in flight ${max}`);
  assert.is(busyOnce, false);
  assert.equal([s.linked, s.replaced, s.unchanged, s.rejected], [1, 3, 0, 0]);
});

test('a wrong token or another service stops the import: nothing rejected row by row', async (ctx) => {
  const csv = join(ctx.dir, 'tok.csv');
  writeFileSync(csv, `mykey_id,service_user_id\n${ctx.ids.map((id, i) => `${id},T-${i}`).join('\n')}\n`);
  const bad = await run(ctx, ['--token', 'not-a-token', '--csv', csv, '--concurrency', '1']);
  assert.is(bad.code, 1);
  assert.match(bad.out, /stopped: unauthorized/);
  assert.match(bad.out, /4 row\(s\) not linked/);
  const museum = (await ctx.h.hub.links.issueCredential('museum', 'x')).token;
  const other = await run(ctx, ['--token', museum, '--csv', csv, '--concurrency', '1']);
  assert.match(other.out, /stopped: forbidden/);
  assert.is((await run(ctx, ['--csv', join(ctx.dir, 'missing.csv'), '--token', 'x'])).code, 2);
  const dry = await run(ctx, ['--csv', csv, '--dry-run']);
  assert.is(dry.code, 0, dry.out);
  assert.match(dry.out, /4 row\(s\) would be sent/);
});

test.run();
