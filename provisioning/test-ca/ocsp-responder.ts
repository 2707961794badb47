// An OCSP responder (RFC 6960) for the test CA, over HTTP on loopback: POST with
// application/ocsp-request, or GET {url}/{base64 of the request} (RFC 6960 appendix A.1).
// Responses are signed by the CA itself or by a delegated responder certificate (RFC 6960 4.2.2.2).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { CRL_REASONS, type CrlReason } from '../../shared/revocation.ts';
import { OID, integerBytes, integerValue, issueOcspResponderCert, type CryptoKey, type CryptoKeyPair, type TestCa } from './ca.ts';

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

const ID_PKIX_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
const HASHES: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
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
  const res = new pkijs.OCSPResponse({ responseStatus: new asn1js.Enumerated({ value: OCSP_RESPONSE_STATUS[status] }) });
  return new Uint8Array(res.toSchema().toBER(false));
}

/** RFC 6960 4.2.1 CertStatus, with the context tags written out because PKI.js leaves it as `any`. */
function certStatus(s: OcspStatus): asn1js.BaseBlock {
  if (s === undefined) return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 } }); // good [0] IMPLICIT NULL
  if (s === 'unknown') return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 2 } }); // unknown [2] IMPLICIT NULL
  // revoked [1] IMPLICIT RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
  return new asn1js.Constructed({
    idBlock: { tagClass: 3, tagNumber: 1 },
    value: [
      new asn1js.GeneralizedTime({ valueDate: wholeSeconds(s.revokedAt) }),
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [new asn1js.Enumerated({ value: CRL_REASONS[s.reason] })] }),
    ],
  });
}

interface Signer {
  key: CryptoKey;
  /** RFC 6960 4.2.2.3 ResponderID byKey: SHA-1 of the responder's public key bits. */
  keyHash: Uint8Array;
  certs: pkijs.Certificate[];
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
  let req: pkijs.OCSPRequest;
  try {
    req = pkijs.OCSPRequest.fromBER(buf(reqDer));
    if (req.tbsRequest.requestList.length === 0) return ocspErrorResponse('malformedRequest');
  } catch {
    return ocspErrorResponse('malformedRequest');
  }
  try {
    const now = wholeSeconds(ctx.now ?? new Date());
    const validity = ctx.validitySeconds ?? 3600;
    const caCert = pkijs.Certificate.fromBER(buf(ctx.ca.certDer));
    const caKeyBits = caCert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView;
    const responses: pkijs.SingleResponse[] = [];
    for (const r of req.tbsRequest.requestList) {
      const id = r.reqCert;
      const hash = HASHES[id.hashAlgorithm.algorithmId];
      let st: OcspStatus = 'unknown';
      // A CertID names the issuer by hashes of its name and key (RFC 6960 4.1.1); one that is not
      // this CA's gets `unknown`, as does a hash algorithm we do not know.
      if (hash) {
        const nameHash = createHash(hash).update(ctx.ca.nameDer).digest();
        const keyHash = createHash(hash).update(caKeyBits).digest();
        if (
          Buffer.from(id.issuerNameHash.valueBlock.valueHexView).equals(nameHash) &&
          Buffer.from(id.issuerKeyHash.valueBlock.valueHexView).equals(keyHash)
        ) {
          st = await ctx.status(integerValue(id.serialNumber));
        }
      }
      if (forge?.status !== undefined) st = forge.status === 'good' ? undefined : forge.status;
      const thisUpdate = forge?.thisUpdate ? wholeSeconds(forge.thisUpdate) : now;
      const nextUpdate =
        forge?.nextUpdate === null ? undefined : forge?.nextUpdate ? wholeSeconds(forge.nextUpdate) : validity > 0 ? new Date(thisUpdate.getTime() + validity * 1000) : undefined;
      responses.push(
        new pkijs.SingleResponse({
          certID: forge?.certId ? forgedCertId(id, forge.certId) : id,
          certStatus: certStatus(st),
          thisUpdate,
          ...(nextUpdate ? { nextUpdate } : {}),
        }),
      );
    }
    const asked = req.tbsRequest.requestExtensions?.find((e) => e.extnID === OID.ocspNonce);
    const nonce = forge?.nonce
      ? new pkijs.Extension({ extnID: OID.ocspNonce, critical: false, extnValue: new asn1js.OctetString({ valueHex: buf(forge.nonce) }).toBER(false) })
      : asked;
    const signer = forge?.signer ? forgedSigner(forge.signer) : ctx.signer;
    const tbs = new pkijs.ResponseData({
      responderID: new asn1js.OctetString({ valueHex: buf(forge?.responderKeyHash ?? signer.keyHash) }),
      producedAt: forge?.producedAt ? wholeSeconds(forge.producedAt) : now,
      responses,
      ...(nonce ? { responseExtensions: [new pkijs.Extension({ extnID: OID.ocspNonce, critical: false, extnValue: buf(nonce.extnValue.valueBlock.valueHexView) })] } : {}),
    });
    const basic = new pkijs.BasicOCSPResponse({ tbsResponseData: tbs, ...(signer.certs.length ? { certs: signer.certs } : {}) });
    await basic.sign(signer.key, 'SHA-256');
    const res = new pkijs.OCSPResponse({
      responseStatus: new asn1js.Enumerated({ value: OCSP_RESPONSE_STATUS.successful }),
      responseBytes: new pkijs.ResponseBytes({
        responseType: ID_PKIX_OCSP_BASIC,
        response: new asn1js.OctetString({ valueHex: basic.toSchema().toBER(false) }),
      }),
    });
    const der = new Uint8Array(res.toSchema().toBER(false));
    return forge?.rewrite ? forge.rewrite(der) : der;
  } catch {
    return ocspErrorResponse('internalError');
  }
}

