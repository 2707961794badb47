// Periodic revocation checks (定期的な失効確認): CRLs are fetched from the configured sources (or
// imported by hand), verified against the trust anchors, kept in memory for registration checks,
// saved for restarts, and matched against every bound certificate; a newly revoked current
// certificate suspends its MyKey ID with its RFC 5280 reason.
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { MyKeyError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { loadCrl, type CrlIssuer } from '../pki/crl/index.ts';
import { issuerKeyOf, type TrustAnchor } from '../pki/trust-anchors.ts';
import type { MyKeyRepo } from '../store/mykey-repo.ts';
import type { RevocationRepo } from '../store/revocation-repo.ts';
import type { LoadedCrl } from './checker.ts';

/** What one revocation run found. */
export interface RevocationRunSummary {
  source: string;
  issuer: string;
  crlNumber?: string;
  thisUpdate: string;
  nextUpdate?: string;
  entries: number;
  /** Bound certificates found revoked for the first time. */
  matched: number;
  /** MyKey IDs suspended by this run. */
  newlySuspended: number;
  durationMs: number;
}

export interface CrlManagerDeps {
  dataDir: string;
  anchors: () => readonly TrustAnchor[];
  mykeys: MyKeyRepo;
  revocations: RevocationRepo;
  log: Logger;
  now?: () => Date;
  fetchTimeoutMs?: number;
  maxBytes?: number;
  /** Called after suspensions were committed (their change-log entries wait in the outboxes). */
  afterSuspend?: () => void;
}

function atomicWrite(path: string, data: Uint8Array) {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data);
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
}

