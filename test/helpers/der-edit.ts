// Test helpers for malformed DER: a tiny TLV writer, a walk over every TLV header of a structure,
// a seeded PRNG (so a fuzz failure reproduces from its printed seed), and the mutations a fuzzer
// applies to real DER (bit flips, truncations, length-byte edits, inserted and removed bytes).
import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { webcrypto } from 'node:crypto';
import { TAG, children, readTlv, type Tlv } from '../../shared/asn1/der.ts';

/** A DER TLV with a definite length (X.690 8.1.3). */
export function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(content);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return new Uint8Array(Buffer.concat([Uint8Array.from([tag, ...len]), body]));
}

/** Every TLV of a DER structure, depth first (constructed ones are descended into). */
export function walk(buf: Uint8Array, t: Tlv = readTlv(buf, 0), out: Tlv[] = []): Tlv[] {
  out.push(t);
  if (t.tag & 0x20) {
    try {
      for (const c of children(buf, t)) walk(buf, c, out);
    } catch {
      // a constructed value that does not hold TLVs: stop here
    }
  }
  return out;
}

/** mulberry32: a small, fast, seeded PRNG. */
export function prng(seed: number): { next(): number; int(n: number): number } {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n) };
}

export type Mutation = 'bitflip' | 'truncate' | 'length' | 'insert' | 'remove' | 'tag';

/** One random mutation of `der` (whose TLV headers are `tlvs`). */
export function mutate(der: Uint8Array, tlvs: Tlv[], r: ReturnType<typeof prng>): { bytes: Uint8Array; kind: Mutation } {
  const kinds: Mutation[] = ['bitflip', 'truncate', 'length', 'insert', 'remove', 'tag'];
  const kind = kinds[r.int(kinds.length)];
  const b = Buffer.from(der);
  switch (kind) {
    case 'bitflip': {
      const flips = 1 + r.int(4);
      for (let i = 0; i < flips; i++) b[r.int(b.length)] ^= 1 << r.int(8);
      return { bytes: new Uint8Array(b), kind };
    }
    case 'truncate':
      return { bytes: new Uint8Array(b.subarray(0, r.int(b.length))), kind };
    case 'length': {
      // The first length octet of a random TLV: off by one, zero, long forms, indefinite, huge.
      const t = tlvs[r.int(tlvs.length)];
      const p = t.start + 1;
      const choices = [b[p] + 1, b[p] - 1, 0, 0x80, 0x81, 0x82, 0x84, 0x85, 0xff, r.int(256)];
      b[p] = choices[r.int(choices.length)] & 0xff;
      return { bytes: new Uint8Array(b), kind };
    }
    case 'insert': {
      const at = r.int(b.length + 1);
      const n = 1 + r.int(8);
      const ins = Buffer.from(Array.from({ length: n }, () => r.int(256)));
      return { bytes: new Uint8Array(Buffer.concat([b.subarray(0, at), ins, b.subarray(at)])), kind };
    }
    case 'remove': {
      const at = r.int(b.length);
      const n = 1 + r.int(8);
      return { bytes: new Uint8Array(Buffer.concat([b.subarray(0, at), b.subarray(at + n)])), kind };
    }
    case 'tag': {
      const t = tlvs[r.int(tlvs.length)];
      const tags = [TAG.SEQUENCE, TAG.SET, TAG.OCTET_STRING, TAG.INTEGER, TAG.BIT_STRING, TAG.OID, TAG.NULL, TAG.BOOLEAN, 0xa0, 0xa3, 0x80, 0x1f, r.int(256)];
      b[t.start] = tags[r.int(tags.length)];
      return { bytes: new Uint8Array(b), kind };
    }
  }
}

/**
 * Re-signs a certificate after editing its TBSCertificate bytes, so a test can make a certificate the
 * CA "really issued" with any content (sha256WithRSAEncryption, the CA's RSA key).
 */
export async function resign(certDer: Uint8Array, caKey: webcrypto.CryptoKey, editTbs: (tbs: Uint8Array) => Uint8Array): Promise<Uint8Array> {
  const cert = readTlv(certDer, 0);
  const [tbsT, algT] = children(certDer, cert);
  const tbs = editTbs(certDer.subarray(tbsT.start, tbsT.end));
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', caKey));
  const sig = cryptoSign('sha256', tbs, createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
  return tlv(TAG.SEQUENCE, tbs, certDer.subarray(algT.start, algT.end), tlv(TAG.BIT_STRING, Uint8Array.from([0]), sig));
}

/** Rewrites the extensions of a TBSCertificate: `edit` gets and returns the list of Extension TLVs. */
export function editExtensions(tbs: Uint8Array, edit: (exts: Uint8Array[]) => Uint8Array[], wrap?: (seq: Uint8Array) => Uint8Array): Uint8Array {
  const t = readTlv(tbs, 0);
  const fields = children(tbs, t);
  const parts = fields.map((f) => tbs.subarray(f.start, f.end));
  const i = fields.findIndex((f) => f.tag === 0xa3);
  const seqT = readTlv(tbs, fields[i].valueStart, fields[i].end);
  const exts = children(tbs, seqT).map((e) => tbs.subarray(e.start, e.end));
  const seq = tlv(TAG.SEQUENCE, ...edit(exts));
  parts[i] = tlv(0xa3, wrap ? wrap(seq) : seq);
  return tlv(TAG.SEQUENCE, ...parts);
}
