// The test CA's CRL writer: v2 CRLs of any size (RFC 5280 5.1), DER written straight into one
// preallocated buffer, so a million entries take seconds, not the minutes and gigabytes a generic
// ASN.1 object model needs. Signed with WebCrypto RSASSA-PKCS1-v1_5.
import { webcrypto } from 'node:crypto';
import { MyKeyError } from '../../shared/errors.ts';
import { CRL_REASONS, type CrlReason } from '../../shared/revocation.ts';

/** One revoked certificate to list. `unspecified` (or no reason) writes no reasonCode (RFC 5280 5.3.1). */
export interface CrlWriterEntry {
  serial: bigint;
  revokedAt: Date;
  reason?: CrlReason;
  /** Further entry extensions (RFC 5280 5.3), e.g. a critical one the hub cannot process. */
  extensions?: readonly CrlWriterExtension[];
}

/** An extension written as given: OID in dotted form, critical flag, extnValue content DER. */
export interface CrlWriterExtension {
  oid: string;
  critical: boolean;
  value: Uint8Array;
}

/**
 * The issuingDistributionPoint of a partitioned or otherwise scoped CRL (RFC 5280 5.2.5), written
 * critical as the RFC requires. `distributionPointUri` becomes fullName [0] { uniformResourceIdentifier }.
 */
export interface CrlWriterScope {
  distributionPointUri?: string;
  onlyContainsUserCerts?: boolean;
  onlyContainsCACerts?: boolean;
  /** ReasonFlags bits set (RFC 5280 4.2.1.13: 1 keyCompromise ... 8 aACompromise). */
  onlySomeReasons?: number[];
  indirectCRL?: boolean;
  onlyContainsAttributeCerts?: boolean;
}

/** What writeCrl needs. */
export interface WriteCrlOptions {
  /** The issuer Name, full DER TLV (the CA certificate's subject). */
  issuerNameDer: Uint8Array;
  /** RSASSA-PKCS1-v1_5 private key, SHA-256 (SHA-384 and SHA-512 also work). */
  signingKey: webcrypto.CryptoKey;
  thisUpdate: Date;
  nextUpdate?: Date;
  crlNumber: bigint;
  /** keyIdentifier for the authorityKeyIdentifier extension. */
  authorityKeyId?: Uint8Array;
  /** Makes a delta CRL: the deltaCRLIndicator extension (critical) carrying this BaseCRLNumber. */
  baseCrlNumber?: bigint;
  /** Scopes the CRL with an issuingDistributionPoint extension (critical). */
  issuingDistributionPoint?: CrlWriterScope;
  /** Further CRL extensions, written after the others (e.g. an unknown critical one). */
  extensions?: readonly CrlWriterExtension[];
  entries: Iterable<CrlWriterEntry>;
}

// sha{256,384,512}WithRSAEncryption AlgorithmIdentifiers with NULL parameters (RFC 4055 5).
const RSA_ALG: Record<string, number[]> = {
  'SHA-256': [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00],
  'SHA-384': [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00],
  'SHA-512': [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00],
};

