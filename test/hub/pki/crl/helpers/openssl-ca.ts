// A throwaway CA driven by the openssl CLI (`openssl ca`), so that CRL tests compare against CRLs
// and text that OpenSSL itself made. Everything lives in one temp directory; call cleanup().
import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CrlReason } from '../../../../../shared/revocation.ts';

export interface OpensslCa {
  dir: string;
  caPem: string;
  caPemPath: string;
  /** Issues a leaf with this serial (hex, no sign) and revokes it with `openssl ca -revoke`. */
  revoke(serialHex: string, reason: CrlReason, extra?: string[]): void;
  /** `openssl ca -gencrl`, as DER. */
  genCrl(extra?: string[]): Uint8Array;
  /** `openssl crl -text -noout` of a DER CRL. */
  crlText(der: Uint8Array): string;
  /** `openssl crl -inform DER -CAfile ca.pem -noout`: true when it says "verify OK". */
  opensslVerifies(der: Uint8Array, caPemPath?: string): boolean;
  /** The CA private key as a WebCrypto RSASSA-PKCS1-v1_5 SHA-256 key (RSA CAs only). */
  webCryptoKey(): Promise<webcrypto.CryptoKey>;
  cleanup(): void;
}

function run(args: string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 }).toString('utf8');
}

/** Makes a CA. `subject` is an openssl -subj string; `keyType` rsa (2048) or ec (P-256). */
export function makeOpensslCa(opts: { subject: string; keyType?: 'rsa' | 'ec'; dir?: string }): OpensslCa {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'crl-ca-'));
  const keyArgs = opts.keyType === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  run(
    [
      'req',
      '-x509',
      ...keyArgs,
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-subj',
      opts.subject,
      '-days',
      '3650',
      '-sha256',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-addext',
      'subjectKeyIdentifier=hash',
    ],
    dir,
  );
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'crlnumber'), '1000\n');
  writeFileSync(
    join(dir, 'openssl.cnf'),
    [
      '[ ca ]',
      'default_ca = CA_default',
      '[ CA_default ]',
      `dir = ${dir}`,
      'database = $dir/index.txt',
      'crlnumber = $dir/crlnumber',
      'certificate = $dir/ca.pem',
      'private_key = $dir/ca.key',
      'default_md = sha256',
      'default_crl_days = 30',
      'crl_extensions = crl_ext',
      'new_certs_dir = $dir',
      'serial = $dir/serial',
      'policy = policy_any',
      '[ crl_ext ]',
      'authorityKeyIdentifier = keyid:always',
      '[ policy_any ]',
      'commonName = optional',
      '',
    ].join('\n'),
  );
  // One leaf key and request; each revoked certificate is this request signed with another serial.
  run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/C=JP/CN=leaf'], dir);
  const cnf = join(dir, 'openssl.cnf');
  const caPemPath = join(dir, 'ca.pem');
  return {
    dir,
    caPem: readFileSync(caPemPath, 'utf8'),
    caPemPath,
    revoke(serialHex, reason, extra = []) {
      const leaf = `leaf-${serialHex}.pem`;
      run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${serialHex}`, '-days', '30', '-out', leaf], dir);
      run(['ca', '-config', cnf, '-revoke', leaf, '-crl_reason', reason, ...extra], dir);
    },
    genCrl(extra = []) {
      run(['ca', '-config', cnf, '-gencrl', '-out', 'crl.pem', ...extra], dir);
      run(['crl', '-in', 'crl.pem', '-outform', 'DER', '-out', 'crl.der'], dir);
      return new Uint8Array(readFileSync(join(dir, 'crl.der')));
    },
    crlText(der) {
      writeFileSync(join(dir, 'in.der'), der);
      return run(['crl', '-inform', 'DER', '-in', 'in.der', '-text', '-noout'], dir);
    },
    opensslVerifies(der, caFile = caPemPath) {
      writeFileSync(join(dir, 'verify.der'), der);
      const r = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', 'verify.der', '-noout', '-CAfile', caFile], { cwd: dir, timeout: 30_000 });
      const said = String(r.stdout) + String(r.stderr);
      return r.status === 0 && /verify OK/.test(said) && !/failure/i.test(said);
    },
    async webCryptoKey() {
      const der = createPrivateKey(readFileSync(join(dir, 'ca.key'))).export({ type: 'pkcs8', format: 'der' });
      return webcrypto.subtle.importKey('pkcs8', der, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What `openssl crl -text` shows, read back into values. */
export interface OpensslCrlText {
  lastUpdate: Date;
  nextUpdate?: Date;
  crlNumber?: bigint;
  authorityKeyId?: string;
  deltaCrlIndicator?: bigint;
  entries: { serialHex: string; revokedAt: Date; reason: CrlReason; invalidityDate?: Date }[];
}

const REASON_TEXT: Record<string, CrlReason> = {
  Unspecified: 'unspecified',
  'Key Compromise': 'keyCompromise',
  'CA Compromise': 'cACompromise',
  'Affiliation Changed': 'affiliationChanged',
  Superseded: 'superseded',
  'Cessation Of Operation': 'cessationOfOperation',
  'Certificate Hold': 'certificateHold',
  'Remove From CRL': 'removeFromCRL',
  'Privilege Withdrawn': 'privilegeWithdrawn',
  'AA Compromise': 'aACompromise',
};

/** Reads `openssl crl -text -noout` output (OpenSSL 3 layout). */
export function readOpensslCrlText(text: string): OpensslCrlText {
  const lines = text.split('\n');
  const out: OpensslCrlText = { lastUpdate: new Date(NaN), entries: [] };
  let inRevoked = false;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i].trim();
    const next = (lines[i + 1] ?? '').trim();
    if (l.startsWith('Last Update:')) out.lastUpdate = new Date(l.slice('Last Update:'.length).trim());
    else if (l.startsWith('Next Update:') && !l.includes('NONE')) out.nextUpdate = new Date(l.slice('Next Update:'.length).trim());
    else if (l.startsWith('X509v3 CRL Number:')) out.crlNumber = BigInt(next.startsWith('0x') ? next : next.replace(/\s.*$/, ''));
    else if (l.startsWith('X509v3 Delta CRL Indicator:')) out.deltaCrlIndicator = BigInt(next.replace(/\s.*$/, ''));
    else if (l.startsWith('X509v3 Authority Key Identifier:'))
      out.authorityKeyId = next
        .replace(/^keyid:/, '')
        .replace(/:/g, '')
        .toUpperCase();
    else if (l.startsWith('Revoked Certificates:')) inRevoked = true;
    else if (inRevoked && l.startsWith('Serial Number:')) {
      out.entries.push({ serialHex: l.slice('Serial Number:'.length).trim(), revokedAt: new Date(NaN), reason: 'unspecified' });
    } else if (inRevoked && l.startsWith('Revocation Date:')) out.entries[out.entries.length - 1].revokedAt = new Date(l.slice('Revocation Date:'.length).trim());
    else if (inRevoked && l.startsWith('X509v3 CRL Reason Code:')) {
      const r = REASON_TEXT[next];
      if (r === undefined) throw new Error(`unknown reason text ${next}`);
      out.entries[out.entries.length - 1].reason = r;
    } else if (inRevoked && l.startsWith('Invalidity Date:')) out.entries[out.entries.length - 1].invalidityDate = new Date(next);
    else if (l.startsWith('Signature Algorithm:') && inRevoked) inRevoked = false;
  }
  return out;
}
