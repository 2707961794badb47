// A test CA kept in a directory, so the CLI, the dev hub and tests in other processes share one CA:
//
//   ca.pem        the CA certificate
//   ca.key        its PKCS#8 private key (PEM, mode 0600)
//   state.json    label and the last CRL number
//   issued.jsonl  one line per issued certificate: serial, cn, notAfter
//   revoked.json  the revoked serials with time and reason
//
// Every rewrite goes to a temporary file that is renamed over the old one (atomic on POSIX), so a
// reader never sees half a file.
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { MyKeyError } from '../../shared/errors.ts';
import { CRL_REASONS, type CrlReason } from '../../shared/revocation.ts';
import {
  createTestCa,
  exportPkcs8,
  fromPem,
  importKeyPairPkcs8,
  issueSigningCert,
  issueUserAuthCert,
  parseSerialHex,
  serialToHex,
  testCaFromParts,
  toPem,
  type CryptoKeyPair,
  type IssueOptions,
  type IssuedCert,
  type TestCa,
} from './ca.ts';
import { writeCrl } from './crl-writer.ts';

/** What state.json holds. */
interface CaDirState {
  label: string;
  /** The number of the last CRL published, as a decimal string (0 before the first). */
  crlNumber: string;
}

interface RevokedRecord {
  serial: string;
  revokedAt: string;
  reason: CrlReason;
}

/** One line of issued.jsonl. */
export interface IssuedRecord {
  serialHex: string;
  cn: string;
  notAfter: string;
  profile: 'auth' | 'sign';
}

export interface RevokedEntry {
  serial: bigint;
  revokedAt: Date;
  reason: CrlReason;
}

export interface PublishCrlOptions {
  thisUpdate?: Date;
  /** Defaults to thisUpdate + 24 hours. */
  nextUpdate?: Date;
  /** Random revoked serials added after the real ones, to make CRLs of realistic size. */
  extraRandomEntries?: number;
  /** Called as random entries are generated (every entry; filter in the callback). */
  onProgress?: (done: number, total: number) => void;
}

export interface CaDir {
  dir: string;
  ca: TestCa;
  /** Issues a user-authentication certificate (or a signing one with profile 'sign') and records it. */
  issue(opts?: IssueOptions & { profile?: 'auth' | 'sign' }): Promise<IssuedCert>;
  /** Marks a serial revoked; revoking it again replaces time and reason. */
  revoke(serialHex: string, reason: CrlReason, at?: Date): Promise<void>;
  /** Takes a serial off the list (e.g. after certificateHold). True if it was there. */
  unrevoke(serialHex: string): Promise<boolean>;
  revoked(): RevokedEntry[];
  issued(): IssuedRecord[];
  /** The number of the last published CRL (0n before the first). */
  crlNumber(): bigint;
  /** Signs and returns a new CRL (DER) with the next CRL number. */
  publishCrl(opts?: PublishCrlOptions): Promise<Uint8Array>;
}

const FILES = { cert: 'ca.pem', key: 'ca.key', state: 'state.json', issued: 'issued.jsonl', revoked: 'revoked.json' } as const;

function writeAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}

/** Creates a CA directory (the directory may exist but must not already hold a CA). */
export async function initCaDir(dir: string, opts: { label?: string; ouSuffix?: string; notBefore?: Date; notAfter?: Date; keyPair?: CryptoKeyPair } = {}): Promise<CaDir> {
  if (existsSync(join(dir, FILES.cert)) || existsSync(join(dir, FILES.key))) {
    throw new MyKeyError('conflict', `a CA already exists in ${dir}`);
  }
  mkdirSync(dir, { recursive: true });
  const ca = await createTestCa(opts);
  writeAtomic(join(dir, FILES.key), toPem(await exportPkcs8(ca.keyPair.privateKey), 'PRIVATE KEY'), 0o600);
  chmodSync(join(dir, FILES.key), 0o600); // the umask may not have let 0600 through as asked
  writeAtomic(join(dir, FILES.cert), toPem(ca.certDer, 'CERTIFICATE'));
  writeAtomic(join(dir, FILES.state), JSON.stringify({ label: ca.label, crlNumber: '0' } satisfies CaDirState, null, 2));
  writeAtomic(join(dir, FILES.revoked), '[]\n');
  writeFileSync(join(dir, FILES.issued), '', { flag: 'a' });
  return openCaDir(dir);
}

