// `npm start`: the hub on embedded defaults, in development mode. It makes (once) a JPKI-like test CA
// in <dataDir>/dev-jpki, serves its CRL and OCSP on loopback as a stand-in for J-LIS, trusts it, and
// starts the hub. NOT for production: production configures the real JPKI trust anchors and CRL
// sources (see README, "Configuration").
//
//   npm start [-- --config hub.json]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { loadHubConfig } from '../hub/config.ts';
import { runHub } from '../hub/main.ts';
import { MyKeyError } from '../shared/errors.ts';
import { createLogger } from '../shared/log.ts';
import { startOcspResponder } from './test-ca/ocsp-responder.ts';
import { initCaDir, openCaDir } from './test-ca/store.ts';

// Development mode: human-readable log lines (shared/log.ts) unless MYKEY_LOG_FORMAT says otherwise.
process.env.NODE_ENV ??= 'development';
const log = createLogger('dev');

function banner(lines: string[]) {
  const width = Math.max(...lines.map((l) => l.length)) + 4;
  const bar = '!'.repeat(width);
  process.stderr.write(`\n${bar}\n${lines.map((l) => `! ${l.padEnd(width - 4)} !`).join('\n')}\n${bar}\n\n`);
}

async function main() {
  const args = process.argv.slice(2);
  const configFile = args[0] === '--config' ? args[1] : undefined;
  const base = loadHubConfig({ file: configFile });
  const dataDir = resolve(base.dataDir);
  const caDir = join(dataDir, 'dev-jpki');
  const caStore = existsSync(join(caDir, 'ca.pem')) ? await openCaDir(caDir) : await initCaDir(caDir, { label: 'dev-jpki' });

  // A loopback stand-in for the JPKI CRL distribution: every fetch publishes a fresh CRL.
  const crlServer = createServer((req, res) => {
    if (req.url !== '/crl') {
      res.writeHead(404).end();
      return;
    }
    caStore.publishCrl().then(
      (der) => res.writeHead(200, { 'content-type': 'application/pkix-crl', 'content-length': der.length }).end(Buffer.from(der)),
      (e) => res.writeHead(500).end(String(e)),
    );
  });
  await new Promise<void>((r) => crlServer.listen(0, '127.0.0.1', r));
  const crlUrl = `http://127.0.0.1:${(crlServer.address() as { port: number }).port}/crl`;
  const revokedNow = (serial: bigint) => caStore.revoked().find((e) => e.serial === serial);
  const ocsp = await startOcspResponder({ ca: caStore.ca, status: (serial) => revokedNow(serial), host: '127.0.0.1', port: 0 });

  // The operator API needs a token; development mode makes one (kept in the data directory).
  const tokenFile = join(dataDir, 'dev-admin-token');
  if (!base.admin.token && !existsSync(tokenFile)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(tokenFile, randomBytes(24).toString('base64url'), { mode: 0o600 });
  }
  const adminToken = base.admin.token || readFileSync(tokenFile, 'utf8').trim();
  const config = loadHubConfig({
    file: configFile,
    overrides: {
      dataDir,
      admin: { token: adminToken },
      jpki: {
        ...base.jpki,
        trustAnchors: [...base.jpki.trustAnchors, join(caDir, 'ca.pem')],
        crlSources: [...base.jpki.crlSources, crlUrl],
        crlIntervalSeconds: Math.min(base.jpki.crlIntervalSeconds, 60),
        ocspUrl: base.jpki.ocspUrl || ocsp.url,
      },
      // A developer's business system listens on this machine: webhooks to loopback over http are
      // allowed here, never by a production config's defaults.
      webhooks: { ...base.webhooks, allowHttp: true, allowPrivateTargets: true },
    },
  });
  banner([
    'DEVELOPMENT MODE: this hub trusts a generated TEST JPKI, not J-LIS, and sends webhooks to loopback over http.',
    `test CA: ${caDir}`,
    `CRL: ${crlUrl} (fetched every ${config.jpki.crlIntervalSeconds}s)   OCSP: ${ocsp.url}`,
    'Register a MyKey ID with a test certificate:',
    `  npx tsx provisioning/register-cli.ts register --hub http://${config.http.host}:${config.http.port} --ca-dir ${caDir} --out me`,
    `Operator API token (Authorization: Bearer): ${adminToken === base.admin.token ? '(from your config)' : `${tokenFile}`}`,
    `Console: http://${config.http.host}:${config.http.port}/console  (first operator: npx tsx hub/console/cli.ts add-operator <name> --role operator)`,
  ]);
  const hub = await runHub(config, { log: createLogger('hub') });
  const stopDev = () => {
    crlServer.close();
    void ocsp.close();
  };
  process.once('SIGINT', stopDev);
  process.once('SIGTERM', stopDev);
  return hub;
}

main().catch((e) => {
  log.error(e instanceof MyKeyError ? e.message : String(e?.stack ?? e));
  process.exit(1);
});
