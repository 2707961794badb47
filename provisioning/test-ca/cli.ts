// Command line for the test CA kept in a directory (see store.ts):
//
//   tsx provisioning/test-ca/cli.ts init <dir>
//   tsx provisioning/test-ca/cli.ts issue <dir> [--out-cert f --out-key f]
//   tsx provisioning/test-ca/cli.ts revoke <dir> <serialHex> [--reason keyCompromise]
//   tsx provisioning/test-ca/cli.ts crl <dir> [--random N] --out file.crl
//   tsx provisioning/test-ca/cli.ts ocsp <dir> [--port 8889]
//   tsx provisioning/test-ca/cli.ts linkage-signer <key.pem> [--p256]
//   tsx provisioning/test-ca/cli.ts renew <dir> <old.pem> (--old-key f | --new-key) [--linkage f --signer-key f]
import { parseArgs } from 'node:util';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MyKeyError } from '../../shared/errors.ts';
import { CRL_REASONS, type CrlReason } from '../../shared/revocation.ts';
import { exportPkcs8, fromPem, importKeyPairPkcs8, toPem } from './ca.ts';
import { generateLinkageSigner, renewCertificate, writeLinkageFile } from './linkage-writer.ts';
import { initCaDir, openCaDir } from './store.ts';
import { startOcspResponder } from './ocsp-responder.ts';

export const USAGE = `Usage: tsx provisioning/test-ca/cli.ts <command> <dir> [options]

A JPKI-like test CA kept in <dir>. For tests and development only.

Commands:
  init <dir>                    create a CA (ca.pem, ca.key, state.json)
      --label <name>            label (default jpki-auth)
      --ou-suffix <text>        append to the first OU, for a CA with a distinct DN
  issue <dir>                   issue a user-authentication certificate
      --out-cert <file>         certificate PEM (default <dir>/issued/<serial>.pem)
      --out-key <file>          private key PKCS#8 PEM (default <dir>/issued/<serial>.key)
      --sign                    issue a signing certificate instead
      --cn <text>               subject CN (default JPKI-AUTH-<random hex>)
      --days <n>                validity in days (default about 5 years)
  revoke <dir> <serialHex>      revoke a serial
      --reason <reason>         ${Object.keys(CRL_REASONS).join(', ')} (default unspecified)
      --at <ISO time>           revocation time (default now)
  crl <dir> --out <file>        publish the next CRL (DER; PEM with --pem)
      --random <n>              add n random revoked serials (realistic size)
      --hours <n>               hours until nextUpdate (default 24)
  ocsp <dir>                    run an OCSP responder until interrupted
      --port <n>                port (default 8889; 0 picks a free one)
      --host <addr>             address (default 127.0.0.1)
      --delegated               sign with a delegated responder certificate
  linkage-signer <key.pem>      a key that signs linkage files: the private key (PKCS#8 PEM) in <key.pem>,
                                the public key in <key.pem>.pub (for the hub's jpki.linkageSigners)
      --p256                    ECDSA P-256 instead of Ed25519
  renew <dir> <old.pem>         renew a certificate (old one revoked as superseded)
      --old-key <file>          the holder's key (PKCS#8 PEM), kept for the new certificate
      --new-key                 a new key instead (a replaced card)
      --out-cert <file>         new certificate PEM (default <dir>/issued/<serial>.pem)
      --out-key <file>          its private key (default <dir>/issued/<serial>.key)
      --linkage <file>          also write the signed linkage file (JSON Lines) and <file>.sig
      --signer-key <file>       the linkage signer's private key (from linkage-signer)
`;

class UsageError extends Error {}

