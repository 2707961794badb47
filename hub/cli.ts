// Operator commands that work on the hub's data directly (the hub may be running: SQLite allows it,
// and the running hub picks imported CRLs up within seconds).
//
//   tsx hub/cli.ts crl-import <file.crl> [--config hub.json]
//   tsx hub/cli.ts crl-fetch  <url>      [--config hub.json]
//   tsx hub/cli.ts revocation-runs       [--config hub.json]
//   tsx hub/cli.ts linkage-import <file> <file.sig> [--dry-run] [--config hub.json]
//   tsx hub/cli.ts linkage-imports       [--config hub.json]
//   tsx hub/cli.ts backup  <dir>         [--config hub.json]
//   tsx hub/cli.ts restore <dir> [--force] [--config hub.json]
//   tsx hub/cli.ts device-ca rotate [--leaked] [--config hub.json]
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MyKeyError } from '../shared/errors.ts';
import { createLogger } from '../shared/log.ts';
import { loadHubConfig } from './config.ts';
import { createHub, HUB_VERSION, type Hub } from './main.ts';
import type { RevocationRunSummary } from './revocation/crl-manager.ts';
import { backupHub, restoreHub, type BackupProgress } from './store/backup.ts';
import { rotateDeviceCa } from './pki/device-ca.ts';

const USAGE = `usage:
  tsx hub/cli.ts crl-import <file.crl> [--config hub.json]   verify, index and match a CRL file (DER or PEM)
  tsx hub/cli.ts crl-fetch <url> [--config hub.json]         fetch a CRL now and apply it
  tsx hub/cli.ts revocation-runs [--config hub.json]         the last revocation runs
  tsx hub/cli.ts linkage-import <file> <file.sig> [--dry-run] [--config hub.json]
                                                            import a signed certificate linkage file (新旧シリアル番号紐付け):
                                                            re-binds MyKey IDs to renewed certificates; exit 2 if a line was refused;
                                                            --dry-run: report what it would do, write nothing
  tsx hub/cli.ts linkage-imports [--config hub.json]         the last linkage imports
  tsx hub/cli.ts backup <dir> [--config hub.json]            online backup (database, device CA, CRLs) into a new directory
  tsx hub/cli.ts restore <dir> [--force] [--config hub.json] restore a backup into the configured data directory (hub stopped)
  tsx hub/cli.ts device-ca rotate [--leaked] [--config hub.json]
                                                            a new device CA key; the old CA stays trusted until its last
                                                            certificate expires (not with --leaked); restart the hub after`;

