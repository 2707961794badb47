// OCSP client (RFC 6960) for registration-time revocation checks, with pkijs: a request with a
// nonce, POSTed to the configured responder, the response verified (signed by the CA or a delegated
// responder with id-kp-OCSPSigning), the nonce and freshness checked.
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { webcrypto } from 'node:crypto';
import { crlReasonFromCode } from '../../shared/revocation.ts';
import type { RevocationVerdict } from '../revocation/checker.ts';
import type { CheckedCertificate } from './user-cert.ts';

const NONCE_OID = '1.3.6.1.5.5.7.48.1.2';
const BASIC_OID = '1.3.6.1.5.5.7.48.1.1';

let engineSet = false;
function ensureEngine() {
  if (engineSet) return;
  pkijs.setEngine('node', new pkijs.CryptoEngine({ name: "node", crypto: webcrypto as unknown as ConstructorParameters<typeof pkijs.CryptoEngine>[0]["crypto"] }));
  engineSet = true;
}

function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

export interface OcspClientOptions {
  url: string;
  timeoutMs?: number;
  /** How far the responder's clock may be ahead or a response may be past nextUpdate. */
  clockSkewMs?: number;
  fetchImpl?: typeof fetch;
}

/** Builds the OCSP query used by the revocation checker. Failures are `unknown` verdicts, never throws. */
export function createOcspQuery(opts: OcspClientOptions) {
  const skew = opts.clockSkewMs ?? 5 * 60_000;
  const doFetch = opts.fetchImpl ?? fetch;
  return async (checked: CheckedCertificate, now: Date): Promise<RevocationVerdict> => {
    ensureEngine();
    const unknown = (detail: string): RevocationVerdict => ({ status: 'unknown', source: 'ocsp', detail });
    const cert = pkijs.Certificate.fromBER(toArrayBuffer(checked.cert.der));
    const issuer = pkijs.Certificate.fromBER(toArrayBuffer(checked.anchor.cert.der));
    const req = new pkijs.OCSPRequest();
    await req.createForCertificate(cert, { hashAlgorithm: 'SHA-1', issuerCertificate: issuer });
    const nonce = webcrypto.getRandomValues(new Uint8Array(16));
    req.tbsRequest.requestExtensions = [
      new pkijs.Extension({ extnID: NONCE_OID, extnValue: new asn1js.OctetString({ valueHex: nonce }).toBER() }),
    ];
    let body: ArrayBuffer;
    try {
      const res = await doFetch(opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
        body: new Uint8Array(req.toSchema(true).toBER()),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 3000),
      });
      if (!res.ok) return unknown(`OCSP responder answered HTTP ${res.status}`);
      body = await res.arrayBuffer();
      if (body.byteLength > 64 * 1024) return unknown('OCSP response too large');
    } catch (e) {
      return unknown(`OCSP responder unreachable: ${(e as Error).message}`);
    }
    try {
      const resp = pkijs.OCSPResponse.fromBER(body);
      const status = resp.responseStatus.valueBlock.valueDec;
      if (status !== 0) return unknown(`OCSP responseStatus ${status}`);
      if (!resp.responseBytes || resp.responseBytes.responseType !== BASIC_OID) return unknown('OCSP response is not a basic response');
      const basic = pkijs.BasicOCSPResponse.fromBER(resp.responseBytes.response.valueBlock.valueHexView);
      // RFC 6960 4.2.2.2: signed by the CA itself or a responder it delegated with id-kp-OCSPSigning.
      const verified = await basic.verify({ trustedCerts: [issuer] }).catch(() => false);
      if (!verified) return unknown('OCSP response signature does not verify');
      const ext = basic.tbsResponseData.responseExtensions?.find((e) => e.extnID === NONCE_OID);
      if (ext) {
        const inner = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView);
        const got = inner.offset !== -1 && inner.result instanceof asn1js.OctetString ? new Uint8Array(inner.result.valueBlock.valueHexView) : new Uint8Array(ext.extnValue.valueBlock.valueHexView);
        if (Buffer.compare(Buffer.from(got), Buffer.from(nonce)) !== 0) return unknown('OCSP nonce mismatch');
      }
      const serialHex = checked.cert.serialHex;
      const single = basic.tbsResponseData.responses.find((r) => {
        const h = Buffer.from(r.certID.serialNumber.valueBlock.valueHexView).toString('hex').replace(/^(00)+(?=.)/, '');
        return h === serialHex;
      });
      if (!single) return unknown('OCSP response does not cover this certificate');
      const thisUpdate = single.thisUpdate.getTime();
      if (thisUpdate > now.getTime() + skew) return unknown('OCSP response is from the future');
      if (single.nextUpdate && single.nextUpdate.getTime() + skew < now.getTime()) return unknown('OCSP response is stale');
      const cs = single.certStatus as asn1js.BaseBlock & { idBlock: { tagClass: number; tagNumber: number }; valueBlock: { value?: asn1js.BaseBlock[] } };
      switch (cs.idBlock.tagNumber) {
        case 0:
          return { status: 'good', source: 'ocsp' };
        case 1: {
          // RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
          const parts = cs.valueBlock.value ?? [];
          const time = parts[0] instanceof asn1js.GeneralizedTime ? parts[0].toDate() : undefined;
          const reasonBlock = parts[1] as (asn1js.BaseBlock & { valueBlock: { value?: asn1js.BaseBlock[] } }) | undefined;
          const enumerated = reasonBlock?.valueBlock.value?.[0];
          const code = enumerated instanceof asn1js.Enumerated ? enumerated.valueBlock.valueDec : 0;
          return { status: 'revoked', source: 'ocsp', revokedAt: time, reason: crlReasonFromCode(code) ?? 'unspecified' };
        }
        default:
          return unknown('OCSP responder does not know this certificate');
      }
    } catch (e) {
      return unknown(`OCSP response malformed: ${(e as Error).message}`);
    }
  };
}