function readState(dir: string): CaDirState {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(dir, FILES.state), 'utf8'));
  } catch (cause) {
    throw new MyKeyError('config_invalid', `cannot read ${FILES.state} in ${dir}`, { cause });
  }
  const s = raw as Partial<CaDirState>;
  if (typeof s?.label !== 'string' || typeof s.crlNumber !== 'string' || !/^\d+$/.test(s.crlNumber)) {
    throw new MyKeyError('config_invalid', `${FILES.state} in ${dir} is malformed`);
  }
  return { label: s.label, crlNumber: s.crlNumber };
}

function readRevoked(dir: string): RevokedRecord[] {
  const path = join(dir, FILES.revoked);
  if (!existsSync(path)) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new MyKeyError('config_invalid', `cannot read ${FILES.revoked} in ${dir}`, { cause });
  }
  if (!Array.isArray(raw)) throw new MyKeyError('config_invalid', `${FILES.revoked} in ${dir} is not a list`);
  for (const r of raw) {
    if (typeof r?.serial !== 'string' || parseSerialHex(r.serial) === undefined || typeof r.revokedAt !== 'string' || Number.isNaN(Date.parse(r.revokedAt)) || !Object.hasOwn(CRL_REASONS, r.reason)) {
      throw new MyKeyError('config_invalid', `${FILES.revoked} in ${dir} has a malformed entry`);
    }
  }
  return raw as RevokedRecord[];
}

// Reasons spread over the random filler entries, roughly as in a real CRL (renewals dominate).
const FILLER_REASONS: CrlReason[] = ['superseded', 'superseded', 'cessationOfOperation', 'keyCompromise', 'affiliationChanged', 'unspecified'];

function* fillerEntries(n: number, thisUpdate: Date, onProgress?: (done: number, total: number) => void): Generator<{ serial: bigint; revokedAt: Date; reason: CrlReason }> {
  const span = 5 * 365 * 24 * 3600; // revocations spread over the last five years
  const base = Math.floor(thisUpdate.getTime() / 1000);
  for (let i = 0; i < n; i++) {
    const b = randomBytes(16);
    b[0] = 0x01 + (b[0] % 0x7f);
    yield {
      serial: BigInt(`0x${b.toString('hex')}`),
      revokedAt: new Date((base - randomInt(60, span)) * 1000),
      reason: FILLER_REASONS[randomInt(FILLER_REASONS.length)],
    };
    onProgress?.(i + 1, n);
  }
}