function num(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}`);
  return n;
}

function writeFileMkdir(path: string, data: string | Uint8Array, mode?: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data, mode === undefined ? undefined : { mode });
  if (mode !== undefined) chmodSync(path, mode);
}

/** Runs the CLI; returns the exit code. Output goes through `out`/`err` so tests can capture it. */
export async function main(argv: string[], io: { out: (s: string) => void; err: (s: string) => void } = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    io.out(USAGE);
    return command ? 0 : 2;
  }
  try {
    switch (command) {
      case 'init': {
        const { positionals, values } = parseArgs({ args: rest, allowPositionals: true, options: { label: { type: 'string' }, 'ou-suffix': { type: 'string' } } });
        if (positionals.length !== 1) throw new UsageError('init takes one directory');
        const d = await initCaDir(positionals[0], { label: values.label, ouSuffix: values['ou-suffix'] });
        io.out(`CA '${d.ca.label}' created in ${d.dir} (certificate ca.pem, key ca.key)\n`);
        return 0;
      }
      case 'issue': {
        const { positionals, values } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { 'out-cert': { type: 'string' }, 'out-key': { type: 'string' }, sign: { type: 'boolean' }, cn: { type: 'string' }, days: { type: 'string' } },
        });
        if (positionals.length !== 1) throw new UsageError('issue takes one directory');
        const days = num(values.days, 'days', 1);
        const d = await openCaDir(positionals[0]);
        const notBefore = new Date(Date.now() - 3600_000);
        const cert = await d.issue({
          profile: values.sign ? 'sign' : 'auth',
          cn: values.cn,
          notBefore,
          ...(days ? { notAfter: new Date(notBefore.getTime() + days * 86400_000) } : {}),
        });
        const certPath = values['out-cert'] ?? join(d.dir, 'issued', `${cert.serialHex}.pem`);
        const keyPath = values['out-key'] ?? join(d.dir, 'issued', `${cert.serialHex}.key`);
        writeFileMkdir(certPath, toPem(cert.certDer, 'CERTIFICATE'));
        writeFileMkdir(keyPath, toPem(await exportPkcs8(cert.keyPair.privateKey), 'PRIVATE KEY'), 0o600);
        io.out(`issued serial ${cert.serialHex} cn ${cert.cn} notAfter ${cert.notAfter.toISOString()}\n  certificate ${certPath}\n  key         ${keyPath}\n`);
        return 0;
      }
      case 'revoke': {
        const { positionals, values } = parseArgs({ args: rest, allowPositionals: true, options: { reason: { type: 'string' }, at: { type: 'string' } } });
        if (positionals.length !== 2) throw new UsageError('revoke takes a directory and a serial (hex)');
        const reason = (values.reason ?? 'unspecified') as CrlReason;
        if (!Object.hasOwn(CRL_REASONS, reason)) throw new UsageError(`unknown reason '${values.reason}'; one of ${Object.keys(CRL_REASONS).join(', ')}`);
        const at = values.at === undefined ? new Date() : new Date(values.at);
        if (Number.isNaN(at.getTime())) throw new UsageError('--at must be an ISO 8601 time');
        const d = await openCaDir(positionals[0]);
        await d.revoke(positionals[1], reason, at);
        io.out(`revoked ${positionals[1].toLowerCase()} (${reason}); ${d.revoked().length} revoked in total. Publish with: crl ${positionals[0]} --out <file>\n`);
        return 0;
      }
      case 'crl': {
        const { positionals, values } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { out: { type: 'string' }, random: { type: 'string' }, hours: { type: 'string' }, pem: { type: 'boolean' } },
        });
        if (positionals.length !== 1) throw new UsageError('crl takes one directory');
        if (!values.out) throw new UsageError('crl needs --out <file>');
        const random = num(values.random, 'random', 0) ?? 0;
        const hours = num(values.hours, 'hours', 1) ?? 24;
        const d = await openCaDir(positionals[0]);
        const thisUpdate = new Date();
        const started = Date.now();
        const step = 100_000;
        const der = await d.publishCrl({
          thisUpdate,
          nextUpdate: new Date(thisUpdate.getTime() + hours * 3600_000),
          extraRandomEntries: random,
          onProgress: random >= step ? (done, total) => done % step === 0 && io.err(`  ${done}/${total} random entries\n`) : undefined,
        });
        writeFileMkdir(values.out, values.pem ? toPem(der, 'X509 CRL') : der);
        io.out(`CRL number ${d.crlNumber()} with ${d.revoked().length + random} entries, ${der.length} bytes, in ${Date.now() - started} ms -> ${values.out}\n`);
        return 0;
      }
      case 'ocsp': {
        const { positionals, values } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: { port: { type: 'string' }, host: { type: 'string' }, delegated: { type: 'boolean' } },
        });
        if (positionals.length !== 1) throw new UsageError('ocsp takes one directory');
        const port = num(values.port, 'port', 0) ?? 8889;
        if (port > 65535) throw new UsageError('--port must be at most 65535');
        const d = await openCaDir(positionals[0]);
        const responder = await startOcspResponder({
          ca: d.ca,
          host: values.host ?? '127.0.0.1',
          port,
          responder: values.delegated ? 'delegated' : 'ca',
          // Read on every request so `revoke` in another shell takes effect at once.
          status: (serial) => {
            const r = d.revoked().find((e) => e.serial === serial);
            if (r) return { revokedAt: r.revokedAt, reason: r.reason };
            return d.issued().some((i) => BigInt(`0x${i.serialHex}`) === serial) ? undefined : 'unknown';
          },
        });
        io.out(`OCSP responder for '${d.ca.label}' at ${responder.url} (Ctrl-C stops)\n`);
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            resolve();
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
        });
        await responder.close();
        return 0;
      }
      case 'linkage-signer': {
        const { positionals, values } = parseArgs({ args: rest, allowPositionals: true, options: { p256: { type: 'boolean' } } });
        if (positionals.length !== 1) throw new UsageError('linkage-signer takes one key file');
        const k = generateLinkageSigner(values.p256 ? 'p256' : 'ed25519');
        writeFileMkdir(positionals[0], k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
        writeFileMkdir(`${positionals[0]}.pub`, k.publicKeyPem);
        io.out(`linkage signer ${values.p256 ? 'ECDSA P-256' : 'Ed25519'}: private key ${positionals[0]}, public key ${positionals[0]}.pub\n`);
        return 0;
      }
      case 'renew': {
        const { positionals, values } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: {
            'old-key': { type: 'string' },
            'new-key': { type: 'boolean' },
            'out-cert': { type: 'string' },
            'out-key': { type: 'string' },
            linkage: { type: 'string' },
            'signer-key': { type: 'string' },
          },
        });
        if (positionals.length !== 2) throw new UsageError('renew takes a directory and the old certificate (PEM)');
        if (!values['new-key'] === !values['old-key']) throw new UsageError('renew needs --old-key <file> or --new-key');
        if (values.linkage && !values['signer-key']) throw new UsageError('--linkage needs --signer-key <file>');
        const d = await openCaDir(positionals[0]);
        const oldDer = fromPem(readFileSync(positionals[1], 'utf8'));
        const serialHex = new X509Certificate(oldDer).serialNumber.toLowerCase();
        const keyPair = values['old-key'] ? await importKeyPairPkcs8(fromPem(readFileSync(values['old-key'], 'utf8'))) : undefined;
        const old = { serialHex, keyPair };
        const next = await renewCertificate(d, old, { newKey: !!values['new-key'], notBefore: new Date(Date.now() - 3600_000) });
        const certPath = values['out-cert'] ?? join(d.dir, 'issued', `${next.serialHex}.pem`);
        const keyPath = values['out-key'] ?? join(d.dir, 'issued', `${next.serialHex}.key`);
        writeFileMkdir(certPath, toPem(next.certDer, 'CERTIFICATE'));
        writeFileMkdir(keyPath, toPem(await exportPkcs8(next.keyPair.privateKey), 'PRIVATE KEY'), 0o600);
        io.out(`renewed ${serialHex} as ${next.serialHex} (old revoked as superseded)\n  certificate ${certPath}\n  key         ${keyPath}\n`);
        if (values.linkage) {
          const signer = createPrivateKey(readFileSync(values['signer-key']!, 'utf8'));
          const file = writeLinkageFile({ issuer: d.ca, records: [{ old, next }], signer });
          writeFileMkdir(values.linkage, file.bytes);
          writeFileMkdir(`${values.linkage}.sig`, `${file.signature}\n`);
          io.out(`  linkage     ${values.linkage} (signature ${values.linkage}.sig)\n`);
        }
        return 0;
      }
      default:
        throw new UsageError(`unknown command '${command}'`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) {
      io.err(`error: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof MyKeyError) {
      io.err(`error (${e.code}): ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
