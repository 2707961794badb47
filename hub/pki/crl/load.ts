// Loading a CRL for use: parse, find the issuer, verify the signature with the issuer's key, check
// that the CRL may stand for its issuer's full CRL, then index. Several configured issuers may share
// one name during a CA key rollover: the CRL belongs to the key that verifies it (tried in the order
// of its authorityKeyIdentifier), and is filed under that key's id, never under the name alone.
import { fail, ok, type Result } from '../../../shared/errors.ts';
import { indexCrl, indexCrlSteps, type CrlIndex } from './crl-index.ts';
import type { CrlIssuer } from './issuer.ts';
import { namesMatch, sameDer } from './name.ts';
import { parseCrl, parseCrlSteps, type Pace, type ParsedCrl } from './parse.ts';
import { verifyCrlSignature, verifyCrlSignatureAsync } from './verify.ts';

/** Options of loadCrl. */
export interface LoadCrlOptions {
  /** Indexing progress: (entries done, total). */
  onProgress?: (done: number, total: number) => void;
  /** The time a CRL's thisUpdate is checked against; omitted, thisUpdate is not checked. */
  now?: Date;
  /** How far thisUpdate may lie ahead of `now` (clocks drift); default 5 minutes. */
  clockSkewMs?: number;
}

/** A verified, indexed CRL and the issuer that signed it. */
export interface LoadedCrl {
  crl: ParsedCrl;
  index: CrlIndex;
  issuer: CrlIssuer;
}

export type LoadCrlCode = 'crl_malformed' | 'crl_unknown_issuer' | 'crl_signature_invalid' | 'crl_critical_extension' | 'crl_delta_unsupported' | 'crl_scope_unsupported' | 'crl_not_yet_valid';

/**
 * Issuers whose name matches the CRL's issuer name under the RFC 5280 7.1 rule (name.ts), those with
 * byte-equal names first (the likelier signer when a folded twin is configured too).
 */
export function issuersNamed(nameDer: Uint8Array, issuers: CrlIssuer[]): CrlIssuer[] {
  const named = issuers.filter((i) => namesMatch(i.nameDer, nameDer));
  return [...named.filter((i) => sameDer(i.nameDer, nameDer)), ...named.filter((i) => !sameDer(i.nameDer, nameDer))];
}

/**
 * Why a CRL cannot stand for its issuer's complete CRL of user certificates, or undefined when it
 * can. The hub keeps one CRL per issuer key and reads a serial missing from it as "not revoked", so
 * only a complete CRL may be that one.
 */
export function scopeProblem(crl: ParsedCrl): { code: 'crl_delta_unsupported' | 'crl_scope_unsupported'; message: string } | undefined {
  // RFC 5280 5.2.4: a delta CRL lists only changes since its base; it is never a full CRL.
  if (crl.isDelta) return { code: 'crl_delta_unsupported', message: `a delta CRL (base CRL number ${crl.baseCrlNumber}) lists only changes and cannot stand for the full CRL` };
  const s = crl.scope;
  if (s === undefined) return undefined;
  // RFC 5280 5.2.5: each of these narrows the CRL to part of what its issuer revoked.
  const partial: string[] = [];
  if (s.distributionPoint) partial.push('a distribution point (a partitioned CRL)');
  if (s.onlyContainsCACerts) partial.push('onlyContainsCACerts');
  if (s.onlyContainsAttributeCerts) partial.push('onlyContainsAttributeCerts');
  if (s.onlySomeReasons) partial.push('onlySomeReasons');
  // RFC 5280 5.2.5, 5.3.3: an indirect CRL may list other issuers' certificates (certificateIssuer).
  if (s.indirectCRL) partial.push('indirectCRL');
  if (partial.length === 0) return undefined; // onlyContainsUserCerts alone: every user certificate, which is all the hub binds.
  return { code: 'crl_scope_unsupported', message: `the CRL's issuingDistributionPoint limits it to ${partial.join(', ')}; only a full CRL is accepted` };
}

/**
 * Parses (DER or PEM), authenticates, checks and indexes a CRL.
 * - crl_malformed: not a well-formed CRL (the message names the byte offset);
 * - crl_unknown_issuer: no configured issuer has the CRL's issuer name;
 * - crl_signature_invalid: issuers have the name, but none of their keys verifies the signature;
 * - crl_critical_extension: a critical extension it cannot process, in the CRL or an entry (RFC 5280 5.2, 5.3);
 * - crl_delta_unsupported, crl_scope_unsupported: not a full CRL (scopeProblem);
 * - crl_not_yet_valid: thisUpdate later than `now` plus the clock skew (when `now` is given).
 * Whether it is newer than the one applied, and nextUpdate, are the caller's policy.
 */
export function loadCrl(derOrPem: Uint8Array, issuers: CrlIssuer[], opts: LoadCrlOptions = {}): Result<LoadedCrl, LoadCrlCode> {
  const it = loadCrlSteps(derOrPem, issuers, opts);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
  }
}

