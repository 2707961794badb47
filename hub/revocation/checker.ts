// Revocation status of a certificate at registration time (登録時の失効確認): the latest verified
// CRL of its issuer held in memory, and OCSP where configured.
import type { ErrorCode } from '../../shared/errors.ts';
import type { CrlReason } from '../../shared/revocation.ts';
import type { CheckedCertificate } from '../pki/user-cert.ts';

/** What is known of a certificate's revocation. */
export interface RevocationVerdict {
  status: 'good' | 'revoked' | 'unknown';
  reason?: CrlReason;
  revokedAt?: Date;
  source: 'crl' | 'ocsp' | 'none';
  detail?: string;
  /** Why an OCSP answer was not used (an ocsp_* code), when one was asked for and refused. */
  ocspCode?: ErrorCode;
}

/** Answers revocation questions; implementations must not throw for expected failures. */
export interface RevocationChecker {
  check(cert: CheckedCertificate, now: Date): Promise<RevocationVerdict>;
}

/** A CRL held in memory for one issuer, as the CRL engine indexed it. */
export interface LoadedCrl {
  issuerKey: string;
  thisUpdate: Date;
  nextUpdate?: Date;
  crlNumber?: bigint;
  size: number;
  lookup(serialHex: string): { revokedAt: Date; reason: CrlReason } | undefined;
}

/** An OCSP query function (hub/pki/ocsp-client.ts provides one). */
export type OcspQuery = (cert: CheckedCertificate, now: Date) => Promise<RevocationVerdict>;

export interface CombinedCheckerOptions {
  /** Current CRL per issuer key id (TrustAnchor.keyId). */
  crls: Map<string, LoadedCrl>;
  ocsp?: OcspQuery;
  /** A CRL is still trusted this long after its nextUpdate (JPKI publishes on a schedule; fetches can lag). */
  crlGraceMs?: number;
}

/**
 * The CRL first, then OCSP where configured (freshest). A revoked answer from either wins: an OCSP
 * "good" never overrides a CRL "revoked" (a forged or replayed answer must not undo a revocation).
 * Without a usable source the verdict is `unknown`, carrying why each source failed (the OCSP code
 * included), and the caller decides whether that refuses.
 */
export function createRevocationChecker({ crls, ocsp, crlGraceMs = 24 * 3600_000 }: CombinedCheckerOptions): RevocationChecker {
  return {
    async check(cert, now) {
      const fromCrl = (): RevocationVerdict => {
        const crl = crls.get(cert.anchor.keyId);
        if (!crl) return { status: 'unknown', source: 'none', detail: 'no CRL loaded for this issuer' };
        const hit = crl.lookup(cert.cert.serialHex);
        if (hit) return { status: 'revoked', reason: hit.reason, revokedAt: hit.revokedAt, source: 'crl' };
        if (crl.nextUpdate && crl.nextUpdate.getTime() + crlGraceMs < now.getTime()) {
          return { status: 'unknown', source: 'crl', detail: `the CRL expired at ${crl.nextUpdate.toISOString()}` };
        }
        return { status: 'good', source: 'crl' };
      };
      const crlVerdict = fromCrl();
      if (crlVerdict.status === 'revoked' || !ocsp) return crlVerdict;
      const o = await ocsp(cert, now).catch((e): RevocationVerdict => ({ status: 'unknown', source: 'ocsp', detail: String(e?.message ?? e), ocspCode: 'ocsp_unavailable' }));
      if (o.status !== 'unknown') return o;
      if (crlVerdict.status === 'good') return crlVerdict;
      // Neither source answers: say why for both, so the refusal names the OCSP reason too.
      return {
        status: 'unknown',
        source: o.source,
        detail: `${crlVerdict.detail ?? 'no CRL answer'}; ${o.detail ?? 'no OCSP answer'}`,
        ...(o.ocspCode ? { ocspCode: o.ocspCode } : {}),
      };
    },
  };
}
