// The test OCSP responder's own DER (ocsp-responder.ts): writing its answers and reading the hub's
// requests, so that a test double shares no code with the client it tests (hub/pki/ocsp-*.ts).
import * as asn1js from 'asn1js';
import { tlv } from '../../shared/asn1/write.ts';
import { OID } from './ca.ts';

/** id-pkix-ocsp-basic (RFC 6960 4.2.1). */
const ID_PKIX_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';

/** Hash algorithms a CertID may name, by OID, as node:crypto names them. */
export const HASHES: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

// --- DER writing: the platform's writer (shared/asn1/write.ts, X.690 definite lengths in the fewest
// octets), which only the edge's CSR uses besides this; the hub's OCSP client does not. ---

export const der = tlv;

/** GeneralizedTime `YYYYMMDDHHMMSSZ` of a whole-second Date (RFC 6960 4.2.2.1 times, X.690 11.7). */
export function generalizedTime(d: Date): Uint8Array {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const s = `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return der(0x18, Buffer.from(s, 'latin1'));
}

export const oidDer = (dotted: string) => new Uint8Array(new asn1js.ObjectIdentifier({ value: dotted }).toBER(false));
export const NONCE_OID = oidDer(OID.ocspNonce);
export const BASIC_OID = oidDer(ID_PKIX_OCSP_BASIC);

// --- Reading the request: the responder's own small reader (a test double shares no code with the
// client it tests). Any surprise throws and the caller answers malformedRequest. ---

export interface ReqCertId {
  /** The CertID TLV as asked. */
  der: Uint8Array;
  hashOid: string;
  issuerNameHash: Uint8Array;
  issuerKeyHash: Uint8Array;
  serial: bigint;
}
export interface ReadRequest {
  certIds: ReqCertId[];
  /** extnValue contents of the nonce extension, when asked. */
  nonceExtnValue?: Uint8Array;
}
interface Elem {
  tag: number;
  start: number;
  body: number;
  end: number;
}

/** The DER elements filling [from, to) of `b`; throws on anything that does not fit. */
export function elems(b: Uint8Array, from: number, to: number): Elem[] {
  const out: Elem[] = [];
  let p = from;
  while (p < to) {
    if (p + 2 > to || (b[p] & 0x1f) === 0x1f) throw new Error('bad header');
    let len = b[p + 1];
    let body = p + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 3 || body + n > to) throw new Error('bad length');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + b[body + i];
      body += n;
    }
    if (body + len > to) throw new Error('overrun');
    out.push({ tag: b[p], start: p, body, end: body + len });
    p = body + len;
  }
  return out;
}

const HASH_OIDS = new Map(Object.keys(HASHES).map((o) => [Buffer.from(oidDer(o).subarray(2)).toString('hex'), o]));

/**
 * OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
 * TBSRequest ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, requestorName [1] EXPLICIT OPTIONAL,
 *                           requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
 * Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
 * CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING, issuerKeyHash OCTET STRING, serialNumber INTEGER }
 */
export function readRequest(b: Uint8Array): ReadRequest {
  const [top, ...trailing] = elems(b, 0, b.length);
  if (!top || trailing.length || top.tag !== 0x30) throw new Error('not an OCSPRequest');
  const [tbs] = elems(b, top.body, top.end);
  if (!tbs || tbs.tag !== 0x30) throw new Error('no tbsRequest');
  const fields = elems(b, tbs.body, tbs.end).filter((f) => f.tag !== 0xa0 && f.tag !== 0xa1);
  const [list, exts] = fields;
  if (!list || list.tag !== 0x30) throw new Error('no requestList');
  const out: ReadRequest = { certIds: [] };
  for (const r of elems(b, list.body, list.end)) {
    const [id] = elems(b, r.body, r.end);
    const [alg, nameHash, keyHash, serial] = elems(b, id.body, id.end);
    if (r.tag !== 0x30 || id.tag !== 0x30 || !serial || alg.tag !== 0x30 || nameHash.tag !== 0x04 || keyHash.tag !== 0x04 || serial.tag !== 0x02) throw new Error('bad CertID');
    const [oid] = elems(b, alg.body, alg.end);
    if (!oid || oid.tag !== 0x06) throw new Error('bad hashAlgorithm');
    const serialHex = Buffer.from(b.subarray(serial.body, serial.end)).toString('hex');
    out.certIds.push({
      der: b.subarray(id.start, id.end),
      hashOid: HASH_OIDS.get(Buffer.from(b.subarray(oid.body, oid.end)).toString('hex')) ?? 'unknown',
      issuerNameHash: b.subarray(nameHash.body, nameHash.end),
      issuerKeyHash: b.subarray(keyHash.body, keyHash.end),
      serial: serialHex === '' ? 0n : BigInt(`0x${serialHex}`),
    });
  }
  if (exts && exts.tag === 0xa2) {
    const [seq] = elems(b, exts.body, exts.end);
    for (const e of seq?.tag === 0x30 ? elems(b, seq.body, seq.end) : []) {
      const parts = elems(b, e.body, e.end);
      const value = parts[parts.length - 1];
      if (parts[0]?.tag === 0x06 && Buffer.from(b.subarray(parts[0].start, parts[0].end)).equals(NONCE_OID) && value?.tag === 0x04) {
        out.nonceExtnValue = b.subarray(value.body, value.end);
      }
    }
  }
  return out;
}