export function createCrlManager(deps: CrlManagerDeps) {
  const now = deps.now ?? (() => new Date());
  const crlDir = join(deps.dataDir, 'crl');
  /** The current CRL of each issuer, for registration checks. */
  const crls = new Map<string, LoadedCrl>();
  const timers: NodeJS.Timeout[] = [];

  function recordFailure(source: string, startedAt: number, durationMs: number, error: string) {
    deps.revocations.recordRun({
      source,
      started_at: startedAt,
      finished_at: now().getTime(),
      ok: 0,
      crl_number: null,
      entries: null,
      matched: null,
      newly_suspended: null,
      duration_ms: Math.round(durationMs),
      error,
    });
  }

  const issuers = (): CrlIssuer[] => deps.anchors().map((a) => ({ nameDer: a.cert.subjectDer, publicKey: a.publicKey, label: a.label }));

  function parse(der: Uint8Array, onProgress?: (done: number, total: number) => void) {
    const r = loadCrl(der, issuers(), { onProgress });
    if (!r.ok) throw new MyKeyError(r.code, r.message);
    if (r.value.crl.isDelta) throw new MyKeyError('crl_malformed', 'delta CRLs are not supported; configure the full CRL');
    return r.value;
  }

  /** Verifies, indexes, persists and matches a CRL. */
  function apply(der: Uint8Array, source: string, onProgress?: (phase: string, done: number, total: number) => void): RevocationRunSummary {
    const started = now();
    const t0 = performance.now();
    try {
      const { crl, index, issuer } = parse(der, (d, t) => onProgress?.('parse', d, t));
      if (crl.unknownCriticalEntryExtensions > 0) {
        // RFC 5280 5.3: such entries cannot be fully understood; they are still treated as revoked
        // (the safe side for a holder's MyKey ID is a suspension an operator can review).
        deps.log.warn('CRL has entries with unknown critical extensions', { source, count: crl.unknownCriticalEntryExtensions });
      }
      const issuerKey = issuerKeyOf(crl.issuerNameDer);
      const prev = deps.revocations.state(issuerKey);
      // RFC 5280 5.2.3: CRL numbers increase; an older CRL must not undo a newer one.
      if (prev?.crl_number && crl.crlNumber !== undefined && crl.crlNumber < BigInt(prev.crl_number)) {
        throw new MyKeyError('crl_stale', `CRL number ${crl.crlNumber} is older than the applied ${prev.crl_number}`);
      }
      if (!prev?.crl_number && prev && crl.thisUpdate.getTime() < prev.this_update) {
        throw new MyKeyError('crl_stale', `CRL of ${crl.thisUpdate.toISOString()} is older than the applied one`);
      }
      mkdirSync(crlDir, { recursive: true });
      const file = join(crlDir, `${issuerKey}.crl`);
      atomicWrite(file, der);

      // Match every bound certificate of this issuer that is not yet known revoked.
      const hits: Parameters<MyKeyRepo['applyRevocations']>[0] = [];
      let scanned = 0;
      for (const b of deps.mykeys.unrevokedBindings(issuerKey)) {
        const hit = index.lookup(b.serial_hex);
        if (hit) hits.push({ bindingId: b.id, mykeyId: b.mykey_id, state: b.state, revokedAt: hit.revokedAt.getTime(), reason: hit.reason });
        if (++scanned % 100_000 === 0) onProgress?.('match', scanned, 0);
      }
      const newlySuspended = deps.mykeys.applyRevocations(hits, now().getTime());
      if (newlySuspended > 0) deps.afterSuspend?.();
      deps.revocations.saveState({
        issuer_key: issuerKey,
        crl_number: crl.crlNumber?.toString() ?? null,
        this_update: crl.thisUpdate.getTime(),
        next_update: crl.nextUpdate?.getTime() ?? null,
        entries: index.size,
        source,
        file,
        applied_at: now().getTime(),
      });
      crls.set(issuerKey, {
        issuerKey,
        thisUpdate: crl.thisUpdate,
        nextUpdate: crl.nextUpdate,
        crlNumber: crl.crlNumber,
        size: index.size,
        lookup: (serialHex) => index.lookup(serialHex),
      });
      const summary: RevocationRunSummary = {
        source,
        issuer: issuer.label ?? issuerKey,
        crlNumber: crl.crlNumber?.toString(),
        thisUpdate: crl.thisUpdate.toISOString(),
        nextUpdate: crl.nextUpdate?.toISOString(),
        entries: index.size,
        matched: hits.length,
        newlySuspended,
        durationMs: Math.round(performance.now() - t0),
      };
      deps.revocations.recordRun({
        source,
        started_at: started.getTime(),
        finished_at: now().getTime(),
        ok: 1,
        crl_number: summary.crlNumber ?? null,
        entries: summary.entries,
        matched: summary.matched,
        newly_suspended: newlySuspended,
        duration_ms: summary.durationMs,
        error: null,
      });
      deps.log.info('CRL applied', { ...summary });
      return summary;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      recordFailure(source, started.getTime(), performance.now() - t0, message);
      deps.log.warn('CRL not applied', { source, error: message });
      throw e;
    }
  }

  /** Fetches a CRL over HTTP with a timeout and a size bound, then applies it. */
  async function fetchAndApply(url: string): Promise<RevocationRunSummary> {
    const startedAt = now().getTime();
    const t0 = performance.now();
    let der: Uint8Array;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(deps.fetchTimeoutMs ?? 60_000) });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      const max = deps.maxBytes ?? 512 * 1024 * 1024;
      const declared = Number(res.headers.get('content-length') ?? 0);
      if (declared > max) throw new Error(`CRL of ${declared} bytes is larger than the limit ${max}`);
      const chunks: Uint8Array[] = [];
      let total = 0;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        total += chunk.length;
        if (total > max) throw new Error(`CRL is larger than the limit ${max}`);
        chunks.push(chunk);
      }
      der = new Uint8Array(Buffer.concat(chunks, total));
    } catch (e) {
      const err = new MyKeyError('crl_fetch_failed', `fetching ${url} failed: ${(e as Error).message}`, { cause: e });
      recordFailure(url, startedAt, performance.now() - t0, err.message);
      deps.log.warn('CRL fetch failed', { url, error: err.message });
      throw err;
    }
    return apply(der, url);
  }

  return {
    crls,
    apply,
    fetchAndApply,

    /** Loads the CRLs saved by earlier runs, so registration checks work right after a restart. */
    loadSaved(): void {
      for (const s of deps.revocations.states()) {
        if (crls.has(s.issuer_key) && crls.get(s.issuer_key)!.thisUpdate.getTime() >= s.this_update) continue;
        if (!existsSync(s.file)) {
          deps.log.warn('saved CRL file is missing', { file: s.file });
          continue;
        }
        try {
          const { crl, index } = parse(new Uint8Array(readFileSync(s.file)));
          crls.set(s.issuer_key, {
            issuerKey: s.issuer_key,
            thisUpdate: crl.thisUpdate,
            nextUpdate: crl.nextUpdate,
            crlNumber: crl.crlNumber,
            size: index.size,
            lookup: (serialHex) => index.lookup(serialHex),
          });
        } catch (e) {
          deps.log.warn('saved CRL could not be loaded', { file: s.file, error: (e as Error).message });
        }
      }
    },

    /** Fetches every source now and then every `intervalMs` (with jitter so hubs do not align). */
    start(sources: string[], intervalMs: number): void {
      for (const url of sources) {
        const run = () => fetchAndApply(url).catch(() => undefined);
        void run();
        const t = setInterval(run, intervalMs + Math.floor(Math.random() * Math.min(intervalMs / 10, 60_000)));
        t.unref();
        timers.push(t);
      }
      // A CRL imported by the operator command lands in the database; pick it up here.
      const poll = setInterval(() => this.loadSaved(), 10_000);
      poll.unref();
      timers.push(poll);
    },

    stop(): void {
      for (const t of timers.splice(0)) clearInterval(t);
    },
  };
}

export type CrlManager = ReturnType<typeof createCrlManager>;
