// OCSP client (RFC 6960) for registration-time revocation checks: a request for exactly one CertID
// with a nonce, POSTed to the configured responder, and the answer accepted only when
//   - it answers for that very CertID (hash algorithm, issuerNameHash, issuerKeyHash, serial; 4.1.1),
//   - it is signed by the issuing CA itself or by a responder the CA delegated directly with
//     id-kp-OCSPSigning (4.2.2.2): issued and signed by the CA, valid now, not a CA certificate,
//   - it is fresh: thisUpdate not in the future, nextUpdate not passed, and without nextUpdate no
//     older than a maximum age (so an old "good" cannot be replayed forever; 4.2.2.1),
//   - the nonce, when echoed, is ours (4.4.1).
// Anything else is an `unknown` verdict with a stable code saying why; the client never throws.
//
// At registration load the hub asks thousands of times a second, so the cost per answer is kept
// small: the issuer's key hash and KeyObject are made once, a delegated responder certificate is
// checked once per certificate, signatures are verified with node:crypto directly, requests go out
// over keep-alive node:http, and a verified answer is kept per (issuer key, serial) while it is fresh
// (an OCSP answer is public data). A cached answer never outlives its nextUpdate, the maximum age or
// the cache lifetime, and never overrides a CRL "revoked": the checker asks OCSP only after the CRL
// (hub/revocation/checker.ts).
//
// The response is read with the platform's bounds-checked DER toolkit (shared/asn1), not PKI.js, so a
// malformed answer is a DerError at a known offset and nothing else. The parts: ocsp-message.ts (the
// DER request and response), ocsp-verify.ts (whether an answer may be believed), ocsp-transport.ts
// (the POST); this file batches, caches and turns answers into verdicts.
import { randomBytes } from 'node:crypto';
import { silentLogger, type Logger } from '../../shared/log.ts';
import type { CrlReason } from '../../shared/revocation.ts';
import type { RevocationVerdict } from '../revocation/checker.ts';
import { certIdFor, certIdKey, encodeOcspRequest, type CertId } from './ocsp-message.ts';
import { postWithFetch, postWithNodeHttp } from './ocsp-transport.ts';
import { OcspRejected, answerFor, answersOf, verifyOcspResponse, type OcspRejectCode, type VerifiedOcspResponse } from './ocsp-verify.ts';
import type { CheckedCertificate } from './user-cert.ts';

export interface OcspClientOptions {
  url: string;
  timeoutMs?: number;
  /** How far the responder's clock may be ahead, or an answer past its nextUpdate (default 5 minutes). */
  clockSkewMs?: number;
  /** Without nextUpdate, an answer older than this (from thisUpdate) is stale (default 1 hour). */
  maxAgeMs?: number;
  /** Largest response accepted, in bytes. */
  maxResponseBytes?: number;
  /**
   * How long a verified answer is reused for the same (issuer key, serial), at most; never past its
   * nextUpdate, nor past thisUpdate + maxAgeMs without one. 0 asks the responder every time.
   */
  cacheMs?: number;
  /** Most answers kept (oldest dropped first). */
  cacheEntries?: number;
  /**
   * Most CertIDs asked in one request. Checks that arrive together (in one turn of the event loop)
   * for certificates of the same CA share one request, one nonce and one signed answer (RFC 6960
   * 4.1.1 requestList); 1 asks for each certificate alone.
   */
  batchMax?: number;
  /**
   * Most requests in flight to the responder per CA. Checks arriving meanwhile wait and go together
   * in the next request, so a slow round trip makes bigger requests rather than more of them.
   */
  maxInFlight?: number;
  /** Another HTTP client (tests); node:http(s) with keep-alive otherwise. */
  fetchImpl?: typeof fetch;
  log?: Logger;
}

/** A verified answer kept for reuse, and until when (epoch ms) it may be. */
interface CachedAnswer {
  status: { kind: 'good' } | { kind: 'revoked'; revokedAt: Date; reason?: CrlReason };
  /** Not before this (the answer's thisUpdate less the skew): a clock set back does not reuse it. */
  from: number;
  until: number;
}

/**
 * Verified answers by CertID (certIdKey: hash algorithm, issuer name and key hashes, serial). Entries leave when they expire (at lookup) or,
 * when full, oldest first; a Map keeps insertion order, so that costs nothing extra.
 */
