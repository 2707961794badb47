// Operator passwords: scrypt (RFC 7914) with a per-user random salt, compared in constant time.
// The parameters travel inside the stored string, so they can be raised later without a migration.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  logN: number;
  r: number;
  p: number;
}

/** N = 2^15, r = 8, p = 1: 32 MiB and some tens of milliseconds per attempt (RFC 7914 section 2 guidance for interactive logins). */
export const DEFAULT_SCRYPT: ScryptParams = { logN: 15, r: 8, p: 1 };
const KEY_LEN = 32;
const SALT_LEN = 16;

/** Shortest accepted password; length is what makes a password strong. */
export const MIN_PASSWORD_LENGTH = 12;

function scrypt(password: string, salt: Buffer, p: ScryptParams): Promise<Buffer> {
  const N = 2 ** p.logN;
  // Node refuses when 128*N*r reaches maxmem (32 MiB by default): leave room.
  const opts: ScryptOptions = { N, r: p.r, p: p.p, maxmem: 256 * N * p.r + 1024 * 1024 };
  return new Promise((res, rej) => scryptCb(password.normalize('NFKC'), salt, KEY_LEN, opts, (err, key) => (err ? rej(err) : res(key))));
}

/** The stored form `scrypt$<logN>$<r>$<p>$<salt>$<key>` (base64url). */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_LEN);
  const key = await scrypt(password, salt, params);
  return ['scrypt', params.logN, params.r, params.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

const STORED = /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9_-]{16,})\$([A-Za-z0-9_-]{32,})$/;

/** True when `password` matches the stored hash. A malformed stored hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = STORED.exec(stored);
  if (!m) return false;
  const params = { logN: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.logN < 10 || params.logN > 20 || params.r < 1 || params.p < 1) return false;
  const expected = Buffer.from(m[5], 'base64url');
  const got = await scrypt(password, Buffer.from(m[4], 'base64url'), params);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

let dummy: Promise<string> | undefined;
/**
 * A hash to verify against when the account does not exist, so that an unknown name takes as long as
 * a wrong password and sign-in timing does not reveal which names exist.
 */
export function dummyHash(): Promise<string> {
  dummy ??= hashPassword(randomBytes(16).toString('hex'));
  return dummy;
}

/** Why a new password is refused, or undefined when acceptable. */
export function passwordProblem(password: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH) return `a password has at least ${MIN_PASSWORD_LENGTH} characters`;
  if (password.length > 1024) return 'a password has at most 1024 characters';
  if (/^(.)\1*$/.test(password)) return 'a password is not one character repeated';
  return undefined;
}