function printSummary(s: RevocationRunSummary) {
  const rows: [string, string][] = [
    ['source', s.source],
    ['issuer', s.issuer],
    ['CRL number', s.crlNumber ?? '-'],
    ['this update', s.thisUpdate],
    ['next update', s.nextUpdate ?? '-'],
    ['entries', s.entries.toLocaleString('en')],
    ['bound certificates newly revoked', String(s.matched)],
    ['MyKey IDs suspended', String(s.newlySuspended)],
    ['duration', `${s.durationMs} ms`],
  ];
  if (s.warning) rows.push(['WARNING', s.warning]);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(33)} ${v}`);
}

/**
 * The hub's config, as the running hub has it. A data directory made by `npm start` (development mode)
 * holds its test JPKI CA in dev-jpki/; the development hub trusts it, so the CLI does too (and says
 * so), or the README's walk-through could not fetch that hub's CRL.
 */
function loadCliConfig(file: string | undefined) {
  const base = loadHubConfig({ file });
  const devCa = join(resolve(base.dataDir), 'dev-jpki', 'ca.pem');
  if (!existsSync(devCa) || base.jpki.trustAnchors.includes(devCa)) return base;
  process.stderr.write(`development data directory: trusting its test JPKI CA ${devCa}, as npm start does\n`);
  return loadHubConfig({ file, overrides: { jpki: { ...base.jpki, trustAnchors: [...base.jpki.trustAnchors, devCa] } } });
}

async function main(argv: string[]) {
  const [cmd, ...rest] = argv;
  let config: string | undefined;
  let force = false;
  let leaked = false;
  let dryRun = false;
  const args: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--config') config = rest[++i];
    else if (rest[i] === '--force') force = true;
    else if (rest[i] === '--leaked') leaked = true;
    else if (rest[i] === '--dry-run') dryRun = true;
    else args.push(rest[i]);
  }
  if (!cmd || cmd === '--help' || cmd === '-h') {
    console.log(USAGE);
    return 0;
  }
  if ((cmd === 'backup' || cmd === 'restore') && loadHubConfig({ file: config }).store.url) {
    throw new MyKeyError('bad_request', `${cmd} copies the SQLite file; a hub on PostgreSQL is backed up with PostgreSQL's own tools (pg_dump, base backups)`);
  }
  if (cmd === 'backup' || cmd === 'restore') return backupOrRestore(cmd, args, loadHubConfig({ file: config }), force);
  if (cmd === 'device-ca') return deviceCaCommand(args, loadHubConfig({ file: config }), leaked);
  const hub = await createHub(loadCliConfig(config), { log: createLogger('hub', { level: 'warn' }) });
  try {
    switch (cmd) {
      case 'crl-import': {
        if (args.length !== 1) throw new MyKeyError('bad_request', `crl-import takes one file\n${USAGE}`);
        let der: Uint8Array;
        try {
          der = new Uint8Array(readFileSync(args[0]));
        } catch (e) {
          throw new MyKeyError('not_found', `cannot read ${args[0]}: ${(e as Error).message}`);
        }
        process.stderr.write(`importing ${args[0]} (${(der.length / 1e6).toFixed(1)} MB)\n`);
        let last = -1;
        // In chunks, each a short write transaction: a running hub keeps registering meanwhile.
        const summary = await hub.crlManager.applyAsync(der, `file:${args[0]}`, (phase, done, total) => {
          const pct = total ? Math.floor((done / total) * 100) : -1;
          if (pct !== last && (pct % 10 === 0 || pct < 0)) {
            last = pct;
            process.stderr.write(pct >= 0 ? `  ${phase} ${pct}% (${done.toLocaleString('en')} of ${total.toLocaleString('en')})\n` : `  ${phase} ${done.toLocaleString('en')}\n`);
          }
        });
        console.log('CRL applied:');
        printSummary(summary);
        return 0;
      }
      case 'crl-fetch': {
        if (args.length !== 1) throw new MyKeyError('bad_request', `crl-fetch takes one URL\n${USAGE}`);
        printSummary(await hub.crlManager.fetchAndApply(args[0]));
        return 0;
      }
      case 'revocation-runs': {
        for (const r of await hub.revocations.recentRuns(20)) {
          console.log(
            `${new Date(r.started_at).toISOString()}  ${r.ok ? 'ok  ' : 'FAIL'}  ${r.source}  entries=${r.entries ?? '-'} matched=${r.matched ?? '-'} suspended=${r.newly_suspended ?? '-'} ${r.duration_ms}ms` +
              // A refusal says why (its code leads the error); an applied run may carry a warning.
              `${r.error ? `  refused: ${r.error}` : ''}${r.warning ? `  warning: ${r.warning}` : ''}`,
          );
        }
        return 0;
      }
      case 'linkage-import':
        return await linkageImport(hub, args, dryRun);
      case 'linkage-imports': {
        for (const r of await hub.linkage.recentImports(20)) {
          console.log(
            `${new Date(r.started_at).toISOString()}  ${r.code ? 'FAIL' : 'ok  '}  ${r.source}  records=${r.records ?? '-'} carried=${r.carried ?? '-'} already=${r.already ?? '-'} refused=${r.refused ?? '-'}${r.code ? `  refused: ${r.code}` : ''}`,
          );
        }
        return 0;
      }
      default:
        throw new MyKeyError('bad_request', `unknown command ${cmd}\n${USAGE}`);
    }
  } finally {
    await hub.stop();
  }
}