/** A growable byte buffer that DER is written into. */
class Out {
  buf: Uint8Array;
  n = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
  room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.n + k) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
  }
  bytes(b: ArrayLike<number>): void {
    this.room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  /**
   * INTEGER TLV of a non-negative bigint (X.690 8.3: minimal, 00 in front of a high bit), written
   * from its hex digits without an intermediate array.
   */
  uint(v: bigint): void {
    const h = v.toString(16);
    const odd = h.length & 1;
    const nbytes = (h.length + odd) >> 1;
    const first = odd ? NIB[h.charCodeAt(0)] : (NIB[h.charCodeAt(0)] << 4) | NIB[h.charCodeAt(1)];
    const pad = first >= 0x80 ? 1 : 0;
    this.header(0x02, nbytes + pad);
    this.room(nbytes + pad);
    const b = this.buf;
    let n = this.n;
    if (pad) b[n++] = 0;
    b[n++] = first;
    for (let i = odd ? 1 : 2; i < h.length; i += 2) b[n++] = (NIB[h.charCodeAt(i)] << 4) | NIB[h.charCodeAt(i + 1)];
    this.n = n;
  }
  /** RFC 5280 5.1.2.4: UTCTime through 2049, GeneralizedTime from 2050 (and before 1950). */
  time(d: Date): void {
    const y = d.getUTCFullYear();
    const utc = y >= 1950 && y < 2050;
    this.room(17);
    const b = this.buf;
    let n = this.n;
    b[n++] = utc ? 0x17 : 0x18;
    b[n++] = utc ? 13 : 15;
    if (!utc) {
      b[n++] = 0x30 + Math.floor(y / 1000);
      b[n++] = 0x30 + (Math.floor(y / 100) % 10);
    }
    for (const v of [y % 100, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]) {
      b[n++] = 0x30 + Math.floor(v / 10);
      b[n++] = 0x30 + (v % 10);
    }
    b[n++] = 0x5a; // Z
    this.n = n;
  }
  /** Tag and definite length (X.690 8.1.3, minimal). */
  header(tag: number, len: number): void {
    this.room(6);
    const b = this.buf;
    b[this.n++] = tag;
    if (len < 0x80) b[this.n++] = len;
    else {
      const k = len < 0x100 ? 1 : len < 0x10000 ? 2 : len < 0x1000000 ? 3 : 4;
      b[this.n++] = 0x80 | k;
      for (let i = k - 1; i >= 0; i--) b[this.n++] = (len / 2 ** (8 * i)) & 0xff;
    }
  }
}

// Hex digit -> value.
const NIB = new Uint8Array(128);
for (let i = 0; i < 16; i++) NIB['0123456789abcdef'.charCodeAt(i)] = i;

function headerLength(len: number): number {
  return len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : len < 0x1000000 ? 5 : 6;
}

/** INTEGER content of a non-negative bigint (X.690 8.3: minimal, a 00 in front of a high bit). */
function uintBytes(v: bigint, what: string): Uint8Array {
  if (typeof v !== 'bigint' || v < 0n) throw new MyKeyError('validation_failed', `${what}: expected a non-negative bigint`);
  let h = v.toString(16);
  if (h.length % 2) h = '0' + h;
  const high = parseInt(h.slice(0, 2), 16) >= 0x80 ? 1 : 0;
  const out = new Uint8Array(h.length / 2 + high);
  for (let i = 0; i < h.length / 2; i++) out[i + high] = parseInt(h.substr(i * 2, 2), 16);
  return out;
}

function tlv(tag: number, content: ArrayLike<number>): Uint8Array {
  const o = new Out(content.length + 6);
  o.header(tag, content.length);
  o.bytes(content);
  return o.buf.subarray(0, o.n);
}

function concat(...parts: ArrayLike<number>[]): Uint8Array {
  const o = new Out(parts.reduce((a, p) => a + p.length, 0) || 1);
  for (const p of parts) o.bytes(p);
  return o.buf.subarray(0, o.n);
}

/** A Time TLV (RFC 5280 5.1.2.4) of a valid Date. */
function timeTlv(d: Date, what: string): Uint8Array {
  checkDate(d, what);
  const o = new Out(17);
  o.time(d);
  return o.buf.subarray(0, o.n);
}

function checkDate(d: Date, what: string): void {
  const ms = d instanceof Date ? d.getTime() : NaN;
  if (!Number.isFinite(ms)) throw new MyKeyError('validation_failed', `${what}: not a valid Date`);
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) throw new MyKeyError('validation_failed', `${what}: year out of range`);
}

const OID = (...b: number[]) => tlv(0x06, b);
function extension(oid: Uint8Array, critical: boolean, value: Uint8Array): Uint8Array {
  return tlv(0x30, concat(oid, critical ? [0x01, 0x01, 0xff] : [], tlv(0x04, value)));
}

