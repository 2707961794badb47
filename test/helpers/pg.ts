// A throwaway PostgreSQL cluster for tests: initdb in a temporary folder, a server on a free loopback
// port with its socket in that folder, never a system service. One cluster serves a whole test run
// (test/run.ts starts it for the PostgreSQL pass and passes its URL in MYKEY_TEST_PG_URL); a test
// file run on its own starts one for itself. Each test file gets a fresh database of its own.
//
// PostgreSQL refuses to run as root: as root the server runs as the `postgres` user Debian's package
// creates (or `nobody`), which owns the temporary folder.
import { execFileSync, spawn, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export const PG_BIN = process.env.MYKEY_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** True when the PostgreSQL server binaries are installed. */
export const havePostgres = existsSync(join(PG_BIN, 'initdb')) && existsSync(join(PG_BIN, 'pg_ctl'));

/** Which store the hub tests run on: MYKEY_TEST_STORE=pg makes test hubs use PostgreSQL. */
export const testStore: 'sqlite' | 'pg' = process.env.MYKEY_TEST_STORE === 'pg' ? 'pg' : 'sqlite';

export interface PgCluster {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  dir: string;
  /** Stops the server (immediate shutdown) and removes the folder. */
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** uid/gid to run the server as: ourselves, or, as root, the postgres (else nobody) user. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
      return { uid, gid };
    } catch {
      // try the next one
    }
  }
  throw new Error('running as root and no postgres or nobody user to run PostgreSQL as');
}

function run(cmd: string, args: string[], opts: SpawnOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout?.on('data', (d) => (out += d));
    p.stderr?.on('data', (d) => (out += d));
    p.once('error', reject);
    p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${out.slice(-2000)}`))));
  });
}

/** Starts a new cluster on a free loopback port. */
export async function startPgCluster(): Promise<PgCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-pg-'));
  const user = serverUser();
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  const opts: SpawnOptions = { cwd: dir, env: { ...process.env, LC_ALL: 'C' }, ...(user ?? {}) };
  await run(join(PG_BIN, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'], opts);
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      // fsync stays on: the kill -9 test relies on what PostgreSQL itself promises.
      await run(
        join(PG_BIN, 'pg_ctl'),
        ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-o', `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c max_connections=200`, 'start'],
        opts,
      );
      break;
    } catch (e) {
      // Another process took the port between the probe and the start: try another.
      if (attempt >= 3) throw new Error(`PostgreSQL did not start: ${(e as Error).message}\n${existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8').slice(-2000) : ''}`);
    }
  }
  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await run(join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], opts).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let own: Promise<PgCluster> | undefined;

/**
 * The cluster of this test run (MYKEY_TEST_PG_URL, set by test/run.ts), or one started for this
 * process and stopped when it exits. Returns the URL of its `postgres` database.
 */
async function clusterUrl(): Promise<string> {
  if (process.env.MYKEY_TEST_PG_URL) return process.env.MYKEY_TEST_PG_URL;
  if (!own) {
    own = startPgCluster();
    const c = await own;
    // uvu ends the process without awaiting anything: the server is stopped synchronously at exit.
    process.once('exit', () => {
      try {
        execFileSync(join(PG_BIN, 'pg_ctl'), ['-D', join(c.dir, 'data'), '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore', ...(serverUser() ?? {}) });
      } catch {
        // already gone
      }
      rmSync(c.dir, { recursive: true, force: true });
    });
  }
  return (await own).url;
}

/** A new, empty database on the run's cluster; returns its URL. */
export async function freshPgDatabase(prefix = 'mykey_test'): Promise<string> {
  const base = await clusterUrl();
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const c = new pg.Client({ connectionString: base });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}
