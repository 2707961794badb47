// An OCSP responder (RFC 6960) for the test CA, over HTTP on loopback: POST with
// application/ocsp-request, or GET {url}/{base64 of the request} (RFC 6960 appendix A.1).
// Responses are signed by the CA itself or by a delegated responder certificate (RFC 6960 4.2.2.2).
//
// Requests are read and answers written as DER by hand, answers signed with node:crypto, and the CA's
// name and key hashes computed once per hash algorithm: at registration load the hub asks thousands
// of times a second, and PKI.js parsing and building plus WebCrypto signing cost ~20x more per answer.
// The reader and writer are the test CA's own (ocsp-der.ts; a test double shares no code with the
// client it tests).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KeyObject, createHash, sign as cryptoSign } from 'node:crypto';
import * as pkijs from 'pkijs';
import { CRL_REASONS, type CrlReason } from '../../shared/revocation.ts';
import { integerBytes, issueOcspResponderCert, type CryptoKey, type CryptoKeyPair, type TestCa } from './ca.ts';
import { BASIC_OID, HASHES, NONCE_OID, der, elems, generalizedTime, oidDer, readRequest, type ReadRequest, type ReqCertId } from './ocsp-der.ts';

/** What the responder says about one serial: revoked (with time and reason), good (undefined) or 'unknown'. */
export type OcspStatus = { revokedAt: Date; reason: CrlReason } | undefined | 'unknown';
/** Looks a serial up; may be async (a database). A throw or rejection answers internalError. */
export type OcspStatusLookup = (serial: bigint) => OcspStatus | Promise<OcspStatus>;

export interface OcspResponderOptions {
  ca: TestCa;
  status: OcspStatusLookup;
  host?: string;
  port?: number;
  /** Who signs: the CA key, or a delegated responder certificate issued by the CA (default 'ca'). */
  responder?: 'ca' | 'delegated';
  /** Key of the delegated responder (a fresh one is generated otherwise). */
  responderKeyPair?: CryptoKeyPair;
  /** Seconds from thisUpdate to nextUpdate in each answer (default 3600; 0 leaves nextUpdate out). */
  validitySeconds?: number;
  /** Largest request accepted, in bytes (default 16 KiB). */
  maxRequestBytes?: number;
  /**
   * TEST ONLY: forge the answers (wrong CertID fields, another signer, bent times). A function is
   * asked at each request, so one responder can forge differently from test to test.
   */
  forge?: OcspForgery | (() => OcspForgery | undefined);
}

/**
 * TEST ONLY. What a forging responder changes in otherwise ordinary answers, to show that a client
 * refuses them (RFC 6960 4.2.2.2 signer authorization, 4.1.1 CertID, 4.2.2.1 freshness).
 */
export interface OcspForgery {
  /** Replaces fields of each answered CertID (the request's CertID otherwise). */
  certId?: { hashAlgorithmOid?: string; issuerNameHash?: Uint8Array; issuerKeyHash?: Uint8Array; serial?: bigint };
  /** Answers this status whatever the lookup says. */
  status?: 'good' | 'unknown' | { revokedAt: Date; reason: CrlReason };
  /** Signs with this key and ships these certificates (e.g. a holder's certificate posing as a responder). */
  signer?: { key: CryptoKey; certDers: Uint8Array[] };
  thisUpdate?: Date;
  /** null leaves nextUpdate out. */
  nextUpdate?: Date | null;
  producedAt?: Date;
  /** Echoes this nonce instead of the request's. */
  nonce?: Uint8Array;
  /** ResponderID byKey with this hash instead of the signer's. */
  responderKeyHash?: Uint8Array;
  /** Rewrites the finished DER answer (a fuzzer's mutation). */
  rewrite?: (der: Uint8Array) => Uint8Array;
}

export interface OcspResponder {
  /** Base URL; POST here, or GET `${url}/${encodeURIComponent(base64(request))}`. */
  url: string;
  /** The delegated responder certificate, when responder is 'delegated'. */
  responderCertDer?: Uint8Array;
  close(): Promise<void>;
}

