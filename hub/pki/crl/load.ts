// Loading a CRL for use: parse, find the issuer by name, verify the signature with the issuer's key,
// then index. Several configured issuers may share one name during a CA key rollover; the one whose
// key verifies wins.
import { fail, ok, type Result } from '../../../shared/errors.ts';
import { indexCrl, type CrlIndex } from './crl-index.ts';
import { keyIdOf, type CrlIssuer } from './issuer.ts';
import { canonicalName, sameDer } from './name.ts';
import { parseCrl, type ParsedCrl } from './parse.ts';
import { verifyCrlSignature } from './verify.ts';

/** Options of loadCrl. */
export interface LoadCrlOptions {
  /** Indexing progress: (entries done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** A verified, indexed CRL and the issuer that signed it. */
export interface LoadedCrl {
  crl: ParsedCrl;
  index: CrlIndex;
  issuer: CrlIssuer;
}

/** Issuers whose name matches: exact DER matches, or if there are none, RFC 5280 7.1 folded matches. */
export function issuersNamed(nameDer: Uint8Array, issuers: CrlIssuer[]): CrlIssuer[] {
  const exact = issuers.filter((i) => sameDer(i.nameDer, nameDer));
  if (exact.length) return exact;
  const want = canonicalName(nameDer);
  if (want === undefined) return [];
  return issuers.filter((i) => canonicalName(i.nameDer) === want);
}

/**
 * Parses (DER or PEM), authenticates and indexes a CRL.
 * - crl_malformed: not a well-formed CRL (the message names the byte offset);
 * - crl_unknown_issuer: no configured issuer has the CRL's issuer name;
 * - crl_signature_invalid: issuers have the name, but none of their keys verifies the signature.
 * Freshness (thisUpdate/nextUpdate, cRLNumber order) is the caller's policy, not checked here.
 */
export function loadCrl(
  derOrPem: Uint8Array,
  issuers: CrlIssuer[],
  opts: LoadCrlOptions = {},
): Result<LoadedCrl, 'crl_malformed' | 'crl_unknown_issuer' | 'crl_signature_invalid'> {
  const parsed = parseCrl(derOrPem);
  if (!parsed.ok) return parsed;
  const crl = parsed.value;
  const named = issuersNamed(crl.issuerNameDer, issuers);
  if (named.length === 0) return fail('crl_unknown_issuer', `no configured CRL issuer has the CRL's issuer name (${issuers.length} configured)`);
  // Try the issuer whose key identifier matches the CRL's authorityKeyIdentifier first: each attempt
  // hashes the whole tbsCertList, which is tens of megabytes for a national CRL.
  let ordered = named;
  if (named.length > 1 && crl.authorityKeyId) {
    const aki = crl.authorityKeyId;
    const hit = (i: CrlIssuer) => {
      const k = keyIdOf(i.publicKey);
      return k !== undefined && sameDer(k, aki);
    };
    ordered = [...named.filter(hit), ...named.filter((i) => !hit(i))];
  }
  const issuer = ordered.find((i) => verifyCrlSignature(crl, i.publicKey));
  if (issuer === undefined) {
    return fail('crl_signature_invalid', `the CRL signature (${crl.signatureAlgorithmOid}) does not verify with any of the ${named.length} issuer key(s) of that name`);
  }
  const index = indexCrl(crl, { onProgress: opts.onProgress });
  if (!index.ok) return index;
  return ok({ crl, index: index.value, issuer });
}
