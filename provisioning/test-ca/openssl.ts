// The same JPKI profile made by the `openssl` CLI, for compatibility tests: whatever accepts the test
// CA's certificates and CRLs must accept these too, since they come from an independent encoder.
//
// The CA lives in a directory as `openssl ca` wants it (index.txt, serial, crlnumber, newcerts/).
// Names are encoded as the test CA encodes them (PrintableString where it fits, else UTF8String), so
// an OpenSSL CA has byte-for-byte the DN of a test CA. The issuerAltName and the CRL distribution
// point are written as DER because `openssl`'s config cannot put UTF-8 into a directoryName.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MyKeyError } from '../../shared/errors.ts';
import type { CrlReason } from '../../shared/revocation.ts';
import { JPKI_AUTH_POLICY_OID, JPKI_SIGN_POLICY_OID } from '../../shared/card.ts';
import { JPKI_ISSUER_ALT_NAME, buildName, fromPem, parseSerialHex, randomSerial, serialToHex, testCaDn } from './ca.ts';
import * as pkijs from 'pkijs';

const run = promisify(execFile);

export interface OpensslCa {
  dir: string;
  configPath: string;
  certDer: Uint8Array;
  certPem: string;
  /** PKCS#8 PEM of the CA key. */
  keyPem: string;
  /** DER of the CA subject Name. */
  nameDer: Uint8Array;
}

export interface OpensslCert {
  certDer: Uint8Array;
  certPem: string;
  keyPem: string;
  serial: bigint;
  serialHex: string;
  cn: string;
}

async function openssl(args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout } = await run('openssl', args, { cwd, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    return stdout;
  } catch (cause) {
    const stderr = (cause as { stderr?: string }).stderr ?? '';
    throw new MyKeyError('internal', `openssl ${args[0]} failed: ${stderr.trim().split('\n').slice(0, 3).join(' / ')}`, { cause });
  }
}