/** RFC 6960 4.2.1 OCSPResponseStatus. */
export const OCSP_RESPONSE_STATUS = { successful: 0, malformedRequest: 1, internalError: 2, tryLater: 3, sigRequired: 5, unauthorized: 6 } as const;

const PATH = '/ocsp';

function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

function buf(u: Uint8Array | ArrayBuffer): ArrayBuffer {
  if (u instanceof ArrayBuffer) return u;
  return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
}

/** An OCSPResponse with only a status (no responseBytes), for every non-successful answer. */
export function ocspErrorResponse(status: Exclude<keyof typeof OCSP_RESPONSE_STATUS, 'successful'>): Uint8Array {
  // OCSPResponse ::= SEQUENCE { responseStatus OCSPResponseStatus (ENUMERATED), responseBytes [0] EXPLICIT OPTIONAL }
  return der(0x30, der(0x0a, Uint8Array.of(OCSP_RESPONSE_STATUS[status])));
}

/** AlgorithmIdentifier of the response signature: sha256WithRSAEncryption (NULL parameters, RFC 4055) or ecdsa-with-SHA256 (none, RFC 5758). */
const SIG_ALG = {
  rsa: der(0x30, oidDer('1.2.840.113549.1.1.11'), der(0x05)),
  ec: der(0x30, oidDer('1.2.840.10045.4.3.2')),
};

/** The node:crypto key of a WebCrypto private key, made once per key. */
const nodeKeys = new WeakMap<CryptoKey, KeyObject>();
function nodeKeyOf(key: CryptoKey): KeyObject {
  let k = nodeKeys.get(key);
  if (!k) {
    k = KeyObject.from(key);
    nodeKeys.set(key, k);
  }
  return k;
}

/** SHA-x of the CA's subject Name and of its public key bits, per hash algorithm, computed once per CA. */
const caHashes = new WeakMap<TestCa, Map<string, { nameHash: Buffer; keyHash: Buffer }>>();
function caHashesFor(ca: TestCa, hash: string): { nameHash: Buffer; keyHash: Buffer } {
  let m = caHashes.get(ca);
  if (!m) {
    m = new Map();
    caHashes.set(ca, m);
  }
  let h = m.get(hash);
  if (!h) {
    const caKeyBits = pkijs.Certificate.fromBER(buf(ca.certDer)).subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView;
    h = { nameHash: createHash(hash).update(ca.nameDer).digest(), keyHash: createHash(hash).update(caKeyBits).digest() };
    m.set(hash, h);
  }
  return h;
}

/** RFC 6960 4.2.1 CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT UnknownInfo }. */
function certStatus(s: OcspStatus): Uint8Array {
  if (s === undefined) return der(0x80);
  if (s === 'unknown') return der(0x82);
  // RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
  return der(0xa1, generalizedTime(wholeSeconds(s.revokedAt)), der(0xa0, der(0x0a, Uint8Array.of(CRL_REASONS[s.reason]))));
}

interface Signer {
  key: CryptoKey;
  /** RFC 6960 4.2.2.3 ResponderID byKey: SHA-1 of the responder's public key bits. */
  keyHash: Uint8Array;
  /** Certificates shipped in the response (DER). */
  certs: Uint8Array[];
}

/**
 * Answers one DER OCSP request. Pure apart from the signing: the HTTP shell and tests call it.
 * Never throws: anything unparseable is `malformedRequest`, a failing lookup `internalError`.
 */