/** Opens a CA directory made by initCaDir. */
export async function openCaDir(dir: string): Promise<CaDir> {
  if (!existsSync(join(dir, FILES.cert)) || !existsSync(join(dir, FILES.key))) {
    throw new MyKeyError('not_found', `no CA in ${dir} (expected ${FILES.cert} and ${FILES.key}; run init first)`);
  }
  const state = readState(dir);
  let ca: TestCa;
  try {
    const certDer = fromPem(readFileSync(join(dir, FILES.cert), 'utf8'));
    const keyPair = await importKeyPairPkcs8(fromPem(readFileSync(join(dir, FILES.key), 'utf8')));
    ca = await testCaFromParts(state.label, certDer, keyPair);
  } catch (cause) {
    throw new MyKeyError('config_invalid', `the CA files in ${dir} are unreadable or do not match`, { cause });
  }
  readRevoked(dir); // fail now rather than at the first revoke

  // Operations on one CaDir run one at a time, so read-modify-write of the files cannot interleave.
  let queue: Promise<unknown> = Promise.resolve();
  const serialized = <T>(fn: () => Promise<T> | T): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  const parseSerialOrThrow = (serialHex: string): bigint => {
    const serial = parseSerialHex(serialHex);
    if (serial === undefined) throw new MyKeyError('bad_request', 'the serial must be positive hex (at most 32 bytes)');
    return serial;
  };

  return {
    dir,
    ca,
    issue: (opts = {}) =>
      serialized(async () => {
        const { profile = 'auth', ...issueOpts } = opts;
        const cert = profile === 'sign' ? await issueSigningCert(ca, issueOpts) : await issueUserAuthCert(ca, issueOpts);
        const rec: IssuedRecord = { serialHex: cert.serialHex, cn: cert.cn, notAfter: cert.notAfter.toISOString(), profile };
        appendFileSync(join(dir, FILES.issued), `${JSON.stringify(rec)}\n`);
        return cert;
      }),
    revoke: (serialHex, reason, at = new Date()) =>
      serialized(() => {
        const serial = parseSerialOrThrow(serialHex);
        if (!Object.hasOwn(CRL_REASONS, reason)) throw new MyKeyError('bad_request', `unknown revocation reason ${String(reason)}`);
        if (Number.isNaN(at.getTime())) throw new MyKeyError('bad_request', 'invalid revocation time');
        const list = readRevoked(dir).filter((r) => parseSerialHex(r.serial) !== serial);
        list.push({ serial: serialToHex(serial), revokedAt: at.toISOString(), reason });
        writeAtomic(join(dir, FILES.revoked), `${JSON.stringify(list, null, 1)}\n`);
      }),
    unrevoke: (serialHex) =>
      serialized(() => {
        const serial = parseSerialOrThrow(serialHex);
        const before = readRevoked(dir);
        const list = before.filter((r) => parseSerialHex(r.serial) !== serial);
        if (list.length !== before.length) writeAtomic(join(dir, FILES.revoked), `${JSON.stringify(list, null, 1)}\n`);
        return list.length !== before.length;
      }),
    revoked: () => readRevoked(dir).map((r) => ({ serial: parseSerialHex(r.serial)!, revokedAt: new Date(r.revokedAt), reason: r.reason })),
    issued: () => {
      const path = join(dir, FILES.issued);
      if (!existsSync(path)) return [];
      return readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as IssuedRecord);
    },
    crlNumber: () => BigInt(readState(dir).crlNumber),
    publishCrl: (opts = {}) =>
      serialized(async () => {
        const thisUpdate = opts.thisUpdate ?? new Date();
        const nextUpdate = opts.nextUpdate ?? new Date(thisUpdate.getTime() + 24 * 3600_000);
        const extra = opts.extraRandomEntries ?? 0;
        if (!Number.isSafeInteger(extra) || extra < 0) throw new MyKeyError('bad_request', 'extraRandomEntries must be a non-negative integer');
        const st = readState(dir);
        const crlNumber = BigInt(st.crlNumber) + 1n;
        const real = readRevoked(dir).map((r) => ({ serial: parseSerialHex(r.serial)!, revokedAt: new Date(r.revokedAt), reason: r.reason }));
        function* entries() {
          yield* real;
          yield* fillerEntries(extra, thisUpdate, opts.onProgress);
        }
        const der = await writeCrl({
          issuerNameDer: ca.nameDer,
          signingKey: ca.keyPair.privateKey,
          thisUpdate,
          nextUpdate,
          crlNumber,
          authorityKeyId: ca.subjectKeyId,
          entries: entries(),
        });
        // The number is taken only once the CRL exists: a failed signing does not burn a number.
        writeAtomic(join(dir, FILES.state), JSON.stringify({ ...st, crlNumber: crlNumber.toString() } satisfies CaDirState, null, 2));
        return der;
      }),
  };
}