/** `linkage-import`: the file and its detached signature; the report on stdout, line by line. */
async function linkageImport(hub: Hub, args: string[], dryRun: boolean): Promise<number> {
  if (args.length !== 2) throw new MyKeyError('bad_request', `linkage-import takes the file and its signature file\n${USAGE}`);
  const read = (path: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new MyKeyError('not_found', `cannot read ${path}: ${(e as Error).message}`);
    }
  };
  const bytes = new Uint8Array(read(args[0]));
  const r = await hub.linkage.importFile(bytes, read(args[1]).toString('latin1'), `file:${args[0]}`, { dryRun });
  if (dryRun) console.log('DRY RUN: nothing was written; the counts say what an import would do');
  console.log(`linkage file ${args[0]} (sha256 ${r.file.sha256.slice(0, 16)}, issuer ${r.file.issuer}, created ${r.file.created}, signed by ${r.file.signer}):`);
  console.log(`  records ${r.file.records}, carried ${r.carried.length} (of which resumed ${r.resumed}), already carried ${r.alreadyCarried.length}, refused ${r.refused.length}`);
  for (const x of r.refused) console.log(`  line ${x.line}: ${x.code}: ${x.message}`);
  return r.refused.length > 0 ? 2 : 0;
}

/** Progress on standard error, one line per phase and tenth. */
function progressPrinter(): BackupProgress {
  const last = new Map<string, number>();
  return (phase, done, total) => {
    const tenth = total ? Math.floor((done / total) * 10) : 10;
    if (last.get(phase) === tenth) return;
    last.set(phase, tenth);
    process.stderr.write(`  ${phase} ${tenth * 10}% (${done.toLocaleString('en')} of ${total.toLocaleString('en')})\n`);
  };
}

async function backupOrRestore(cmd: 'backup' | 'restore', args: string[], config: ReturnType<typeof loadHubConfig>, force: boolean): Promise<number> {
  if (args.length !== 1) throw new MyKeyError('bad_request', `${cmd} takes one directory\n${USAGE}`);
  const dataDir = resolve(config.dataDir);
  const dbPath = config.store.path || join(dataDir, 'hub.sqlite');
  if (cmd === 'backup') {
    const m = await backupHub({ dbPath, dataDir, outDir: resolve(args[0]), hubVersion: HUB_VERSION, progress: progressPrinter() });
    const bytes = m.files.reduce((a, f) => a + f.bytes, 0);
    console.log(`backup written to ${resolve(args[0])}: ${m.files.length} files, ${(bytes / 1e6).toFixed(1)} MB, schema ${m.schemaVersion}`);
    return 0;
  }
  const m = restoreHub({ backupDir: resolve(args[0]), dbPath, dataDir, force, progress: progressPrinter() });
  console.log(`restored the backup of ${m.createdAt} (hub ${m.hubVersion}, schema ${m.schemaVersion}) into ${dataDir}`);
  return 0;
}

/** `device-ca rotate`: see hub/pki/device-ca.ts and the key-safety guidance in hub/pki/README.md. */
async function deviceCaCommand(args: string[], config: ReturnType<typeof loadHubConfig>, leaked: boolean): Promise<number> {
  if (args.length !== 1 || args[0] !== 'rotate') throw new MyKeyError('bad_request', `device-ca takes one subcommand: rotate\n${USAGE}`);
  const r = await rotateDeviceCa(join(resolve(config.dataDir), 'device-ca'), { leaked });
  const fp = (hex: string) => hex.toUpperCase().match(/../g)!.join(':');
  console.log(`new device CA: SHA-256 ${fp(r.fingerprint)} (new enrollment tokens show it)`);
  console.log(`retired device CA: SHA-256 ${fp(r.retiredFingerprint)}`);
  console.log(
    leaked
      ? 'the retired CA is NOT trusted any more: revoke every device in the console and enroll each again'
      : `the retired CA stays trusted until ${r.trustUntil.toISOString()}; edges renew their certificates at their next contact`,
  );
  console.log(`the retired key was moved to ${r.retiredKeyPath}: archive it offline, then delete it`);
  console.log('restart the hub now: until then it refuses to issue certificates with the retired key (device_ca_retired)');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof MyKeyError ? `${e.code}: ${e.message}` : e);
    process.exit(1);
  },
);