/** TEST ONLY: a CertID with some fields replaced. */
function forgedCertId(id: pkijs.CertID, f: NonNullable<OcspForgery['certId']>): pkijs.CertID {
  return new pkijs.CertID({
    hashAlgorithm: f.hashAlgorithmOid ? new pkijs.AlgorithmIdentifier({ algorithmId: f.hashAlgorithmOid, algorithmParams: new asn1js.Null() }) : id.hashAlgorithm,
    issuerNameHash: f.issuerNameHash ? new asn1js.OctetString({ valueHex: buf(f.issuerNameHash) }) : id.issuerNameHash,
    issuerKeyHash: f.issuerKeyHash ? new asn1js.OctetString({ valueHex: buf(f.issuerKeyHash) }) : id.issuerKeyHash,
    serialNumber: f.serial !== undefined ? new asn1js.Integer({ valueHex: buf(integerBytes(f.serial)) }) : id.serialNumber,
  });
}

/** TEST ONLY: a signer from a key and the certificates to ship (ResponderID byKey of the first, if any). */
function forgedSigner(f: NonNullable<OcspForgery['signer']>): Signer {
  return {
    key: f.key,
    keyHash: f.certDers[0] ? keyHashOf(f.certDers[0]) : new Uint8Array(20),
    certs: f.certDers.map((d) => pkijs.Certificate.fromBER(buf(d))),
  };
}

/** TEST ONLY: SHA-1 of a certificate's subject Name and of its public key bits, as a CertID names an issuer. */
export function issuerHashesOf(certDer: Uint8Array): { issuerNameHash: Uint8Array; issuerKeyHash: Uint8Array } {
  const cert = pkijs.Certificate.fromBER(buf(certDer));
  return {
    issuerNameHash: new Uint8Array(createHash('sha1').update(new Uint8Array(cert.subject.toSchema().toBER(false))).digest()),
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
    return { key: ca.keyPair.privateKey, keyHash: keyHashOf(ca.certDer), certs: [pkijs.Certificate.fromBER(buf(ca.certDer))] };
  }
  const rc = await issueOcspResponderCert(ca, responderKeyPair ? { keyPair: responderKeyPair } : {});
  return { key: rc.keyPair.privateKey, keyHash: keyHashOf(rc.certDer), certs: [pkijs.Certificate.fromBER(buf(rc.certDer))], responderCertDer: rc.certDer };
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
  const answer = (der: Uint8Array) =>
    answerOcspRequest(der, { ca, status, signer, validitySeconds, forge: typeof opts.forge === 'function' ? opts.forge() : opts.forge });

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