export async function answerOcspRequest(
  reqDer: Uint8Array,
  ctx: { ca: TestCa; status: OcspStatusLookup; signer: Signer; now?: Date; validitySeconds?: number; forge?: OcspForgery },
): Promise<Uint8Array> {
  const forge = ctx.forge;
  let req: ReadRequest;
  try {
    req = readRequest(reqDer);
    if (req.certIds.length === 0) return ocspErrorResponse('malformedRequest');
  } catch {
    return ocspErrorResponse('malformedRequest');
  }
  try {
    const now = wholeSeconds(ctx.now ?? new Date());
    const validity = ctx.validitySeconds ?? 3600;
    const responses: Uint8Array[] = [];
    for (const id of req.certIds) {
      const hash = HASHES[id.hashOid];
      let st: OcspStatus = 'unknown';
      // A CertID names the issuer by hashes of its name and key (RFC 6960 4.1.1); one that is not
      // this CA's gets `unknown`, as does a hash algorithm we do not know.
      if (hash) {
        const { nameHash, keyHash } = caHashesFor(ctx.ca, hash);
        if (nameHash.equals(id.issuerNameHash) && keyHash.equals(id.issuerKeyHash)) st = await ctx.status(id.serial);
      }
      if (forge?.status !== undefined) st = forge.status === 'good' ? undefined : forge.status;
      const thisUpdate = forge?.thisUpdate ? wholeSeconds(forge.thisUpdate) : now;
      const nextUpdate = forge?.nextUpdate === null ? undefined : forge?.nextUpdate ? wholeSeconds(forge.nextUpdate) : validity > 0 ? new Date(thisUpdate.getTime() + validity * 1000) : undefined;
      // SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus, thisUpdate GeneralizedTime,
      //                               nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, ... }
      // The CertID goes back exactly as it was asked, unless a forger bends it.
      const certId = forge?.certId ? forgedCertId(id, forge.certId) : id.der;
      responses.push(der(0x30, certId, certStatus(st), generalizedTime(thisUpdate), ...(nextUpdate ? [der(0xa0, generalizedTime(nextUpdate))] : [])));
    }
    // Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }; the nonce's
    // extnValue is echoed as asked (RFC 8954 2.1), or replaced by a forger's.
    const nonceValue = forge?.nonce ? der(0x04, forge.nonce) : req.nonceExtnValue;
    const signer = forge?.signer ? forgedSigner(forge.signer) : ctx.signer;
    // ResponseData ::= SEQUENCE { version [0] DEFAULT v1, responderID ResponderID (byKey [2] KeyHash),
    //   producedAt GeneralizedTime, responses SEQUENCE OF SingleResponse, responseExtensions [1] EXPLICIT Extensions OPTIONAL }
    const tbs = der(
      0x30,
      der(0xa2, der(0x04, forge?.responderKeyHash ?? signer.keyHash)),
      generalizedTime(forge?.producedAt ? wholeSeconds(forge.producedAt) : now),
      der(0x30, ...responses),
      ...(nonceValue ? [der(0xa1, der(0x30, der(0x30, NONCE_OID, der(0x04, nonceValue))))] : []),
    );
    const key = nodeKeyOf(signer.key);
    const ec = key.asymmetricKeyType === 'ec';
    const signature = cryptoSign('sha256', tbs, ec ? { key, dsaEncoding: 'der' } : key);
    // BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
    const basic = der(0x30, tbs, ec ? SIG_ALG.ec : SIG_ALG.rsa, der(0x03, Uint8Array.of(0), signature), ...(signer.certs.length ? [der(0xa0, der(0x30, ...signer.certs))] : []));
    // OCSPResponse ::= SEQUENCE { responseStatus, responseBytes [0] EXPLICIT SEQUENCE { responseType OID, response OCTET STRING } }
    const res = der(0x30, der(0x0a, Uint8Array.of(OCSP_RESPONSE_STATUS.successful)), der(0xa0, der(0x30, BASIC_OID, der(0x04, basic))));
    return forge?.rewrite ? forge.rewrite(res) : res;
  } catch {
    return ocspErrorResponse('internalError');
  }
}

/** TEST ONLY: a CertID with some fields replaced. */
function forgedCertId(id: ReqCertId, f: NonNullable<OcspForgery['certId']>): Uint8Array {
  const b = id.der;
  const [alg, , , serial] = elems(b, elems(b, 0, b.length)[0].body, b.length);
  return der(
    0x30,
    f.hashAlgorithmOid ? der(0x30, oidDer(f.hashAlgorithmOid), der(0x05)) : b.subarray(alg.start, alg.end),
    der(0x04, f.issuerNameHash ?? id.issuerNameHash),
    der(0x04, f.issuerKeyHash ?? id.issuerKeyHash),
    f.serial !== undefined ? der(0x02, integerBytes(f.serial)) : b.subarray(serial.start, serial.end),
  );
}

