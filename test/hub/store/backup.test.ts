// `hub/cli.ts backup` and `restore`: an online backup taken while the hub runs and writes, restored into
// a new data directory, gives a hub with every table equal, the same device CA and the same MyKey IDs;
// a backup that was altered or cut short is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { toPem } from '../../../provisioning/test-ca/ca.ts';
import { loadHubConfig } from '../../../hub/config.ts';
import { createHub } from '../../../hub/main.ts';
import { silentLogger } from '../../../shared/log.ts';
import { issue, startTestHub, type TestHub } from '../../helpers/hub.ts';

const root = new URL('../../../', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'mykey-backup-'));
let t: TestHub | undefined;

test.after(async () => {
  await t?.close();
  rmSync(work, { recursive: true, force: true });
});

/** Runs the CLI in its own process without blocking this one (the hub under test keeps serving). */
function cli(args: string[], dataDir: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'hub/cli.ts', ...args], { cwd: root, env: { ...process.env, MYKEY_HUB_DATA_DIR: dataDir } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

/** Every row of every table, in a stable order. */
function dump(path: string): Record<string, unknown[]> {
  const db = new Database(path, { readonly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all() as string[];
    return Object.fromEntries(tables.map((name) => [name, db.prepare(`SELECT * FROM "${name}" ORDER BY 1, 2`).all()]));
  } finally {
    db.close();
  }
}

async function register(th: TestHub, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await th.request('/v1/mykey-ids', { proof: await th.proof(await issue(th.ca)) });
    assert.is(res.status, 201, await res.clone().text());
    ids.push(((await res.json()) as { mykeyId: string }).mykeyId);
  }
  return ids;
}

test('a backup taken while the hub runs restores into a new data directory with every table equal', async () => {
  t = await startTestHub();
  await t.hub.start();
  const ids = await register(t, 30);
  // Writes keep coming while the backup runs: the copy must still be consistent.
  let writing = true;
  const writer = (async () => {
    while (writing) await register(t!, 1);
  })();
  const out = join(work, 'backup-1');
  const b = await cli(['backup', out], t.dir);
  writing = false;
  await writer;
  assert.is(b.code, 0, b.err + b.out);
  assert.match(b.out, /backup written to .*backup-1: \d+ files/);
  assert.match(b.err, /database 100%/, 'progress is shown');
  assert.ok(existsSync(join(out, 'manifest.json')));
  assert.ok(existsSync(join(out, 'device-ca', 'ca-key.pem')), 'the device CA travels with the database');

  // A second backup with the hub idle is compared table by table after restoring it.
  const quiet = join(work, 'backup-2');
  assert.is((await cli(['backup', quiet], t.dir)).code, 0);
  const restoredDir = join(work, 'restored');
  const r = await cli(['restore', quiet], restoredDir);
  assert.is(r.code, 0, r.err + r.out);
  assert.match(r.out, /restored the backup of/);
  assert.equal(dump(join(restoredDir, 'hub.sqlite')), dump(join(t.dir, 'hub.sqlite')));
  assert.is(readFileSync(join(restoredDir, 'device-ca', 'ca-cert.pem'), 'utf8'), readFileSync(join(t.dir, 'device-ca', 'ca-cert.pem'), 'utf8'));

  // The backup taken under writes is a consistent database too.
  const underWrites = join(work, 'restored-under-writes');
  assert.is((await cli(['restore', out], underWrites)).code, 0);
  const db = new Database(join(underWrites, 'hub.sqlite'), { readonly: true });
  assert.is(db.pragma('integrity_check', { simple: true }), 'ok');
  db.close();

  // A hub started on the restored directory knows the same holders.
  const anchor = join(work, 'anchor.pem');
  writeFileSync(anchor, toPem(t.ca.certDer, 'CERTIFICATE'));
  const restored = await createHub(
    loadHubConfig({
      env: {},
      overrides: { dataDir: restoredDir, http: { port: 0 }, broker: { port: 0 }, devices: { httpsPort: 0 }, jpki: { trustAnchors: [anchor], requireRevocationStatus: false } },
    }),
    { log: silentLogger },
  );
  await restored.start();
  try {
    assert.is(restored.deviceCa!.certPem, t.hub.deviceCa!.certPem, 'the restored hub signs with the same device CA');
    for (const id of ids) assert.is((await restored.mykeys.get(id))?.status, 'active', id);
    assert.equal(await restored.mykeys.counts(), await t.hub.mykeys.counts());
  } finally {
    await restored.stop();
  }
});

test('restore refuses an altered backup, a cut-short one, and an existing database without --force', async () => {
  const src = join(work, 'backup-2');
  const again = await cli(['restore', src], join(work, 'restored'));
  assert.is.not(again.code, 0);
  assert.match(again.err, /exists; restore into a new data directory, or pass --force/);

  appendFileSync(join(src, 'device-ca', 'ca-key.pem'), '\n');
  const altered = await cli(['restore', src], join(work, 'restored-altered'));
  assert.is.not(altered.code, 0);
  assert.match(altered.err, /device-ca\/ca-key\.pem does not match the manifest/);
  assert.not.ok(existsSync(join(work, 'restored-altered', 'hub.sqlite')), 'nothing is restored from an altered backup');

  rmSync(join(work, 'backup-1', 'manifest.json'));
  const partial = await cli(['restore', join(work, 'backup-1')], join(work, 'restored-partial'));
  assert.is.not(partial.code, 0);
  assert.match(partial.err, /is not a hub backup/);

  const exists = await cli(['backup', join(work, 'backup-2')], t!.dir);
  assert.is.not(exists.code, 0);
  assert.match(exists.err, /already exists/);
});

test.run();
