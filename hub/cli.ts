// Operator commands that work on the hub's data directly (the hub may be running: SQLite allows it,
// and the running hub picks imported CRLs up within seconds).
//
//   tsx hub/cli.ts crl-import <file.crl> [--config hub.json]
//   tsx hub/cli.ts crl-fetch  <url>      [--config hub.json]
//   tsx hub/cli.ts revocation-runs       [--config hub.json]
import { readFileSync } from 'node:fs';
import { MyKeyError } from '../shared/errors.ts';
import { createLogger } from '../shared/log.ts';
import { loadHubConfig } from './config.ts';
import { createHub } from './main.ts';
import type { RevocationRunSummary } from './revocation/crl-manager.ts';

const USAGE = `usage:
  tsx hub/cli.ts crl-import <file.crl> [--config hub.json]   verify, index and match a CRL file (DER or PEM)
  tsx hub/cli.ts crl-fetch <url> [--config hub.json]         fetch a CRL now and apply it
  tsx hub/cli.ts revocation-runs [--config hub.json]         the last revocation runs`;

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

async function main(argv: string[]) {
  const [cmd, ...rest] = argv;
  let config: string | undefined;
  const args: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--config') config = rest[++i];
    else args.push(rest[i]);
  }
  if (!cmd || cmd === '--help' || cmd === '-h') {
    console.log(USAGE);
    return 0;
  }
  const hub = createHub(loadHubConfig({ file: config }), { log: createLogger('hub', { level: 'warn' }) });
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
        const summary = hub.crlManager.apply(der, `file:${args[0]}`, (phase, done, total) => {
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
        for (const r of hub.revocations.recentRuns(20)) {
          console.log(
            `${new Date(r.started_at).toISOString()}  ${r.ok ? 'ok  ' : 'FAIL'}  ${r.source}  entries=${r.entries ?? '-'} matched=${r.matched ?? '-'} suspended=${r.newly_suspended ?? '-'} ${r.duration_ms}ms` +
              // A refusal says why (its code leads the error); an applied run may carry a warning.
              `${r.error ? `  refused: ${r.error}` : ''}${r.warning ? `  warning: ${r.warning}` : ''}`,
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof MyKeyError ? `${e.code}: ${e.message}` : e);
    process.exit(1);
  },
);
