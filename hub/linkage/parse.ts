// Reading a certificate linkage file (shared/linkage.ts, documented in hub/pki/README.md): the
// detached signature over its exact bytes first, then the header, then each record line. Pure over
// bytes and keys; the importer (import.ts) applies what this accepts. A file that is too large,
// unsigned, badly signed, not UTF-8 or whose header or record count is wrong is refused whole; a bad
// record line is refused alone, with its line number and code.
import { createHash, createPublicKey, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import { MyKeyError, fail, ok, type ErrorCode, type Result } from '../../shared/errors.ts';
import { LINKAGE_MAX_LINE_BYTES, LinkageHeader, LinkageRecord, normalizeLinkageSerial } from '../../shared/linkage.ts';

/** A key that may sign linkage files (jpki.linkageSigners). */
export interface LinkageSigner {
  label: string;
  key: KeyObject;
}

/** One record line as read: accepted (serials in the hub's form, the certificate's DER) or refused. */
export type LinkageLine = { line: number; ok: true; oldSerial: string; newSerial: string; certDer: Uint8Array } | { line: number; ok: false; code: ErrorCode; message: string };

export interface ParsedLinkageFile {
  header: LinkageHeader;
  /** SHA-256 of the file's bytes, hex: names the file in reports and in each carried record. */
  sha256: string;
  /** Which configured signer verified it. */
  signer: string;
  lines: LinkageLine[];
}

/** Whether a key is one the format allows: Ed25519 (RFC 8032) or ECDSA on P-256 (prime256v1). */
function allowedKey(key: KeyObject): boolean {
  if (key.asymmetricKeyType === 'ed25519') return true;
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

/**
 * Loads the configured linkage signers: each file a PEM public key (SubjectPublicKeyInfo) or a
 * certificate (PEM or DER) whose key signs. Anything else is a configuration error at start-up.
 */
export function loadLinkageSigners(paths: readonly string[]): LinkageSigner[] {
  return paths.map((path, i) => {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      throw new MyKeyError('config_invalid', `invalid configuration:\n  - /jpki/linkageSigners/${i}: ${path} cannot be read`, { cause: e });
    }
    let key: KeyObject;
    try {
      const text = bytes.toString('latin1');
      key = text.includes('-----BEGIN PUBLIC KEY-----') ? createPublicKey(text) : new X509Certificate(bytes).publicKey;
    } catch (e) {
      throw new MyKeyError('config_invalid', `invalid configuration:\n  - /jpki/linkageSigners/${i}: ${path} is not a PEM public key or a certificate`, { cause: e });
    }
    if (!allowedKey(key)) throw new MyKeyError('config_invalid', `invalid configuration:\n  - /jpki/linkageSigners/${i}: ${path} is not an Ed25519 or ECDSA P-256 key`);
    return { label: path, key };
  });
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Verifies the detached signature (base64 text of the signature bytes: Ed25519's 64 bytes, or the
 * DER ECDSA-Sig-Value of RFC 5480 over SHA-256) over the exact bytes of the file.
 */
export function verifyLinkageSignature(bytes: Uint8Array, signatureText: string | undefined, signers: readonly LinkageSigner[]): Result<string> {
  if (signers.length === 0) return fail('linkage_signers_unconfigured');
  const text = (signatureText ?? '').trim();
  if (text === '') return fail('linkage_signature_missing');
  if (text.length > 512 || !B64.test(text)) return fail('linkage_signature_invalid', 'the signature is not base64');
  const sig = Buffer.from(text, 'base64');
  for (const s of signers) {
    try {
      // Ed25519 takes no digest (null); ECDSA P-256 signs SHA-256 of the bytes.
      if (verify(s.key.asymmetricKeyType === 'ed25519' ? null : 'sha256', bytes, s.key, sig)) return ok(s.label);
    } catch {
      // A signature of the wrong shape for this key: try the next signer.
    }
  }
  return fail('linkage_signature_invalid');
}

/** Parses a verified file's text into its header and lines. */
function parseText(text: string): Result<{ header: LinkageHeader; lines: LinkageLine[] }> {
  if (text.length === 0 || !text.endsWith('\n')) return fail('linkage_file_malformed', 'the file must end with a line feed');
  if (text.charCodeAt(0) === 0xfeff) return fail('linkage_file_malformed', 'the file must not start with a byte order mark');
  const raw = text.slice(0, -1).split('\n');
  let header: unknown;
  try {
    header = JSON.parse(raw[0]);
  } catch {
    return fail('linkage_file_malformed', 'line 1 (the header) is not JSON');
  }
  if (!Value.Check(LinkageHeader, header)) {
    const e = [...Value.Errors(LinkageHeader, header)][0];
    return fail('linkage_file_malformed', `line 1 (the header): ${e ? `${e.path || '/'} ${e.message}` : 'not a mykey-linkage header'}`);
  }
  if (Number.isNaN(Date.parse(header.created))) return fail('linkage_file_malformed', 'line 1 (the header): created is not a date');
  if (raw.length - 1 !== header.records) return fail('linkage_file_malformed', `the header announces ${header.records} records; the file has ${raw.length - 1} record lines`);

  const seen = new Set<string>();
  const lines: LinkageLine[] = [];
  for (let i = 1; i < raw.length; i++) {
    const line = i + 1;
    const bad = (code: ErrorCode, message: string) => lines.push({ line, ok: false, code, message });
    if (Buffer.byteLength(raw[i]) > LINKAGE_MAX_LINE_BYTES) {
      bad('linkage_line_malformed', `longer than ${LINKAGE_MAX_LINE_BYTES} bytes`);
      continue;
    }
    let rec: unknown;
    try {
      rec = JSON.parse(raw[i]);
    } catch {
      bad('linkage_line_malformed', 'not JSON');
      continue;
    }
    if (!Value.Check(LinkageRecord, rec)) {
      const e = [...Value.Errors(LinkageRecord, rec)][0];
      bad('linkage_line_malformed', e ? `${e.path || '/'} ${e.message}` : 'not a linkage record');
      continue;
    }
    const oldSerial = normalizeLinkageSerial(rec.old);
    const newSerial = normalizeLinkageSerial(rec.new);
    if (oldSerial === newSerial) {
      bad('linkage_line_malformed', 'the old and the new serial are the same');
      continue;
    }
    if (seen.has(oldSerial)) {
      bad('linkage_line_duplicate', 'this old serial is linked by an earlier line');
      continue;
    }
    seen.add(oldSerial);
    lines.push({ line, ok: true, oldSerial, newSerial, certDer: new Uint8Array(Buffer.from(rec.cert, 'base64')) });
  }
  return ok({ header, lines });
}

/**
 * Reads a linkage file: its size, then its signature, and only then its contents (nothing of an
 * unsigned file is parsed).
 */
export function parseLinkageFile(bytes: Uint8Array, signatureText: string | undefined, opts: { signers: readonly LinkageSigner[]; maxBytes: number }): Result<ParsedLinkageFile> {
  if (bytes.length > opts.maxBytes) return fail('linkage_file_too_large', `the file has ${bytes.length} bytes; the limit is ${opts.maxBytes}`);
  const signed = verifyLinkageSignature(bytes, signatureText, opts.signers);
  if (!signed.ok) return signed;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes); // ignoreBOM: keep a BOM, so it is refused below
  } catch {
    return fail('linkage_file_malformed', 'the file is not UTF-8');
  }
  const parsed = parseText(text);
  if (!parsed.ok) return parsed;
  return ok({ ...parsed.value, sha256: createHash('sha256').update(bytes).digest('hex'), signer: signed.value });
}