/** An OID TLV from dotted form (X.690 8.19). */
function oidTlv(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  if (arcs.length < 2 || arcs[0] > 2n) throw new MyKeyError('validation_failed', `bad OID ${dotted}`);
  const out: number[] = [];
  const push = (v: bigint) => {
    const groups = [Number(v & 0x7fn)];
    for (v >>= 7n; v > 0n; v >>= 7n) groups.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...groups);
  };
  push(arcs[0] * 40n + arcs[1]);
  for (const a of arcs.slice(2)) push(a);
  return tlv(0x06, out);
}

function customExtension(x: CrlWriterExtension): Uint8Array {
  return extension(oidTlv(x.oid), x.critical, x.value);
}

/** IssuingDistributionPoint ::= SEQUENCE { [0] DistributionPointName, [1]..[5] } (RFC 5280 5.2.5), DER. */
function idpValue(s: CrlWriterScope): Uint8Array {
  const parts: Uint8Array[] = [];
  // distributionPoint [0] { fullName [0] GeneralNames { uniformResourceIdentifier [6] IA5String } }
  if (s.distributionPointUri !== undefined) parts.push(tlv(0xa0, tlv(0xa0, tlv(0x86, Buffer.from(s.distributionPointUri, 'ascii')))));
  const flag = (tag: number, on: boolean | undefined) => on && parts.push(tlv(tag, [0xff]));
  flag(0x81, s.onlyContainsUserCerts);
  flag(0x82, s.onlyContainsCACerts);
  if (s.onlySomeReasons !== undefined) {
    // ReasonFlags ::= BIT STRING, named bits: DER drops trailing zero bits (X.690 11.2.2).
    const max = Math.max(...s.onlySomeReasons);
    const bytes = new Uint8Array(Math.floor(max / 8) + 1);
    for (const b of s.onlySomeReasons) bytes[b >> 3] |= 0x80 >> (b & 7);
    parts.push(tlv(0x83, [7 - (max & 7), ...bytes]));
  }
  flag(0x84, s.indirectCRL);
  flag(0x85, s.onlyContainsAttributeCerts);
  return tlv(0x30, concat(...parts));
}

// reasonCode entry extension for each reason: SEQUENCE { OID 2.5.29.21, OCTET STRING { ENUMERATED } }.
const REASON_EXT = new Map<number, Uint8Array>();
for (const code of Object.values(CRL_REASONS)) {
  REASON_EXT.set(code, tlv(0x30, extension(OID(0x55, 0x1d, 0x15), false, Uint8Array.of(0x0a, 0x01, code))));
}