/** A fresh RSA key as PKCS#8 PEM, made by OpenSSL (e = 65537). */
export async function opensslGenRsaKey(bits: 2048 | 1024 = 2048): Promise<string> {
  return openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${bits}`, '-pkeyopt', 'rsa_keygen_pubexp:65537']);
}

function hexColons(der: Uint8Array): string {
  return Buffer.from(der).toString('hex').match(/../g)!.join(':');
}

/** `/C=JP/O=...` for -subj, escaping the characters -subj treats specially. */
function subjArg(rdns: ReadonlyArray<readonly [string, string]>): string {
  return rdns.map(([t, v]) => `/${t}=${v.replace(/([\\/+])/g, '\\$1')}`).join('');
}

/** openssl's date form for -startdate/-enddate and index.txt (UTCTime before 2050, RFC 5280 4.1.2.5). */
function osslTime(d: Date): string {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  return d.getUTCFullYear() < 2050 ? `${digits.slice(2)}Z` : `${digits}Z`;
}

function configText(dir: string, caNameDer: Uint8Array): string {
  const ian = new pkijs.AltName({ altNames: [new pkijs.GeneralName({ type: 4, value: buildName(JPKI_ISSUER_ALT_NAME) })] });
  const caName = pkijs.RelativeDistinguishedNames.fromBER(caNameDer.slice().buffer);
  const crldp = new pkijs.CRLDistributionPoints({
    distributionPoints: [new pkijs.DistributionPoint({ distributionPoint: [new pkijs.GeneralName({ type: 4, value: caName })] })],
  });
  const ianDer = hexColons(new Uint8Array(ian.toSchema().toBER(false)));
  const crldpDer = hexColons(new Uint8Array(crldp.toSchema().toBER(false)));
  const p = (f: string) => join(dir, f);
  // The two user certificate profiles (authentication, signature) differ only in key usage and policy.
  const userSection = (name: string, keyUsage: string, policy: string) => `[${name}]
keyUsage = critical, ${keyUsage}
certificatePolicies = ${policy}
issuerAltName = DER:${ianDer}
crlDistributionPoints = DER:${crldpDer}
authorityKeyIdentifier = keyid:always
subjectKeyIdentifier = none
`;
  return `# Made by provisioning/test-ca/openssl.ts: a JPKI-shaped CA for compatibility tests.
[req]
distinguished_name = req_dn
prompt = no
# PrintableString where the value fits, UTF8String otherwise (ASN.1 string mask bits 0x0002 | 0x2000)
string_mask = MASK:0x2002
[req_dn]
C = JP

[ca]
default_ca = CA_default
[CA_default]
database = ${p('index.txt')}
new_certs_dir = ${p('newcerts')}
certificate = ${p('ca.pem')}
private_key = ${p('ca.key')}
serial = ${p('serial')}
crlnumber = ${p('crlnumber')}
default_md = sha256
default_days = 1826
default_crl_hours = 24
policy = policy_jpki
unique_subject = no
preserve = yes
email_in_dn = no
copy_extensions = none
crl_extensions = crl_ext
[policy_jpki]
countryName = supplied
commonName = supplied

[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = none
crlDistributionPoints = DER:${crldpDer}

${userSection('usr_auth', 'digitalSignature', JPKI_AUTH_POLICY_OID)}
${userSection('usr_sign', 'nonRepudiation', JPKI_SIGN_POLICY_OID)}
[crl_ext]
authorityKeyIdentifier = keyid:always
`;
}

/** Makes a JPKI-shaped self-signed CA with OpenSSL in `dir` (created if needed). */
export async function opensslCreateCa(dir: string, opts: { ouSuffix?: string; days?: number; keyPem?: string } = {}): Promise<OpensslCa> {
  dir = resolve(dir);
  mkdirSync(join(dir, 'newcerts'), { recursive: true });
  const dn = testCaDn(opts.ouSuffix);
  const nameDer = new Uint8Array(buildName(dn).toSchema().toBER(false));
  const configPath = join(dir, 'openssl.cnf');
  writeFileSync(configPath, configText(dir, nameDer));
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'index.txt.attr'), 'unique_subject = no\n');
  writeFileSync(join(dir, 'crlnumber'), '01\n');
  const keyPem = opts.keyPem ?? (await opensslGenRsaKey());
  writeFileSync(join(dir, 'ca.key'), keyPem, { mode: 0o600 });
  await openssl([
    'req',
    '-x509',
    '-new',
    '-config',
    configPath,
    '-extensions',
    'v3_ca',
    '-key',
    join(dir, 'ca.key'),
    '-subj',
    subjArg(dn),
    '-sha256',
    '-days',
    String(opts.days ?? 7305),
    '-set_serial',
    `0x${serialToHex(randomSerial())}`,
    '-out',
    join(dir, 'ca.pem'),
  ]);
  const certPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
  const certDer = fromPem(certPem);
  const cert = pkijs.Certificate.fromBER(certDer.slice().buffer);
  const subjectDer = new Uint8Array(cert.subject.toSchema().toBER(false));
  if (Buffer.compare(Buffer.from(subjectDer), Buffer.from(nameDer)) !== 0) {
    throw new MyKeyError('internal', 'openssl encoded the CA name differently from the test CA');
  }
  return { dir, configPath, certDer, certPem, keyPem, nameDer };
}

/** Issues a user-authentication (or signing) certificate with `openssl ca`, recorded in index.txt. */
export async function opensslIssueCert(
  ca: OpensslCa,
  opts: { cn?: string; serial?: bigint; notBefore?: Date; notAfter?: Date; keyPem?: string; profile?: 'auth' | 'sign' } = {},
): Promise<OpensslCert> {
  const profile = opts.profile ?? 'auth';
  const serial = opts.serial ?? randomSerial();
  const serialHex = serialToHex(serial);
  const cn = opts.cn ?? `${profile === 'sign' ? 'JPKI-SIGN-' : 'JPKI-AUTH-'}${serialHex.slice(0, 16).toUpperCase()}`;
  const notBefore = opts.notBefore ?? new Date(Date.now() - 3600_000);
  const notAfter = opts.notAfter ?? new Date(notBefore.getTime() + 5 * 365.25 * 24 * 3600_000);
  const keyPem = opts.keyPem ?? (await opensslGenRsaKey());
  const base = join(ca.dir, `u-${serialHex}`);
  writeFileSync(`${base}.key`, keyPem, { mode: 0o600 });
  await openssl([
    'req',
    '-new',
    '-config',
    ca.configPath,
    '-key',
    `${base}.key`,
    '-subj',
    subjArg([
      ['C', 'JP'],
      ['CN', cn],
    ]),
    '-out',
    `${base}.csr`,
  ]);
  writeFileSync(join(ca.dir, 'serial'), `${serialHex.toUpperCase()}\n`);
  await openssl([
    'ca',
    '-batch',
    '-notext',
    '-config',
    ca.configPath,
    '-extensions',
    profile === 'sign' ? 'usr_sign' : 'usr_auth',
    '-startdate',
    osslTime(notBefore),
    '-enddate',
    osslTime(notAfter),
    '-in',
    `${base}.csr`,
    '-out',
    `${base}.pem`,
  ]);
  const certPem = readFileSync(`${base}.pem`, 'utf8');
  return { certDer: fromPem(certPem), certPem, keyPem, serial, serialHex, cn };
}

/** An issued user-authentication certificate; shorthand for opensslIssueCert with the 'auth' profile. */
export function opensslIssueUserAuthCert(ca: OpensslCa, opts: Omit<Parameters<typeof opensslIssueCert>[1] & object, 'profile'> = {}): Promise<OpensslCert> {
  return opensslIssueCert(ca, { ...opts, profile: 'auth' });
}

// openssl's reason names (crypto/x509/v3_crld.c / apps/ca.c); privilegeWithdrawn and aACompromise are
// not supported by `openssl ca`.
const OSSL_REASON: Partial<Record<CrlReason, string>> = {
  unspecified: 'unspecified',
  keyCompromise: 'keyCompromise',
  cACompromise: 'CACompromise',
  affiliationChanged: 'affiliationChanged',
  superseded: 'superseded',
  cessationOfOperation: 'cessationOfOperation',
  certificateHold: 'certificateHold',
  removeFromCRL: 'removeFromCRL',
};

/**
 * Marks a serial revoked in the CA's index.txt, as `openssl ca -revoke` would; the serial need not
 * have been issued by this CA (useful for CRLs that list test serials).
 */
export function opensslRevoke(ca: OpensslCa, serialHex: string, reason: CrlReason, at: Date = new Date()): void {
  const serial = parseSerialHex(serialHex);
  if (serial === undefined) throw new MyKeyError('bad_request', 'the serial must be positive hex');
  const ossl = OSSL_REASON[reason];
  if (!ossl) throw new MyKeyError('bad_request', `openssl ca cannot write the reason ${reason}`);
  const want = serialToHex(serial).toUpperCase();
  const indexPath = join(ca.dir, 'index.txt');
  const lines = readFileSync(indexPath, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
  // index.txt: status, expiry, revocation[,reason], serial, file name, subject (tab separated).
  const revField = `${osslTime(at)},${ossl}`;
  let found = false;
  const out = lines.map((l) => {
    const f = l.split('\t');
    if (parseSerialHex(f[3] ?? '') !== serial) return l;
    found = true;
    return ['R', f[1], revField, f[3], f[4], f[5]].join('\t');
  });
  if (!found) out.push(['R', osslTime(new Date(Date.now() + 10 * 365 * 24 * 3600_000)), revField, want, 'unknown', '/C=JP/CN=unknown'].join('\t'));
  writeFileSync(indexPath, `${out.join('\n')}\n`);
}

/** Makes a CRL with `openssl ca -gencrl` from index.txt; returns DER. */
export async function opensslGenCrl(ca: OpensslCa, opts: { crlHours?: number } = {}): Promise<Uint8Array> {
  const pemPath = join(ca.dir, 'crl.pem');
  await openssl(['ca', '-gencrl', '-batch', '-config', ca.configPath, '-crlhours', String(opts.crlHours ?? 24), '-out', pemPath]);
  const der = fromPem(readFileSync(pemPath, 'utf8'));
  writeFileSync(join(ca.dir, 'crl.der'), der);
  return der;
}