/** The issuers that may have signed a CRL, likeliest first; a refusal when none has its name. */
function candidates(crl: ParsedCrl, issuers: CrlIssuer[]): Result<CrlIssuer[], 'crl_unknown_issuer'> {
  const named = issuersNamed(crl.issuerNameDer, issuers);
  if (named.length === 0) return fail('crl_unknown_issuer', `no configured CRL issuer has the CRL's issuer name (${issuers.length} configured)`);
  // The issuer whose key identifier is the CRL's authorityKeyIdentifier first (RFC 5280 5.2.1): each
  // attempt hashes the whole tbsCertList, which is tens of megabytes for a national CRL.
  if (named.length > 1 && crl.authorityKeyId) {
    const aki = Buffer.from(crl.authorityKeyId).toString('hex');
    return ok([...named.filter((i) => i.keyId === aki), ...named.filter((i) => i.keyId !== aki)]);
  }
  return ok(named);
}

/** The checks after the signature: a verified CRL the hub may still not use (undefined when it may). */
function refusal(crl: ParsedCrl, issuer: CrlIssuer | undefined, named: number, opts: LoadCrlOptions): { ok: false; code: LoadCrlCode; message: string } | undefined {
  if (issuer === undefined) {
    return fail('crl_signature_invalid', `the CRL signature (${crl.signatureAlgorithmOid}) does not verify with any of the ${named} issuer key(s) of that name`);
  }
  if (crl.unknownCriticalExtensions.length > 0) {
    return fail('crl_critical_extension', `the CRL carries critical extension(s) the hub cannot process: ${crl.unknownCriticalExtensions.join(', ')} (RFC 5280 5.2)`);
  }
  if (crl.unknownCriticalEntryExtensions > 0) {
    return fail(
      'crl_critical_extension',
      `${crl.unknownCriticalEntryExtensions} entr${crl.unknownCriticalEntryExtensions === 1 ? 'y carries' : 'ies carry'} a critical extension the hub cannot process (RFC 5280 5.3)`,
    );
  }
  const scope = scopeProblem(crl);
  if (scope !== undefined) return fail(scope.code, scope.message);
  if (opts.now !== undefined) {
    const skew = opts.clockSkewMs ?? 5 * 60_000;
    if (crl.thisUpdate.getTime() > opts.now.getTime() + skew) {
      return fail('crl_not_yet_valid', `the CRL's thisUpdate ${crl.thisUpdate.toISOString()} is in the future (now ${opts.now.toISOString()})`);
    }
  }
  return undefined;
}

/**
 * loadCrl as steps: the generator yields between parsing, verifying and indexing (each tens of
 * milliseconds for a national CRL), so a caller on the hub's event loop can let requests run
 * between them (hub/revocation crl-manager applyAsync).
 */
export function* loadCrlSteps(derOrPem: Uint8Array, issuers: CrlIssuer[], opts: LoadCrlOptions = {}): Generator<void, Result<LoadedCrl, LoadCrlCode>> {
  const parsed = parseCrl(derOrPem);
  if (!parsed.ok) return parsed;
  const crl = parsed.value;
  const named = candidates(crl, issuers);
  if (!named.ok) return named;
  yield;
  const issuer = named.value.find((i) => verifyCrlSignature(crl, i.publicKey));
  const refused = refusal(crl, issuer, named.value.length, opts);
  if (refused !== undefined) return refused;
  yield;
  const index = indexCrl(crl, { onProgress: opts.onProgress });
  if (!index.ok) return index;
  return ok({ crl, index: index.value, issuer: issuer! });
}

/**
 * loadCrl for the hub's event loop (hub/revocation crl-manager): parsing and indexing yield whenever
 * the pace's slice is used up, and the signature is checked on the libuv thread pool, so no piece
 * of a national CRL's load holds requests longer than a slice (plus one block of entries). Ends with
 * exactly what loadCrl gives, refusals included.
 */
export async function* loadCrlPaced(derOrPem: Uint8Array, issuers: CrlIssuer[], pace: Pace, opts: LoadCrlOptions = {}): AsyncGenerator<void, Result<LoadedCrl, LoadCrlCode>> {
  const parsed = yield* parseCrlSteps(derOrPem, pace);
  if (!parsed.ok) return parsed;
  const crl = parsed.value;
  const named = candidates(crl, issuers);
  if (!named.ok) return named;
  let issuer: CrlIssuer | undefined;
  for (const i of named.value) {
    if (await verifyCrlSignatureAsync(crl, i.publicKey)) {
      issuer = i;
      break;
    }
  }
  pace.restart();
  const refused = refusal(crl, issuer, named.value.length, opts);
  if (refused !== undefined) return refused;
  const index = yield* indexCrlSteps(crl, { onProgress: opts.onProgress }, pace);
  if (!index.ok) return index;
  return ok({ crl, index: index.value, issuer: issuer! });
}