/** Writes and signs a v2 CRL; returns its DER. */
export async function writeCrl(opts: WriteCrlOptions): Promise<Uint8Array> {
  const hashName = (opts.signingKey.algorithm as webcrypto.RsaHashedKeyAlgorithm).hash?.name;
  const alg = RSA_ALG[hashName];
  if (opts.signingKey.algorithm.name !== 'RSASSA-PKCS1-v1_5' || alg === undefined) {
    throw new MyKeyError('validation_failed', 'writeCrl: signingKey must be RSASSA-PKCS1-v1_5 with SHA-256, SHA-384 or SHA-512');
  }
  const sigLen = Math.ceil((opts.signingKey.algorithm as webcrypto.RsaHashedKeyAlgorithm).modulusLength / 8);

  // revokedCertificates content, one entry after another.
  const list = new Out(1 << 20);
  let lastMs = NaN;
  let count = 0;
  // Each entry is written with a placeholder one-byte length, then fixed up: the serial's size is
  // only known once written. Entries of 128 bytes or more (serials of 90+ bytes) move up to make
  // room for a long-form length.
  for (const e of opts.entries) {
    const serial = e.serial;
    if (typeof serial !== 'bigint' || serial < 0n) throw new MyKeyError('validation_failed', 'entry serial: expected a non-negative bigint');
    const d = e.revokedAt;
    if (!(d instanceof Date) || d.getTime() !== lastMs) {
      checkDate(d, 'entry revokedAt');
      lastMs = d.getTime();
    }
    let ext: Uint8Array | undefined;
    if (e.reason !== undefined && e.reason !== 'unspecified') {
      ext = REASON_EXT.get(CRL_REASONS[e.reason]);
      if (ext === undefined) throw new MyKeyError('validation_failed', 'entry reason: unknown');
    }
    if (e.extensions !== undefined && e.extensions.length > 0) {
      // REASON_EXT is a whole Extensions SEQUENCE; rebuild it with the extra extensions after reasonCode.
      const inner = ext ? ext.subarray(2) : new Uint8Array(0);
      ext = tlv(0x30, concat(inner, ...e.extensions.map(customExtension)));
    }
    list.room(2);
    const start = list.n;
    list.n += 2;
    list.uint(serial);
    list.time(d);
    if (ext) list.bytes(ext);
    const len = list.n - start - 2;
    if (len < 0x80) {
      list.buf[start] = 0x30;
      list.buf[start + 1] = len;
    } else {
      const body = list.buf.slice(start + 2, list.n);
      list.n = start;
      list.header(0x30, len);
      list.bytes(body);
    }
    count++;
  }

  // crlExtensions: cRLNumber (5.2.3), authorityKeyIdentifier (5.2.1), deltaCRLIndicator (5.2.4).
  const exts: Uint8Array[] = [];
  if (opts.authorityKeyId) exts.push(extension(OID(0x55, 0x1d, 0x23), false, tlv(0x30, tlv(0x80, opts.authorityKeyId))));
  exts.push(extension(OID(0x55, 0x1d, 0x14), false, tlv(0x02, uintBytes(opts.crlNumber, 'crlNumber'))));
  if (opts.baseCrlNumber !== undefined) exts.push(extension(OID(0x55, 0x1d, 0x1b), true, tlv(0x02, uintBytes(opts.baseCrlNumber, 'baseCrlNumber'))));
  if (opts.issuingDistributionPoint !== undefined) exts.push(extension(OID(0x55, 0x1d, 0x1c), true, idpValue(opts.issuingDistributionPoint)));
  for (const x of opts.extensions ?? []) exts.push(customExtension(x));

  const head = concat(
    [0x02, 0x01, 0x01], // version v2
    alg,
    opts.issuerNameDer,
    timeTlv(opts.thisUpdate, 'thisUpdate'),
    opts.nextUpdate ? timeTlv(opts.nextUpdate, 'nextUpdate') : [],
  );
  const listHeader = new Out(8);
  if (count > 0) listHeader.header(0x30, list.n);
  const tail = tlv(0xa0, tlv(0x30, concat(...exts)));
  const tbsContent = head.length + listHeader.n + list.n + tail.length;
  const tbsLen = headerLength(tbsContent) + tbsContent;
  const bitLen = sigLen + 1;
  const outerContent = tbsLen + alg.length + headerLength(bitLen) + bitLen;

  // The whole CertificateList in one buffer; tbsCertList is signed in place.
  const out = new Out(headerLength(outerContent) + outerContent);
  out.header(0x30, outerContent);
  const tbsStart = out.n;
  out.header(0x30, tbsContent);
  out.bytes(head);
  out.bytes(listHeader.buf.subarray(0, listHeader.n));
  out.bytes(list.buf.subarray(0, list.n));
  list.buf = new Uint8Array(0);
  out.bytes(tail);
  const tbs = out.buf.subarray(tbsStart, out.n);
  const sig = new Uint8Array(await webcrypto.subtle.sign({ name: 'RSASSA-PKCS1-v1_5' }, opts.signingKey, tbs));
  if (sig.length !== sigLen) throw new MyKeyError('internal', 'writeCrl: unexpected signature length');
  out.bytes(alg);
  out.header(0x03, bitLen);
  out.bytes([0]);
  out.bytes(sig);
  return out.buf.subarray(0, out.n);
}