/** TEST ONLY: a signer from a key and the certificates to ship (ResponderID byKey of the first, if any). */
function forgedSigner(f: NonNullable<OcspForgery['signer']>): Signer {
  return {
    key: f.key,
    keyHash: f.certDers[0] ? keyHashOf(f.certDers[0]) : new Uint8Array(20),
    certs: f.certDers,
  };
}

/** TEST ONLY: SHA-1 of a certificate's subject Name and of its public key bits, as a CertID names an issuer. */
export function issuerHashesOf(certDer: Uint8Array): { issuerNameHash: Uint8Array; issuerKeyHash: Uint8Array } {
  const cert = pkijs.Certificate.fromBER(buf(certDer));
  return {
    issuerNameHash: new Uint8Array(
      createHash('sha1')
        .update(new Uint8Array(cert.subject.toSchema().toBER(false)))
        .digest(),
    ),
    issuerKeyHash: keyHashOf(certDer),
  };
}

function keyHashOf(certDer: Uint8Array): Uint8Array {
  const cert = pkijs.Certificate.fromBER(buf(certDer));
  return new Uint8Array(createHash('sha1').update(cert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView).digest());
}

/** Builds the signer for a responder mode: the CA key, or a fresh delegated responder certificate. */
export async function ocspSigner(ca: TestCa, responder: 'ca' | 'delegated', responderKeyPair?: CryptoKeyPair): Promise<Signer & { responderCertDer?: Uint8Array }> {
  if (responder === 'ca') {
    // The CA certificate goes along so that clients which expect certs (PKI.js verify) find the signer.
    return { key: ca.keyPair.privateKey, keyHash: keyHashOf(ca.certDer), certs: [ca.certDer] };
  }
  const rc = await issueOcspResponderCert(ca, responderKeyPair ? { keyPair: responderKeyPair } : {});
  return { key: rc.keyPair.privateKey, keyHash: keyHashOf(rc.certDer), certs: [rc.certDer], responderCertDer: rc.certDer };
}

function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? 'too-large' : new Uint8Array(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body?: Uint8Array, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...(body ? { 'content-type': 'application/ocsp-response', 'content-length': String(body.length) } : {}), ...headers });
  res.end(body ? Buffer.from(body) : undefined);
}

/** Starts the responder; `close()` stops it and drops open connections. */
export async function startOcspResponder(opts: OcspResponderOptions): Promise<OcspResponder> {
  const { ca, status, host = '127.0.0.1', port = 0, responder = 'ca', validitySeconds, maxRequestBytes = 16 * 1024 } = opts;
  const signer = await ocspSigner(ca, responder, opts.responderKeyPair);
  const answer = (der: Uint8Array) => answerOcspRequest(der, { ca, status, signer, validitySeconds, forge: typeof opts.forge === 'function' ? opts.forge() : opts.forge });

  const server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'POST' && (path === PATH || path === `${PATH}/` || path === '/')) {
        const body = await readBody(req, maxRequestBytes);
        if (body === 'too-large') return send(res, 413, ocspErrorResponse('malformedRequest'), { connection: 'close' });
        return send(res, 200, await answer(body));
      }
      if (req.method === 'GET' && path.startsWith(`${PATH}/`)) {
        // RFC 6960 A.1: the request is base64, then URL-encoded (its '/' may or may not be escaped).
        let der: Uint8Array;
        try {
          const b64 = decodeURIComponent(path.slice(PATH.length + 1));
          if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new Error('not base64');
          der = new Uint8Array(Buffer.from(b64, 'base64'));
        } catch {
          return send(res, 200, ocspErrorResponse('malformedRequest'));
        }
        return send(res, 200, await answer(der), { 'cache-control': 'max-age=0, no-cache' });
      }
      send(res, req.method === 'GET' || req.method === 'POST' ? 404 : 405, undefined, req.method === 'GET' || req.method === 'POST' ? {} : { allow: 'GET, POST' });
    })().catch(() => {
      if (!res.headersSent) send(res, 200, ocspErrorResponse('internalError'));
      else res.destroy();
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const hostPart = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${hostPart}:${addr.port}${PATH}`,
    ...(signer.responderCertDer ? { responderCertDer: signer.responderCertDer } : {}),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