export class OcspAnswerCache {
  private readonly m = new Map<string, CachedAnswer>();
  constructor(private readonly maxEntries: number) {}
  static key(id: CertId): string {
    return certIdKey(id);
  }
  get(key: string, now: number): CachedAnswer['status'] | undefined {
    const e = this.m.get(key);
    if (!e) return undefined;
    if (now >= e.until || now < e.from) {
      this.m.delete(key);
      return undefined;
    }
    return e.status;
  }
  set(key: string, value: CachedAnswer): void {
    if (this.maxEntries <= 0) return;
    this.m.delete(key);
    if (this.m.size >= this.maxEntries) this.m.delete(this.m.keys().next().value as string);
    this.m.set(key, value);
  }
  get size(): number {
    return this.m.size;
  }
}

/** Builds the OCSP query used by the revocation checker. Failures are `unknown` verdicts, never throws. */
export function createOcspQuery(opts: OcspClientOptions) {
  const skewMs = opts.clockSkewMs ?? 5 * 60_000;
  const maxAgeMs = opts.maxAgeMs ?? 3600_000;
  const maxBytes = opts.maxResponseBytes ?? 64 * 1024;
  const timeoutMs = opts.timeoutMs ?? 3000;
  const cacheMs = opts.cacheMs ?? 0;
  const cache = new OcspAnswerCache(cacheMs > 0 ? (opts.cacheEntries ?? 100_000) : 0);
  const post = opts.fetchImpl ? postWithFetch(opts.url, opts.fetchImpl, timeoutMs, maxBytes) : postWithNodeHttp(opts.url, timeoutMs, maxBytes);
  const log = opts.log ?? silentLogger;
  const refused = (code: OcspRejectCode, detail: string): RevocationVerdict => {
    // No serial here (no usage history): the code and why are enough to see an attack or a broken responder.
    log.warn('OCSP answer not used', { code, why: detail });
    return { status: 'unknown', source: 'ocsp', detail: `OCSP ${code}: ${detail}`, ocspCode: code };
  };
  const verdictOf = (st: CachedAnswer['status']): RevocationVerdict =>
    st.kind === 'good' ? { status: 'good', source: 'ocsp' } : { status: 'revoked', source: 'ocsp', revokedAt: st.revokedAt, reason: st.reason ?? 'unspecified' };
  let batchMax = Math.max(1, opts.batchMax ?? 32);
  const maxInFlight = Math.max(1, opts.maxInFlight ?? 4);

  interface Waiter {
    asked: CertId;
    key: string;
    now: Date;
    resolve: (v: RevocationVerdict) => void;
  }
  type Anchor = CheckedCertificate['anchor'];
  // Per CA: the checks waiting for a request, how many requests are in flight, and whether a pump is
  // scheduled; and the one check in flight per certificate, which a second check of it joins.
  const queues = new Map<Anchor, { waiting: Waiter[]; inFlight: number; scheduled: boolean }>();
  const inFlight = new Map<string, Promise<RevocationVerdict>>();

  const queueOf = (issuer: Anchor) => {
    let q = queues.get(issuer);
    if (!q) {
      q = { waiting: [], inFlight: 0, scheduled: false };
      queues.set(issuer, q);
    }
    return q;
  };
  // Everything that asks in one turn of the event loop goes in one request (up to batchMax), while
  // fewer than maxInFlight requests are out.
  const schedule = (issuer: Anchor) => {
    const q = queueOf(issuer);
    if (q.scheduled) return;
    q.scheduled = true;
    setImmediate(() => pump(issuer));
  };
  const pump = (issuer: Anchor) => {
    const q = queueOf(issuer);
    q.scheduled = false;
    while (q.inFlight < maxInFlight && q.waiting.length > 0) {
      const batch = q.waiting.splice(0, batchMax);
      q.inFlight++;
      void send(issuer, batch)
        .catch(() => batch.forEach((w) => void w.resolve(refused('ocsp_malformed', 'the response could not be evaluated'))))
        .finally(() => {
          q.inFlight--;
          if (q.waiting.length > 0) schedule(issuer);
          else if (q.inFlight === 0) queues.delete(issuer);
        });
    }
  };
  // RFC 5019 2.1.1 (the lightweight profile large responders follow) allows one Request per
  // OCSPRequest. A responder that refuses or half-answers a request for several certificates is
  // asked one certificate at a time from then on, and the checks in that batch are asked again.
  const askSingly = (issuer: Anchor, waiters: Waiter[]) => {
    if (batchMax > 1) log.warn('OCSP responder does not answer requests for several certificates; asking one at a time');
    batchMax = 1;
    queueOf(issuer).waiting.unshift(...waiters);
    schedule(issuer);
  };

  const send = async (issuer: Anchor, asked: Waiter[]): Promise<void> => {
    let batch = asked;
    const all = (v: RevocationVerdict) => batch.forEach((w) => void w.resolve(v));
    const nonce = new Uint8Array(randomBytes(16));
    let request: Uint8Array;
    try {
      request = encodeOcspRequest(
        batch.map((w) => w.asked),
        nonce,
      );
    } catch {
      return all(refused('ocsp_malformed', 'the request cannot be written'));
    }
    const posted = await post(request);
    if ('failed' in posted) {
      return all(posted.failed === 'too-large' ? refused('ocsp_malformed', 'the response is too large') : refused('ocsp_unavailable', `the responder is unreachable: ${posted.why}`));
    }
    const several = batch.length > 1;
    if (posted.status < 200 || posted.status > 299) {
      if (several && posted.status >= 400 && posted.status < 500) return askSingly(issuer, batch);
      return all(refused('ocsp_unavailable', `the responder answered HTTP ${posted.status}`));
    }
    let basic: VerifiedOcspResponse;
    try {
      // The signer is judged at the time of the first check in the batch; they are microseconds apart.
      basic = verifyOcspResponse(posted.body, { nonce, issuer, now: batch[0].now, skewMs });
    } catch (e) {
      // responseStatus malformedRequest or unauthorized to several CertIDs: try them one by one.
      if (several && e instanceof OcspRejected && e.code === 'ocsp_unavailable') return askSingly(issuer, batch);
      return all(e instanceof OcspRejected ? refused(e.code, e.message) : refused('ocsp_malformed', 'the response could not be evaluated'));
    }
    // A signed answer naming fewer certificates than asked: the ones it leaves out are asked alone.
    if (several && basic.responses.length < batch.length) {
      const answered = answersOf(basic);
      const missing = batch.filter((w) => !answered.has(w.key));
      if (missing.length) {
        askSingly(issuer, missing);
        batch = batch.filter((w) => !missing.includes(w));
      }
    }
    for (const w of batch) {
      try {
        const single = answerFor(basic, { asked: w.asked, now: w.now, skewMs, maxAgeMs }, w.key);
        const st = single.status;
        if (st.kind === 'unknown') {
          w.resolve(refused('ocsp_cert_unknown', 'the responder does not know the certificate'));
          continue;
        }
        // Reused while fresh: never past nextUpdate, nor past thisUpdate + maxAge without one, nor
        // longer than the cache lifetime from now.
        const t = w.now.getTime();
        const fresh = single.nextUpdate ? single.nextUpdate.getTime() : single.thisUpdate.getTime() + maxAgeMs;
        const until = Math.min(fresh, t + cacheMs);
        if (cacheMs > 0 && until > t) cache.set(w.key, { status: st, from: single.thisUpdate.getTime() - skewMs, until });
        w.resolve(verdictOf(st));
      } catch (e) {
        w.resolve(e instanceof OcspRejected ? refused(e.code, e.message) : refused('ocsp_malformed', 'the response could not be evaluated'));
      }
    }
  };

  const query = async (checked: CheckedCertificate, now: Date): Promise<RevocationVerdict> => {
    let asked: CertId;
    try {
      asked = certIdFor(checked.cert, checked.anchor.cert);
    } catch {
      return refused('ocsp_malformed', 'the CA public key cannot be hashed for a CertID');
    }
    const key = OcspAnswerCache.key(asked);
    const hit = cache.get(key, now.getTime());
    if (hit) return verdictOf(hit);
    const joined = inFlight.get(key);
    if (joined) return joined;
    const issuer = checked.anchor;
    const p = new Promise<RevocationVerdict>((resolve) => {
      queueOf(issuer).waiting.push({ asked, key, now, resolve });
      schedule(issuer);
    });
    inFlight.set(key, p);
    void p.then(() => inFlight.delete(key));
    return p;
  };
  return Object.assign(query, { cache });
}
